package manifest

import (
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/hapod/hapod/pkg/config"
)

// ErrNotHapod is returned by Parse for a pod that does not run `hapod run`.
var ErrNotHapod = errors.New("not a hapod manifest")

// Parse reads a manifest back: the Config whose Args are the container's
// `hapod run` arguments (through config.ParseArgs, the flag table's
// inverse of Args) and the container's image. Parse(Render(cfg)) gives cfg
// back for any completed, valid cfg.
func Parse(data []byte) (cfg config.Config, image string, err error) {
	var pod corev1.Pod
	if err := yaml.Unmarshal(data, &pod); err != nil {
		return config.Config{}, "", err
	}
	for _, c := range pod.Spec.Containers {
		if len(c.Args) == 0 || c.Args[0] != "run" {
			continue
		}
		cfg, err := config.ParseArgs(c.Args[1:])
		if err != nil {
			return config.Config{}, "", fmt.Errorf("container %s: %w", c.Name, err)
		}
		return cfg, c.Image, nil
	}
	return config.Config{}, "", fmt.Errorf("%w: no container runs `hapod run`", ErrNotHapod)
}
