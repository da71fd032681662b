// Package kubeadm is hapod's truth test against the real thing: a kubeadm
// HA cluster (kubeadm, kubelet, kube-apiserver, etcd, containerd, runc)
// whose control-plane endpoint is hapod's VIP, built in network namespaces
// of package e2e/lab on one machine.
//
// A node is a network namespace on the lab's bridge plus private mount and
// UTS namespaces held by an anchor process, with its own containerd and a
// small kubelet supervisor (what systemd and kubeadm's 10-kubeadm.conf drop-in
// do on a real host). hapod's manifest is whatever `hapod init` and
// `hapod join` write, run inside the node; kubelet starts it as written.
//
// Run it with `make e2e-kubeadm` (root): it builds the pinned Kubernetes
// binaries (build-k8s.sh), FROM-scratch images of them (images.sh) and
// hapod's image, and passes their locations in the environment. Without
// them the tests skip, or fail under CI. The tests are in *_linux_test.go.
package kubeadm
