package main

import (
	"fmt"
	"io"
	"net"
	"strconv"
)

// The backends both proxies relay to: two iperf3 servers, nginx
// (nginx.go) and in-process blob and sink servers.

const blobSize = 10 << 20

// startBackends starts every backend and waits until each accepts.
func (b *bench) startBackends() error {
	p := &b.ports
	if err := freePorts(&p.iperf, &p.iperf2, &p.nginx, &p.blob); err != nil {
		return err
	}
	for _, port := range []int{p.iperf, p.iperf2} {
		if _, err := b.start("iperf3", "server", nil, "-s", "-p", strconv.Itoa(port)); err != nil {
			return err
		}
	}
	if err := b.startNginx(p.nginx); err != nil {
		return err
	}
	if _, err := serve(p.blob, serveBlob); err != nil {
		return err
	}
	for _, port := range []int{p.iperf, p.iperf2, p.nginx} {
		if err := waitPort(port); err != nil {
			return err
		}
	}
	return nil
}

// serve runs an in-process backend.
func serve(port int, h func(*net.TCPConn)) (net.Listener, error) {
	ln, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				h(c.(*net.TCPConn))
			}()
		}
	}()
	return ln, nil
}

var blob = make([]byte, blobSize)

// serveBlob sends 10 MiB, then waits for the client to close.
func serveBlob(c *net.TCPConn) {
	c.Write(blob)
	c.CloseWrite()
	io.Copy(io.Discard, c)
}

// serveSink greets with one byte (proof that the path is end to end),
// then holds the connection until the client closes it.
func serveSink(c *net.TCPConn) {
	c.Write([]byte{'!'})
	io.Copy(io.Discard, c)
}
