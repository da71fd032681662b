// Package manifest turns a Config into hapod's static pod and writes it
// where kubelet watches.
//
// Pod and Render are pure: the same Config and image give the same bytes,
// which is what makes `hapod init` idempotent. Write is the only function
// here that touches the disk.
package manifest

import (
	"bytes"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/hapod/hapod/pkg/config"
)

// FileName is the manifest's name in the manifest directory. kubeadm owns
// kube-apiserver.yaml, kube-controller-manager.yaml, kube-scheduler.yaml and
// etcd.yaml there; hapod never writes any other name.
const FileName = "hapod.yaml"

// BinaryPath is where the image keeps the hapod binary.
const BinaryPath = "/hapod"

// systemNodeCritical is the priority value of the system-node-critical
// class. kubeadm sets it on its static pods as well as the class name,
// because a static pod's mirror is not admitted through the priority
// admission plugin that would fill it in.
const systemNodeCritical = 2000001000

// gracePeriodSeconds is the pod's terminationGracePeriodSeconds. On
// SIGTERM `hapod run` hands the VIP over (at most 0.8 s without a
// successor), closes the connections that arrived through it and exits,
// well within a second; the rest is slack for a loaded node. Should
// kubelet's SIGKILL come first, the VIP left behind is removed by the
// next start.
const gracePeriodSeconds int64 = 5

// Pod returns hapod's static pod for cfg, which must be completed and
// valid. The container runs `hapod run` with cfg.Args().
func Pod(cfg config.Config, image string) *corev1.Pod {
	// NET_ADMIN: the VIP, and the nftables redirect of VIP:--port.
	caps := []corev1.Capability{"NET_ADMIN", "NET_RAW"}
	// The proxy's socket is on ListenPort; a redirected --port binds
	// nothing.
	if cfg.Proxy.ListenPort < 1024 || cfg.Status.Addr.Port() < 1024 {
		caps = append(caps, "NET_BIND_SERVICE")
	}
	var mounts []corev1.VolumeMount
	var volumes []corev1.Volume
	for _, f := range []struct{ name, path string }{
		{"vrrp-auth-pass", cfg.VRRP.AuthPassFile},
		{"health-ca", cfg.Health.CAFile},
	} {
		if f.path == "" {
			continue
		}
		mounts = append(mounts, corev1.VolumeMount{Name: f.name, MountPath: f.path, ReadOnly: true})
		volumes = append(volumes, hostPath(f.name, f.path, corev1.HostPathFile))
	}
	if m := cfg.Membership; m.Discover {
		// The node identity, read-only: kubelet.conf and the client
		// certificate it names, never /etc/kubernetes as a whole (which
		// holds admin.conf). kubelet.conf exists once `kubeadm init`
		// wrote it or the kubelet's TLS bootstrap did, which is before
		// kubelet starts static pods; FileOrCreate only keeps the pod
		// (and the VIP) from waiting for it should that ever not hold:
		// the kubelet bootstraps over an empty file, and discovery waits
		// until it parses. The certificate directory is mounted whole
		// because kubelet-client-current.pem is a symlink the kubelet
		// moves on rotation.
		mounts = append(mounts,
			corev1.VolumeMount{Name: "kubeconfig", MountPath: m.Kubeconfig, ReadOnly: true},
			corev1.VolumeMount{Name: "kubelet-pki", MountPath: KubeletPKIDir, ReadOnly: true},
			corev1.VolumeMount{Name: "state", MountPath: m.StateDir},
		)
		volumes = append(volumes,
			hostPath("kubeconfig", m.Kubeconfig, corev1.HostPathFileOrCreate),
			hostPath("kubelet-pki", KubeletPKIDir, corev1.HostPathDirectoryOrCreate),
			hostPath("state", m.StateDir, corev1.HostPathDirectoryOrCreate),
		)
	}

	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      "hapod",
			Namespace: "kube-system",
			Labels:    map[string]string{"component": "hapod", "tier": "control-plane"},
		},
		Spec: corev1.PodSpec{
			HostNetwork:                   true,
			PriorityClassName:             "system-node-critical",
			Priority:                      ptr(int32(systemNodeCritical)),
			TerminationGracePeriodSeconds: ptr(gracePeriodSeconds),
			SecurityContext: &corev1.PodSecurityContext{
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name:            "hapod",
				Image:           image,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Command:         []string{BinaryPath},
				Args:            append([]string{"run"}, cfg.Args()...),
				SecurityContext: &corev1.SecurityContext{
					Capabilities: &corev1.Capabilities{
						Add:  caps,
						Drop: []corev1.Capability{"ALL"},
					},
					AllowPrivilegeEscalation: ptr(false),
					ReadOnlyRootFilesystem:   ptr(true),
				},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{
						corev1.ResourceCPU:    resource.MustParse("100m"),
						corev1.ResourceMemory: resource.MustParse("64Mi"),
					},
				},
				LivenessProbe: &corev1.Probe{
					ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
						Host:   probeHost(cfg.Status.Addr),
						Port:   intstr.FromInt32(int32(cfg.Status.Addr.Port())),
						Path:   "/healthz",
						Scheme: corev1.URISchemeHTTP,
					}},
					InitialDelaySeconds: 10,
					PeriodSeconds:       10,
					TimeoutSeconds:      5,
					FailureThreshold:    6,
				},
				VolumeMounts: mounts,
			}},
			Volumes: volumes,
		},
	}
}

// KubeletPKIDir is where the kubelet keeps its client certificate
// (kubelet-client-current.pem, kubelet's --cert-dir default), which
// kubelet.conf names.
const KubeletPKIDir = "/var/lib/kubelet/pki"

func hostPath(name, path string, t corev1.HostPathType) corev1.Volume {
	return corev1.Volume{
		Name: name,
		VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
			Path: path, Type: ptr(t),
		}},
	}
}

// probeHost is the address kubelet probes: the status address, or
// loopback when the server listens on every address.
func probeHost(a netip.AddrPort) string {
	switch {
	case a.Addr().Is4() && a.Addr().IsUnspecified():
		return "127.0.0.1"
	case a.Addr().IsUnspecified():
		return "::1"
	}
	return a.Addr().String()
}

// Render returns the manifest file for cfg: a short header comment and
// the pod as YAML.
func Render(cfg config.Config, image, version string) ([]byte, error) {
	body, err := yaml.Marshal(Pod(cfg, image))
	if err != nil {
		return nil, fmt.Errorf("encode pod: %w", err)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# hapod static pod, written by hapod %s. Re-run `hapod init` or `hapod join`\n", version)
	fmt.Fprintf(&b, "# to change it; kubelet restarts the pod when this file changes.\n")
	b.Write(body)
	return b.Bytes(), nil
}

func ptr[T any](v T) *T { return &v }
