package config

import "fmt"

// Warnings returns the settings of a valid Config that are allowed but
// almost certainly not what the user meant, one sentence each, naming the
// flags. Validate rejects what cannot work; Warnings is for what works
// differently from how it reads. Call it after Validate. `hapod
// init/join/manifest` print the warnings, `hapod run` logs them.
func (c *Config) Warnings() []string {
	var out []string
	for _, check := range []func() string{c.warnPreemptWeight} {
		if w := check(); w != "" {
			out = append(out, w)
		}
	}
	return out
}

// warnPreemptWeight: without preemption a backup never takes over from a
// live active router, whatever the priorities, so the weight lowered on
// the holder when it reaches no kube-apiserver cannot move the VIP.
func (c *Config) warnPreemptWeight() string {
	if c.VRRP.Preempt || c.Health.Weight == 0 {
		return ""
	}
	return fmt.Sprintf("--preempt=false makes --no-backend-weight %d useless: a backup without preemption never takes over from a live active router, so a holder that reaches no kube-apiserver keeps the VIP; keep --preempt (the default) or set --no-backend-weight=0 to say so", c.Health.Weight)
}
