package cri

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// images is a CRI image service holding a fixed set of images, as a
// runtime answers ImageStatus: an absent image is no image, not an error.
type images struct {
	runtimeapi.UnimplementedImageServiceServer
	have map[string]bool
}

func (s images) ImageStatus(_ context.Context, req *runtimeapi.ImageStatusRequest) (*runtimeapi.ImageStatusResponse, error) {
	if !s.have[req.GetImage().GetImage()] {
		return &runtimeapi.ImageStatusResponse{}, nil
	}
	return &runtimeapi.ImageStatusResponse{Image: &runtimeapi.Image{Id: "sha256:0", RepoTags: []string{req.GetImage().GetImage()}}}, nil
}

func serve(t *testing.T, svc runtimeapi.ImageServiceServer) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cri.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	runtimeapi.RegisterImageServiceServer(srv, svc)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return "unix://" + path
}

func TestImagePresent(t *testing.T) {
	endpoint := serve(t, images{have: map[string]bool{"ghcr.io/hapod/hapod:v1.2.3": true}})
	for image, want := range map[string]bool{"ghcr.io/hapod/hapod:v1.2.3": true, "ghcr.io/hapod/hapod:v1.2.4": false} {
		if got, err := ImagePresent(t.Context(), endpoint, image); err != nil || got != want {
			t.Errorf("ImagePresent(%s) = %v, %v; want %v", image, got, err, want)
		}
	}
	// A bare path works as kubeadm's old criSocket values do.
	if got, err := ImagePresent(t.Context(), endpoint[len("unix://"):], "ghcr.io/hapod/hapod:v1.2.3"); err != nil || !got {
		t.Errorf("bare path: %v, %v", got, err)
	}
}

func TestImagePresentErrors(t *testing.T) {
	missing := "unix://" + filepath.Join(t.TempDir(), "none.sock")
	if _, err := ImagePresent(t.Context(), missing, "x"); !errors.Is(err, ErrNoSocket) {
		t.Errorf("missing socket: %v, want ErrNoSocket", err)
	}
	// A runtime without the image service (cri plugin disabled) is an
	// error naming the socket, not an absent image.
	endpoint := serve(t, runtimeapi.UnimplementedImageServiceServer{})
	if ok, err := ImagePresent(t.Context(), endpoint, "x"); err == nil || errors.Is(err, ErrNoSocket) || ok {
		t.Errorf("unimplemented service: %v, %v; want an error", ok, err)
	}
}
