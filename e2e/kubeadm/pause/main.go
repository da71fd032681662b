// Command pause is the pod sandbox image of the real-cluster tests (tagged
// like kubeadm's pause image): it holds the pod's namespaces, reaps any
// child that a shared PID namespace hands it, and exits on SIGTERM or
// SIGINT. Built static and shipped in a FROM-scratch image by
// e2e/kubeadm/images.sh, so the tests need no registry.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			return
		}
		reap()
	}
}

// reap collects every exited child without blocking.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
