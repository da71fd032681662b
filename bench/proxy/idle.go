package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Idle connections: what each one costs in memory and CPU.

// idle opens -idle connections through a freshly started proxy (so its
// memory is what the idle connections cost, not what earlier cases
// left), each proven end to end by the sink's greeting byte, holds them,
// and reads the proxy's RSS and CPU time.
func (b *bench) idle(p int) error {
	// A sink of its own per run: the proxy closes first towards the sink,
	// so each run leaves its connections in TIME_WAIT on the proxy's
	// side, for a minute. Connecting to the same sink port again, every
	// ephemeral port tried collides with one of those, and the kernel's
	// port search (__inet_check_established in perf) then cost more CPU
	// than the proxy itself: hapod spent 260 ms to open 9,700
	// connections in a first run and 1.1 s in each run after it.
	var port, sinkPort int
	if err := freePorts(&port, &sinkPort); err != nil {
		return err
	}
	sink, err := serve(sinkPort, serveSink)
	if err != nil {
		return err
	}
	defer sink.Close()
	cmd, err := b.startProxy(p, "idle", []route{{"sink", port, sinkPort}})
	if err != nil {
		return err
	}
	defer b.stop(cmd)
	pid := cmd.Process.Pid
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	n := *idleConns
	conns := make([]net.Conn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	rss0, err := procRSS(pid)
	if err != nil {
		return err
	}
	c0, err := procCPU(pid)
	if err != nil {
		return err
	}
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	workers := 64
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var d net.Dialer
			one := make([]byte, 1)
			for i := w; i < n; i += workers {
				c, err := d.DialContext(ctx, "tcp4", addr)
				if err == nil {
					c.SetReadDeadline(time.Now().Add(30 * time.Second))
					_, err = io.ReadFull(c, one)
					c.SetReadDeadline(time.Time{})
				}
				if err != nil {
					select {
					case errc <- fmt.Errorf("connection %d: %w", i, err):
					default:
					}
					cancel()
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
	}
	open := time.Since(t0)
	time.Sleep(*idleHold)
	rss1, err := procRSS(pid)
	if err != nil {
		return err
	}
	c1, err := procCPU(pid)
	if err != nil {
		return err
	}
	name := fmt.Sprintf("%d idle connections", n)
	b.row(name+": time to open", "ms", false).add(p, float64(open)/float64(time.Millisecond))
	b.row(name+": proxy RSS", "MiB", false).add(p, float64(rss1)/(1<<20))
	b.row(name+": proxy RSS per connection", "KiB", false).add(p, float64(rss1-rss0)/1024/float64(n))
	b.row(name+": proxy CPU to open and hold", "ms", false).add(p, float64(c1-c0)/float64(time.Millisecond))
	b.logf("%s idle: open %v, RSS %.1f MiB (+%.1f), CPU %v", proxyNames[p], open, float64(rss1)/(1<<20), float64(rss1-rss0)/(1<<20), c1-c0)
	return nil
}
