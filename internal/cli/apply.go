package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hapod/hapod/internal/inputfile"
	"github.com/hapod/hapod/pkg/manifest"
)

// applied is what apply did: the manifest's path and whether it was
// created, updated or left unchanged.
type applied struct {
	Path    string
	Outcome manifest.Outcome
}

// apply carries out p on this host: it removes the stale VIPs, makes the
// kubeadm config's endpoint edit and writes the manifest into dir; should
// the manifest not be written, it undoes the edit. A manifest that
// differs from p's stops it unless force, before anything is touched. The
// notes of what it did join p's, printed to errOut once the manifest is
// written.
func apply(ctx context.Context, host Host, p plan, dir string, force bool, errOut io.Writer) (applied, error) {
	path := filepath.Join(dir, manifest.FileName)
	notes := slices.Clone(p.Notes)
	// A different manifest stops the run without --force: find out before
	// the kubeadm config is touched.
	if old, err := inputfile.Read(ctx, path, 0); err == nil && !bytes.Equal(old, p.Manifest) && !force {
		err := &manifest.DiffError{Path: path, Diff: manifest.Diff(string(old), string(p.Manifest))}
		fmt.Fprintf(errOut, "hapod: %s differs from what these settings produce:\n%s", err.Path, err.Diff)
		return applied{}, err
	}
	for _, a := range p.Stale {
		if err := host.RemoveAddr(a); err != nil {
			return applied{}, fmt.Errorf("--vip %s: remove the stale VIP: %w", a.Prefix.Addr(), err)
		}
		notes = append(notes, staleNote(a))
	}
	if p.Edit != nil {
		if err := p.Edit.Apply(); err != nil {
			return applied{}, err
		}
		notes = append(notes, fmt.Sprintf("set controlPlaneEndpoint %s in %s (original kept as %s)", p.Edit.Endpoint, p.Edit.Path, p.Edit.Backup()))
	}
	path, outcome, err := manifest.Write(dir, p.Manifest, force)
	if err != nil && p.Edit != nil {
		if uerr := p.Edit.Undo(); uerr != nil {
			err = fmt.Errorf("%w; and restoring the kubeadm config failed: %v", err, uerr)
		}
	}
	var de *manifest.DiffError
	if errors.As(err, &de) {
		fmt.Fprintf(errOut, "hapod: %s differs from what these settings produce:\n%s", de.Path, de.Diff)
		return applied{}, err
	}
	if err != nil {
		if !strings.Contains(err.Error(), path) { // most errors name it already
			err = fmt.Errorf("%s: %w", path, err)
		}
		return applied{}, err
	}
	printNotes(errOut, notes)
	return applied{Path: path, Outcome: outcome}, nil
}

// dryRun says on errOut what apply would do with p in dir, and prints the
// manifest on out.
func dryRun(ctx context.Context, p plan, dir string, out, errOut io.Writer) error {
	path := filepath.Join(dir, manifest.FileName)
	printNotes(errOut, p.Notes)
	for _, a := range p.Stale {
		fmt.Fprintf(errOut, "hapod: dry run: would have %s\n", staleNote(a))
	}
	if p.Edit != nil {
		fmt.Fprintf(errOut, "hapod: dry run: would set controlPlaneEndpoint %s in %s (keeping the original as %s)\n", p.Edit.Endpoint, p.Edit.Path, p.Edit.Backup())
	}
	old, err := inputfile.Read(ctx, path, 0)
	switch {
	case err != nil:
		fmt.Fprintf(errOut, "hapod: dry run: would create %s\n", path)
	case string(old) == string(p.Manifest):
		fmt.Fprintf(errOut, "hapod: dry run: %s is unchanged\n", path)
	default:
		fmt.Fprintf(errOut, "hapod: dry run: would change %s:\n%s", path, manifest.Diff(string(old), string(p.Manifest)))
	}
	_, err = out.Write(p.Manifest)
	return err
}

// printNotes prints what a successful run has to say besides its output.
func printNotes(w io.Writer, notes []string) {
	for _, n := range notes {
		fmt.Fprintf(w, "hapod: %s\n", n)
	}
}
