package manifest

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/hapod/hapod/pkg/config"
)

// imageRef is the grammar of a container image reference
// (github.com/distribution/reference): [DOMAIN[:PORT]/]PATH[:TAG][@DIGEST].
// Kubelet refuses a pod whose image does not match it (InvalidImageName),
// so a manifest with such an image would never run.
var imageRef = func() *regexp.Regexp {
	const (
		domainComponent = `(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])`
		domain          = `(?:` + domainComponent + `(?:\.` + domainComponent + `)*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?`
		pathComponent   = `[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*`
		name            = `(?:` + domain + `/)?` + pathComponent + `(?:/` + pathComponent + `)*`
		tag             = `[\w][\w.-]{0,127}`
		digest          = `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}`
	)
	return regexp.MustCompile(`^(` + name + `)(?::` + tag + `)?(?:@` + digest + `)?$`)
}()

// maxImageName is the longest repository name a registry accepts.
const maxImageName = 255

// CheckImage reports whether image is a container image reference
// kubelet accepts.
func CheckImage(image string) error {
	if image == "" {
		return errors.New("must not be empty")
	}
	if err := config.CheckText(image); err != nil {
		return err
	}
	if strings.ContainsRune(image, ' ') {
		return errors.New("must not contain a space")
	}
	m := imageRef.FindStringSubmatch(image)
	if m == nil {
		return errors.New("not an image reference ([REGISTRY/]REPOSITORY[:TAG][@DIGEST], repository in lower case)")
	}
	if len(m[1]) > maxImageName {
		return fmt.Errorf("repository name is %d bytes, at most %d", len(m[1]), maxImageName)
	}
	return nil
}
