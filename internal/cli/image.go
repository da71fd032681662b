package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hapod/hapod/internal/cri"
	"github.com/hapod/hapod/pkg/config"
	"github.com/hapod/hapod/pkg/kubeadm"
)

// imageRequired is the error for --image not given to a build that is not
// a release, and so has no default.
func imageRequired() error {
	return &config.FieldError{Flag: flagImage, Err: fmt.Errorf(
		"required: hapod %s is not a release build (untagged or modified tree), so no image of its version is published; name the image to run (make image builds localhost/hapod:%s)",
		Version, Version)}
}

// imageCheck is what this node's container runtime said about the pod's
// image, before kubelet needs it.
type imageCheck struct {
	Image    string
	Endpoint string // the CRI socket asked
	Present  bool
	Err      error // the runtime could not be asked; cri.ErrNoSocket: none there yet
}

// verdict says what the check means for init/join: a note to print, or an
// error when the image is missing and kubelet cannot pull it (--offline,
// or a localhost/ image, which exists only where it was built), unless
// force.
func (ic imageCheck) verdict(offline, force bool) (string, error) {
	importCmd := "ctr -n k8s.io images import " + archiveName(ic.Image)
	switch {
	case errors.Is(ic.Err, cri.ErrNoSocket):
		return fmt.Sprintf("could not check that image %s is on this node: %v (install the container runtime before kubeadm; kubelet pulls the image unless it was imported: %s)", ic.Image, ic.Err, importCmd), nil
	case ic.Err != nil:
		return fmt.Sprintf("could not check that image %s is on this node: %v", ic.Image, ic.Err), nil
	case ic.Present:
		return fmt.Sprintf("image %s is on this node (%s)", ic.Image, ic.Endpoint), nil
	}
	why := ""
	switch {
	case offline:
		why = "--offline"
	case strings.HasPrefix(ic.Image, "localhost/"):
		why = "a localhost/ image exists only where it was built"
	default:
		return fmt.Sprintf("image %s is not on this node yet (%s): kubelet will pull it from %s when it starts the pod; without access to that registry, import it first: %s",
			ic.Image, ic.Endpoint, registry(ic.Image), importCmd), nil
	}
	if force {
		return fmt.Sprintf("warning: image %s is not on this node (%s) and kubelet cannot pull it (%s): the pod will not start until it is imported: %s",
			ic.Image, ic.Endpoint, why, importCmd), nil
	}
	return "", &config.FieldError{Flag: flagImage, Value: ic.Image, Err: fmt.Errorf(
		"not on this node (%s) and kubelet cannot pull it (%s): import it first: %s (or --force)", ic.Endpoint, why, importCmd)}
}

// checkImage asks the node's container runtime whether image is there: the
// one kubeadm uses, given by --cri-socket (criSocket), else by the kubeadm
// config's nodeRegistration.criSocket (kf, nil without one), else the
// first socket kubeadm would find.
func checkImage(ctx context.Context, host Host, image, criSocket string, kf *kubeadm.File) imageCheck {
	ic := imageCheck{Image: image, Endpoint: criSocket}
	if ic.Endpoint == "" && kf != nil {
		ic.Endpoint = kf.CRISocket()
	}
	if ic.Endpoint == "" {
		ic.Endpoint, ic.Err = host.DetectRuntime()
		if ic.Err != nil {
			return ic
		}
	}
	ic.Present, ic.Err = host.ImagePresent(ctx, ic.Endpoint, image)
	return ic
}

// archiveName is the release's image archive for image's tag.
func archiveName(image string) string {
	tag := "<version>"
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		tag = image[i+1:]
	}
	return "hapod-image-" + tag + ".oci.tar"
}

// registry is the host an image reference is pulled from.
func registry(image string) string {
	if first, _, ok := strings.Cut(image, "/"); ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return first
	}
	return "docker.io"
}
