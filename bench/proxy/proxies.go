package main

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// The two contenders, hapodproxy and haproxy (haproxy.go), on the same
// routes.

func (b *bench) startProxies() error {
	for i := range b.front {
		f := &b.front[i]
		if err := freePorts(&f.iperf, &f.iperf2, &f.nginx, &f.blob); err != nil {
			return err
		}
		cmd, err := b.startProxy(i, "main", []route{
			{"iperf", f.iperf, b.ports.iperf}, {"iperf2", f.iperf2, b.ports.iperf2}, {"nginx", f.nginx, b.ports.nginx},
			{"blob", f.blob, b.ports.blob},
		})
		if err != nil {
			return err
		}
		b.pid[i] = cmd.Process.Pid
	}
	return nil
}

// route is one frontend port relayed to one backend port.
type route struct {
	name          string
	front, server int
}

// startProxy starts proxy p (0 hapod, 1 haproxy) with routes and waits
// until every frontend accepts.
func (b *bench) startProxy(p int, tag string, routes []route) (*exec.Cmd, error) {
	start := b.startHapodproxy
	if p == 1 {
		start = b.startHaproxy
	}
	cmd, err := start(tag, routes)
	if err != nil {
		return nil, err
	}
	for _, r := range routes {
		if err := waitPort(r.front); err != nil {
			return nil, err
		}
	}
	return cmd, nil
}

// startHapodproxy starts bench/proxy/hapodproxy, pkg/proxy with no
// checks and no logging.
func (b *bench) startHapodproxy(tag string, routes []route) (*exec.Cmd, error) {
	args := []string{"-max-conns", strconv.Itoa(b.maxConns)}
	for _, r := range routes {
		args = append(args, "-route", fmt.Sprintf("127.0.0.1:%d=127.0.0.1:%d", r.front, r.server))
	}
	var env []string
	if *hapodEnv != "" {
		env = strings.Split(*hapodEnv, ",")
	}
	return b.start(b.path("hapodproxy"), tag, env, args...)
}
