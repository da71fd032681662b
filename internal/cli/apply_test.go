package cli

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hapod/hapod/internal/hostnet"
	"github.com/hapod/hapod/pkg/kubeadm"
	"github.com/hapod/hapod/pkg/manifest"
)

// applyFixture is a plan with a kubeadm endpoint edit and a stale VIP,
// and a host that records what it removed.
func applyFixture(t *testing.T) (plan, Host, *[]hostnet.Addr, string) {
	t.Helper()
	const orig = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
	kcfg := filepath.Join(t.TempDir(), "kubeadm.yaml")
	if err := os.WriteFile(kcfg, []byte(orig), 0o600); err != nil {
		t.Fatal(err)
	}
	edit, err := kubeadm.PlanEndpoint(context.Background(), kcfg, netip.MustParseAddrPort("198.18.0.10:8443"))
	if err != nil || edit == nil {
		t.Fatalf("PlanEndpoint: %v %v", edit, err)
	}
	stale := []hostnet.Addr{
		{Prefix: netip.MustParsePrefix("198.18.0.10/24"), Interface: "eth0", Secondary: true},
		{Prefix: netip.MustParsePrefix("2001:db8::10/64"), Interface: "eth0", Deprecated: true},
	}
	var removed []hostnet.Addr
	host := fakeHost()
	host.RemoveAddr = func(a hostnet.Addr) error { removed = append(removed, a); return nil }
	return plan{Mode: modeInit, Manifest: []byte("kind: Pod\n"), Edit: edit, Stale: stale}, host, &removed, orig
}

// TestApplyUndoesTheEditWhenTheWriteFails: the manifest cannot be
// written, so the kubeadm config gets its original content back and no
// backup stays behind.
func TestApplyUndoesTheEditWhenTheWriteFails(t *testing.T) {
	p, host, _, orig := applyFixture(t)
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var errOut bytes.Buffer
	if _, err := apply(context.Background(), host, p, notDir, false, &errOut); err == nil {
		t.Fatal("apply into a regular file's path succeeded")
	}
	if got, _ := os.ReadFile(p.Edit.Path); string(got) != orig {
		t.Errorf("kubeadm config after the failed write:\n%s\nwant the original back:\n%s", got, orig)
	}
	if _, err := os.Stat(p.Edit.Backup()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("backup %s left behind: %v", p.Edit.Backup(), err)
	}
	if errOut.Len() != 0 {
		t.Errorf("a failed apply printed notes: %q", errOut.String())
	}
}

// TestApplyTouchesNothingForADifferentManifest: without force, a
// different hapod.yaml stops apply before the stale VIP is removed or the
// kubeadm config edited.
func TestApplyTouchesNothingForADifferentManifest(t *testing.T) {
	p, host, removed, orig := applyFixture(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, manifest.FileName), []byte("kind: Other\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var errOut bytes.Buffer
	_, err := apply(context.Background(), host, p, dir, false, &errOut)
	if !errors.Is(err, manifest.ErrExists) {
		t.Fatalf("apply = %v, want ErrExists", err)
	}
	if len(*removed) != 0 {
		t.Errorf("removed %v before refusing", *removed)
	}
	if got, _ := os.ReadFile(p.Edit.Path); string(got) != orig {
		t.Errorf("kubeadm config edited before refusing:\n%s", got)
	}
}

// TestApplyDoesEverythingInOrder: the stale VIP goes, the edit is made,
// the manifest written, and each is noted.
func TestApplyDoesEverythingInOrder(t *testing.T) {
	p, host, removed, _ := applyFixture(t)
	dir := t.TempDir()
	var errOut bytes.Buffer
	a, err := apply(context.Background(), host, p, dir, false, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	if a.Outcome != manifest.Created || a.Path != filepath.Join(dir, manifest.FileName) {
		t.Errorf("applied %+v", a)
	}
	if !slices.Equal(*removed, p.Stale) {
		t.Errorf("removed %v, want %v", *removed, p.Stale)
	}
	want := "hapod: " + staleNote(p.Stale[0]) + "\nhapod: " + staleNote(p.Stale[1]) + "\nhapod: set controlPlaneEndpoint 198.18.0.10:8443 in " + p.Edit.Path + " (original kept as " + p.Edit.Backup() + ")\n"
	if errOut.String() != want {
		t.Errorf("notes:\n%s\nwant:\n%s", errOut.String(), want)
	}
}
