// Package kubeadm reads the parts of a kubeadm configuration file that hapod
// needs: the control-plane endpoint (the VIP and frontend port), this node's
// kube-apiserver address and port (its backend), the apiserver's
// bind-address (to detect a port clash with the proxy) and the certificate
// SANs.
//
// It understands kubeadm.k8s.io/v1beta3 and v1beta4, in files of several
// YAML documents separated by "---" lines, and skips documents of other API
// groups (KubeletConfiguration, KubeProxyConfiguration, ...) as kubeadm
// does. It does not import kubeadm: see types.go.
package kubeadm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/hapod/hapod/internal/inputfile"
)

// Group is the API group of kubeadm's configuration types.
const Group = "kubeadm.k8s.io"

// SupportedVersions are the kubeadm API versions Parse accepts, oldest
// first. v1beta3 is read by kubeadm up to 1.36, v1beta4 from 1.31 on.
var SupportedVersions = []string{"v1beta3", "v1beta4"}

// Errors returned, wrapped with the file and the document, by Load and
// Parse. Test them with errors.Is.
var (
	// ErrSyntax: a document is not valid YAML, lacks apiVersion or kind,
	// or a field hapod reads has the wrong type.
	ErrSyntax = errors.New("invalid kubeadm configuration")
	// ErrUnsupportedVersion: a kubeadm.k8s.io document of a version other
	// than SupportedVersions.
	ErrUnsupportedVersion = errors.New("unsupported kubeadm API version")
	// ErrUnknownKind: a kubeadm.k8s.io document of a kind kubeadm does not
	// define in that version.
	ErrUnknownKind = errors.New("unknown kubeadm kind")
	// ErrDuplicateKind: two documents of the same kubeadm kind.
	ErrDuplicateKind = errors.New("duplicate kubeadm kind")
	// ErrNoConfiguration: no InitConfiguration, ClusterConfiguration or
	// JoinConfiguration in the file (for example an empty file).
	ErrNoConfiguration = errors.New("no kubeadm InitConfiguration, ClusterConfiguration or JoinConfiguration")
)

// Kinds of kubeadm.k8s.io documents.
const (
	KindInit    = "InitConfiguration"
	KindCluster = "ClusterConfiguration"
	KindJoin    = "JoinConfiguration"
)

// otherKinds are valid kubeadm kinds that carry nothing hapod needs; they
// are skipped rather than rejected, per version.
var otherKinds = map[string][]string{
	"v1beta3": nil,
	"v1beta4": {"ResetConfiguration", "UpgradeConfiguration"},
}

// File is what hapod reads from one kubeadm configuration file. A kind
// absent from the file is nil.
type File struct {
	// Name is the file's name as given to Load or Parse, for messages.
	Name string
	// Version is the kubeadm API version of the file's kubeadm documents
	// (of the first one, if they differ).
	Version string
	// Init is the InitConfiguration document.
	Init *InitConfiguration
	// Cluster is the ClusterConfiguration document.
	Cluster *ClusterConfiguration
	// Join is the JoinConfiguration document.
	Join *JoinConfiguration
}

// Load reads and parses the kubeadm configuration file at path: a regular
// file of at most inputfile.MaxSize bytes.
func Load(ctx context.Context, path string) (*File, error) {
	data, err := inputfile.Read(ctx, path, 0)
	if err != nil {
		// The *PathError already names the file.
		return nil, fmt.Errorf("kubeadm config: %w", err)
	}
	return Parse(data, path)
}

// typeMeta is the header every document has.
type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// Parse parses a kubeadm configuration held in data; name is used in
// errors. Documents are numbered from 1 in errors, in file order, counting
// only non-empty ones.
func Parse(data []byte, name string) (*File, error) {
	f := &File{Name: name}
	seen := map[string]int{} // kind -> document number
	for i, doc := range splitDocuments(data) {
		n := i + 1
		var tm typeMeta
		if err := yaml.Unmarshal(doc.data, &tm); err != nil {
			return nil, fmt.Errorf("%s: document %d (from line %d): %w: %v", name, n, doc.line, ErrSyntax, err)
		}
		if tm.APIVersion == "" || tm.Kind == "" {
			return nil, fmt.Errorf("%s: document %d (from line %d): %w: apiVersion and kind are required", name, n, doc.line, ErrSyntax)
		}
		group, version, ok := strings.Cut(tm.APIVersion, "/")
		if !ok || group != Group {
			continue // KubeletConfiguration, KubeProxyConfiguration, ...: not ours.
		}
		where := fmt.Sprintf("%s: document %d (%s %s, from line %d)", name, n, tm.APIVersion, tm.Kind, doc.line)
		if !supported(version) {
			return nil, fmt.Errorf("%s: %w %s; supported: %s/%s", where, ErrUnsupportedVersion,
				tm.APIVersion, Group, strings.Join(SupportedVersions, ", "+Group+"/"))
		}
		switch {
		case tm.Kind == KindInit || tm.Kind == KindCluster || tm.Kind == KindJoin:
		case slices.Contains(otherKinds[version], tm.Kind):
			continue
		default:
			return nil, fmt.Errorf("%s: %w %q in %s; hapod reads %s, %s and %s",
				where, ErrUnknownKind, tm.Kind, tm.APIVersion, KindInit, KindCluster, KindJoin)
		}
		if first, dup := seen[tm.Kind]; dup {
			return nil, fmt.Errorf("%s: %w: %s already in document %d", where, ErrDuplicateKind, tm.Kind, first)
		}
		seen[tm.Kind] = n
		var target any
		switch tm.Kind {
		case KindInit:
			f.Init = new(InitConfiguration)
			target = f.Init
		case KindCluster:
			f.Cluster = new(ClusterConfiguration)
			target = f.Cluster
		case KindJoin:
			f.Join = new(JoinConfiguration)
			target = f.Join
		}
		if f.Version == "" {
			f.Version = version
		}
		if err := yaml.Unmarshal(doc.data, target); err != nil {
			return nil, fmt.Errorf("%s: %w: %v", where, ErrSyntax, err)
		}
	}
	if len(seen) == 0 {
		return nil, fmt.Errorf("%s: %w", name, ErrNoConfiguration)
	}
	return f, nil
}

// document is one YAML document of a stream and the line it starts on, so
// that errors, whose YAML line numbers count from the document's start,
// can be placed in the file.
type document struct {
	data  []byte
	line  int
	start int // byte offset of data in the stream
}

// splitDocuments splits a multi-document YAML stream at "---" lines, the
// way kubeadm's reader does, and drops documents holding only blanks and
// comments. A separator line may carry a trailing comment; a "---" line with
// other content after it is not a separator and is left to the YAML parser.
func splitDocuments(data []byte) []document {
	var docs []document
	var cur bytes.Buffer
	start, line, off, startOff := 1, 0, 0, 0
	flush := func() {
		if !blank(cur.Bytes()) {
			docs = append(docs, document{bytes.Clone(cur.Bytes()), start, startOff})
		}
		cur.Reset()
		start, startOff = line+1, off
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, len(data)+1) // one line may be the whole file
	sc.Split(scanLinesKeepEnd)
	for sc.Scan() {
		line++
		off += len(sc.Bytes())
		if isSeparator(sc.Bytes()) {
			flush()
			continue
		}
		cur.Write(sc.Bytes())
	}
	flush()
	return docs
}

// scanLinesKeepEnd is bufio.ScanLines that keeps the line ending, so a
// document's bytes are exactly the input's.
func scanLinesKeepEnd(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i+1], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

func isSeparator(line []byte) bool {
	rest, ok := bytes.CutPrefix(line, []byte("---"))
	if !ok {
		return false
	}
	rest = bytes.TrimSpace(rest)
	return len(rest) == 0 || rest[0] == '#'
}

// blank reports whether a document has nothing but whitespace and comments.
func blank(doc []byte) bool {
	for line := range bytes.Lines(doc) {
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] != '#' {
			return false
		}
	}
	return true
}

func supported(version string) bool { return slices.Contains(SupportedVersions, version) }
