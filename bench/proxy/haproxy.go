package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// startHaproxy starts haproxy in the usual HA-guide shape (mode tcp, one
// server), no checks and no logging, like the hapod side.
func (b *bench) startHaproxy(tag string, routes []route) (*exec.Cmd, error) {
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "global\n  maxconn %d\ndefaults\n  mode tcp\n  maxconn %d\n", b.maxConns, b.maxConns)
	cfg.WriteString("  timeout connect 3s\n  timeout client 1h\n  timeout server 1h\n")
	for _, r := range routes {
		fmt.Fprintf(&cfg, "listen %s\n  bind 127.0.0.1:%d\n  server s1 127.0.0.1:%d\n", r.name, r.front, r.server)
	}
	file := b.path("haproxy-" + tag + ".cfg")
	if err := os.WriteFile(file, []byte(cfg.String()), 0o644); err != nil {
		return nil, err
	}
	if out, err := exec.Command("haproxy", "-c", "-f", file).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("haproxy config: %v: %s", err, out)
	}
	return b.start("haproxy", tag, nil, "-db", "-f", file)
}
