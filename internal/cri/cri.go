// Package cri asks a node's container runtime, through the CRI socket that
// kubelet and kubeadm use, whether an image is already there. It is a
// client of the runtime's image service only: one ImageStatus call.
package cri

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// DefaultEndpoints are the CRI sockets kubeadm looks for when none is
// configured, in its order (kubeadm's defaultKnownCRISockets).
var DefaultEndpoints = []string{
	"unix:///var/run/containerd/containerd.sock",
	"unix:///var/run/crio/crio.sock",
	"unix:///var/run/cri-dockerd.sock",
}

// ErrNoSocket means no container runtime listens where asked: it is not
// installed or not started yet.
var ErrNoSocket = errors.New("no container runtime socket")

// Timeout bounds one question to the runtime.
const Timeout = 10 * time.Second

// Detect returns the first of DefaultEndpoints whose socket exists, or
// ErrNoSocket naming them all.
func Detect() (string, error) {
	for _, e := range DefaultEndpoints {
		if _, err := os.Stat(socketPath(e)); err == nil {
			return e, nil
		}
	}
	return "", fmt.Errorf("%w at %s", ErrNoSocket, strings.Join(DefaultEndpoints, ", "))
}

// ImagePresent asks the runtime at endpoint (unix:///path, or a bare path)
// whether image is present, as kubelet would find it before pulling. A
// missing socket is ErrNoSocket.
func ImagePresent(ctx context.Context, endpoint, image string) (bool, error) {
	path := socketPath(endpoint)
	if _, err := os.Stat(path); err != nil {
		return false, fmt.Errorf("%w at %s: %v", ErrNoSocket, endpoint, err)
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	conn, err := grpc.NewClient("passthrough:///"+path,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", addr)
		}))
	if err != nil {
		return false, fmt.Errorf("container runtime at %s: %w", endpoint, err)
	}
	defer conn.Close()
	resp, err := runtimeapi.NewImageServiceClient(conn).ImageStatus(ctx, &runtimeapi.ImageStatusRequest{
		Image: &runtimeapi.ImageSpec{Image: image},
	})
	if err != nil {
		return false, fmt.Errorf("container runtime at %s: image status of %s: %w", endpoint, image, err)
	}
	// The runtime answers an absent image with no image, not an error.
	return resp.GetImage() != nil, nil
}

func socketPath(endpoint string) string {
	return strings.TrimPrefix(endpoint, "unix://")
}
