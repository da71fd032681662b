package kubeadm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"sigs.k8s.io/yaml"

	"github.com/hapod/hapod/internal/inputfile"
)

// BackupSuffix is appended to a kubeadm config's name for the copy of its
// original content that WriteEndpoint keeps.
const BackupSuffix = ".hapod-backup"

// WriteEndpoint sets ClusterConfiguration.controlPlaneEndpoint in the file
// at path to ep: PlanEndpoint, then Apply. It reports whether the file
// changed.
func WriteEndpoint(ctx context.Context, path string, ep netip.AddrPort) (bool, error) {
	e, err := PlanEndpoint(ctx, path, ep)
	if err != nil || e == nil {
		return false, err
	}
	return true, e.Apply()
}

// An EndpointEdit is a checked, not yet written change of a kubeadm
// config's ClusterConfiguration.controlPlaneEndpoint: `hapod init --vip
// dhcp` learns the VIP only from its lease and kubeadm must use it. The
// edit is planned while hapod checks everything else, applied just before
// the manifest is written, and undone if that write fails, so a failing
// run leaves the file as it was.
type EndpointEdit struct {
	// Path is the kubeadm config.
	Path string
	// Endpoint is the controlPlaneEndpoint the edit sets.
	Endpoint netip.AddrPort

	orig, updated []byte
	file          fileMeta // of the file Path names, through symbolic links
	backupMade    bool     // by Apply; Undo removes it
}

// fileMeta is what a rewrite keeps of the file it replaces: where it
// really is, its mode and its owner.
type fileMeta struct {
	target   string // Path with symbolic links resolved: the file replaced
	mode     fs.FileMode
	uid, gid int
}

func statFile(path string) (fileMeta, error) {
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fileMeta{}, err
	}
	info, err := os.Stat(target)
	if err != nil {
		return fileMeta{}, err
	}
	m := fileMeta{target: target, mode: info.Mode().Perm(), uid: -1, gid: -1}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		m.uid, m.gid = int(st.Uid), int(st.Gid)
	}
	return m, nil
}

// PlanEndpoint reads the file at path and prepares setting its
// controlPlaneEndpoint to ep, writing nothing. Every other byte of the
// file is kept: in a YAML document the endpoint's value is replaced (its
// comment and line ending kept), or a line is added after the
// ClusterConfiguration's kind line; in a JSON document (kubeadm reads
// JSON too) the value is replaced or the key added first; without a
// ClusterConfiguration a document is appended, JSON after JSON. The
// result is parsed back to prove kubeadm will read ep. It returns nil
// when the file already says ep. The edit will replace the file a
// symbolic link at path points to, keeping its mode and owner.
func PlanEndpoint(ctx context.Context, path string, ep netip.AddrPort) (*EndpointEdit, error) {
	data, err := inputfile.Read(ctx, path, 0)
	if err != nil {
		return nil, fmt.Errorf("kubeadm config: %w", err) // the *PathError names the file
	}
	f, err := Parse(data, path)
	if err != nil {
		return nil, err
	}
	if s, err := f.Settings(); err == nil && s.EndpointSet && s.EndpointField == fieldEndpoint && s.Endpoint == ep {
		return nil, nil
	}
	updated, err := setEndpoint(data, ep, f.Version)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot set %s: %w", path, fieldEndpoint, err)
	}
	check, err := Parse(updated, path)
	if err != nil {
		return nil, fmt.Errorf("%s: setting controlPlaneEndpoint broke the file: %w", path, err)
	}
	if s, err := check.Settings(); err != nil || s.Endpoint != ep {
		return nil, fmt.Errorf("%s: could not set %s to %s (%v)", path, fieldEndpoint, ep, err)
	}
	meta, err := statFile(path)
	if err != nil {
		return nil, fmt.Errorf("kubeadm config: %w", err)
	}
	return &EndpointEdit{Path: path, Endpoint: ep, orig: data, updated: updated, file: meta}, nil
}

// Backup is where Apply keeps the original: an existing backup, the true
// original, is never overwritten.
func (e *EndpointEdit) Backup() string { return e.Path + BackupSuffix }

// Apply writes the edit: the original goes to Backup unless one exists,
// and the new content replaces the file atomically. It refuses a file
// changed since PlanEndpoint read it.
func (e *EndpointEdit) Apply() error {
	// Not interruptible: Apply and Undo must finish what they start.
	now, err := inputfile.Read(context.Background(), e.Path, 0)
	if err != nil {
		return fmt.Errorf("kubeadm config: %w", err)
	}
	if !bytes.Equal(now, e.orig) {
		return fmt.Errorf("%s: changed while hapod was checking it; run again", e.Path)
	}
	if _, err := os.Stat(e.Backup()); errors.Is(err, fs.ErrNotExist) {
		backup := e.file
		backup.target = e.Backup()
		if err := writeAtomic(backup, e.orig); err != nil {
			return fmt.Errorf("back up %s: %w", e.Path, err)
		}
		e.backupMade = true
	}
	if err := writeAtomic(e.file, e.updated); err != nil {
		e.removeBackup()
		return fmt.Errorf("%s: %w", e.Path, err)
	}
	return nil
}

// Undo puts the original content back and removes a backup Apply made.
// A file changed since Apply is left alone.
func (e *EndpointEdit) Undo() error {
	if now, err := inputfile.Read(context.Background(), e.Path, 0); err != nil || !bytes.Equal(now, e.updated) {
		return fmt.Errorf("%s: changed since hapod set its controlPlaneEndpoint; not restored (the original is in %s)", e.Path, e.Backup())
	}
	if err := writeAtomic(e.file, e.orig); err != nil {
		return fmt.Errorf("%s: %w", e.Path, err)
	}
	e.removeBackup()
	return nil
}

func (e *EndpointEdit) removeBackup() {
	if e.backupMade {
		os.Remove(e.Backup())
		e.backupMade = false
	}
}

// setEndpoint sets controlPlaneEndpoint in the ClusterConfiguration
// document of a kubeadm config stream, changing nothing else: a YAML
// document is edited line by line (a decode and re-encode would lose
// comments and layout), a JSON one token by token.
func setEndpoint(data []byte, ep netip.AddrPort, version string) ([]byte, error) {
	for _, doc := range splitDocuments(data) {
		var tm typeMeta
		if yaml.Unmarshal(doc.data, &tm) != nil || tm.Kind != KindCluster || !strings.HasPrefix(tm.APIVersion, Group+"/") {
			continue
		}
		var edited []byte
		var err error
		if isJSON(doc.data) {
			edited, err = setJSONEndpoint(doc.data, ep)
		} else {
			edited, err = setYAMLEndpoint(doc.data, ep)
		}
		if err != nil {
			return nil, err
		}
		end := doc.start + len(doc.data)
		return slices.Concat(data[:doc.start], edited, data[end:]), nil
	}
	var b bytes.Buffer
	b.Write(data)
	if len(data) > 0 && !bytes.HasSuffix(data, []byte("\n")) {
		b.WriteString("\n")
	}
	if docs := splitDocuments(data); len(docs) > 0 && isJSON(docs[0].data) {
		fmt.Fprintf(&b, "---\n{\"apiVersion\": %q, \"kind\": %q, %q: %q}\n", Group+"/"+version, KindCluster, fieldEndpointKey, ep.String())
	} else {
		fmt.Fprintf(&b, "---\napiVersion: %s/%s\nkind: %s\n%s: %q\n", Group, version, KindCluster, fieldEndpointKey, ep.String())
	}
	return b.Bytes(), nil
}

// fieldEndpointKey is controlPlaneEndpoint's key in ClusterConfiguration.
const fieldEndpointKey = "controlPlaneEndpoint"

// isJSON reports whether a document is a JSON object: its first byte
// that is neither blank nor in a comment line opens one.
func isJSON(doc []byte) bool {
	for line := range bytes.Lines(doc) {
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] != '#' {
			return line[0] == '{'
		}
	}
	return false
}

// setYAMLEndpoint replaces the value of the document's top-level
// controlPlaneEndpoint, keeping the line's comment and line ending, or
// adds the key after the kind line.
func setYAMLEndpoint(doc []byte, ep netip.AddrPort) ([]byte, error) {
	lines := slices.Collect(bytesLines(doc))
	value := strconv.Quote(ep.String())
	for i, l := range lines {
		if rest, ok := strings.CutPrefix(l, fieldEndpointKey+":"); ok {
			body, eol := cutLineEnd(rest)
			lines[i] = fieldEndpointKey + ": " + value + trailingComment(body) + eol
			return []byte(strings.Join(lines, "")), nil
		}
	}
	for i, l := range lines {
		if topLevelValue(l, "kind") == KindCluster {
			_, eol := cutLineEnd(l)
			if eol == "" {
				eol = "\n"
				lines[i] += eol
			}
			lines = slices.Insert(lines, i+1, fieldEndpointKey+": "+value+eol)
			return []byte(strings.Join(lines, "")), nil
		}
	}
	return nil, errors.New("the ClusterConfiguration document has no top-level kind line to add it after (flow style?); set it in the file yourself")
}

// bytesLines yields the lines of b as strings, line endings kept.
func bytesLines(b []byte) func(func(string) bool) {
	return func(yield func(string) bool) {
		for l := range bytes.Lines(b) {
			if !yield(string(l)) {
				return
			}
		}
	}
}

// cutLineEnd splits a line into its content and its ending ("\n",
// "\r\n" or "" on a last line without one).
func cutLineEnd(l string) (body, eol string) {
	switch {
	case strings.HasSuffix(l, "\r\n"):
		return l[:len(l)-2], "\r\n"
	case strings.HasSuffix(l, "\n"):
		return l[:len(l)-1], "\n"
	}
	return l, ""
}

// trailingComment returns the comment ending a YAML scalar value, with
// the blanks before it ("" without one): a '#' after a blank, outside
// quotes.
func trailingComment(value string) string {
	var quote rune
	for i, r := range value {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '"' || r == '\'':
			quote = r
		case r == '#' && i > 0 && (value[i-1] == ' ' || value[i-1] == '\t'):
			j := i
			for j > 0 && (value[j-1] == ' ' || value[j-1] == '\t') {
				j--
			}
			return value[j:]
		}
	}
	return ""
}

// setJSONEndpoint replaces the value of the object's top-level
// controlPlaneEndpoint, or adds the key as the object's first, in the
// layout of the key that was first.
func setJSONEndpoint(doc []byte, ep netip.AddrPort) ([]byte, error) {
	value, _ := json.Marshal(ep.String())
	dec := json.NewDecoder(bytes.NewReader(doc))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("the ClusterConfiguration document is not a JSON object (%v)", err)
	}
	open := int(dec.InputOffset())
	first := -1
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("the ClusterConfiguration document is not valid JSON: %w", err)
		}
		key, _ := tok.(string)
		if first < 0 {
			first = open + len(doc[open:]) - len(bytes.TrimLeft(doc[open:], " \t\r\n"))
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("the ClusterConfiguration document is not valid JSON: %w", err)
		}
		if key == fieldEndpointKey {
			end := int(dec.InputOffset())
			return slices.Concat(doc[:end-len(raw)], value, doc[end:]), nil
		}
	}
	if first < 0 { // {}
		return slices.Concat(doc[:open], []byte(`"`+fieldEndpointKey+`": `), value, doc[open:]), nil
	}
	indent := doc[open:first] // the layout between "{" and the first key
	return slices.Concat(doc[:first], []byte(`"`+fieldEndpointKey+`": `), value, []byte(","), indent, doc[first:]), nil
}

// topLevelValue returns the value of a top-level "key: value" line.
func topLevelValue(line, key string) string {
	v, ok := strings.CutPrefix(line, key+":")
	if !ok {
		return ""
	}
	v, _, _ = strings.Cut(v, "#")
	return strings.Trim(strings.TrimSpace(v), `"'`)
}

// writeAtomic replaces f.target with data through a temporary file in its
// directory, with f's mode and owner.
func writeAtomic(f fileMeta, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(f.target), "."+filepath.Base(f.target)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	err = tmp.Chmod(f.mode)
	if err == nil && f.uid >= 0 {
		if err = tmp.Chown(f.uid, f.gid); err != nil {
			err = fmt.Errorf("keep the owner %d:%d: %w", f.uid, f.gid, err)
		}
	}
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), f.target)
}
