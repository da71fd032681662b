package main

import (
	"fmt"
	"io"
	"net"
	"time"
)

// 10 MiB downloads.

// transfer times 10 MiB downloads through the proxy.
func (b *bench) transfer(p int) error {
	addr := fmt.Sprintf("127.0.0.1:%d", b.front[p].blob)
	buf := make([]byte, 256<<10)
	var times []float64
	for range *transfers {
		t0 := time.Now()
		c, err := net.Dial("tcp4", addr)
		if err != nil {
			return err
		}
		n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{c}, buf)
		c.Close()
		if err != nil {
			return err
		}
		if n != blobSize {
			return fmt.Errorf("got %d bytes, want %d", n, blobSize)
		}
		times = append(times, float64(time.Since(t0))/float64(time.Millisecond))
	}
	b.row("10 MiB transfer: time", "ms", false).add(p, median(times))
	b.logf("%s 10 MiB: %.2f ms", proxyNames[p], median(times))
	return nil
}
