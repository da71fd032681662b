package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunServesAndStopsCleanly(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.crt")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--name", "cp1", "--ca-out", ca,
			"--mode", "fail", "--san", "198.18.0.5, 2001:db8::5"}, outW, io.Discard)
		outW.Close()
	}()
	line, err := bufio.NewReader(outR).ReadString('\n')
	if err != nil {
		t.Fatalf("no ready line: %v (run: %v)", err, <-done)
	}
	go io.Copy(io.Discard, outR)
	fields := strings.Fields(line)
	if len(fields) < 2 || fields[0] != "ready" {
		t.Fatalf("ready line %q", line)
	}
	base := "https://" + fields[1]

	pemData, err := os.ReadFile(ca)
	if err != nil {
		t.Fatalf("--ca-out file: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		t.Fatal("--ca-out file holds no certificate")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := c.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/readyz"); code != 500 {
		t.Errorf("--mode fail: /readyz = %d, want 500", code)
	}
	if code, body := get("/fake/whoami"); code != 200 || body != "cp1" {
		t.Errorf("/fake/whoami = %d %q, want cp1", code, body)
	}

	cancel() // what SIGTERM does
	if err := <-done; err != nil {
		t.Errorf("run after the stop signal: %v, want nil", err)
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--mode", "sleepy"},
		{"--san", "not-an-ip"},
		{"--slow", "soon"},
		{"stray"},
	} {
		err := run(context.Background(), args, io.Discard, io.Discard)
		if !errors.Is(err, errUsage) {
			t.Errorf("run(%q) = %v, want a usage error", args, err)
		}
	}
	err := run(context.Background(), []string{"--listen", "198.18.0.1:99999"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--listen") {
		t.Errorf("bad --listen: %v, want an error naming the flag", err)
	}
}
