package membership

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	v6 := netip.MustParseAddrPort("[2001:db8::1]:6443")
	for _, tc := range []struct {
		name string
		in   string
		want []netip.AddrPort
		bad  bool
	}{
		{name: "empty set", in: fileHeader + "\n"},
		{name: "sorted, deduplicated", in: fileHeader + "\n198.18.0.13:6443\n198.18.0.11:6443\n198.18.0.13:6443\n",
			want: []netip.AddrPort{a1, a3}},
		{name: "comments, blanks, spaces, CRLF", in: fileHeader + "\r\n\n# note\n  198.18.0.12:6443  \r\n[2001:db8::1]:6443\n",
			want: []netip.AddrPort{a2, v6}},
		{name: "no trailing newline", in: fileHeader + "\n198.18.0.11:6443", want: []netip.AddrPort{a1}},
		{name: "empty file", in: "", bad: true},
		{name: "no header", in: "198.18.0.11:6443\n", bad: true},
		{name: "other version", in: "# hapod members v2\n", bad: true},
		{name: "no port", in: fileHeader + "\n198.18.0.11\n", bad: true},
		{name: "port 0", in: fileHeader + "\n198.18.0.11:0\n", bad: true},
		{name: "host name", in: fileHeader + "\nnode1:6443\n", bad: true},
		{name: "zone", in: fileHeader + "\n[fe80::1%eth0]:6443\n", bad: true},
		{name: "4-in-6", in: fileHeader + "\n[::ffff:198.18.0.11]:6443\n", bad: true},
		{name: "too many", in: fileHeader + "\n" + manyLines(MaxFileMembers+1), bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.in))
			if tc.bad {
				if !errors.Is(err, ErrFormat) {
					t.Fatalf("Parse = %v, %v; want an ErrFormat", got, err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("Parse = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func manyLines(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(i / 250), byte(i%250 + 1)}), 6443).String() + "\n")
	}
	return b.String()
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(fileHeader + "\n198.18.0.11:6443\n[2001:db8::1]:6443\n"))
	f.Add([]byte(fileHeader + "\n# c\n\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		addrs, err := Parse(data)
		if err != nil {
			return
		}
		again, err := Parse(Marshal(addrs))
		if err != nil {
			t.Fatalf("Parse(Marshal(%v)): %v", addrs, err)
		}
		if !slices.Equal(addrs, again) {
			t.Fatalf("round trip: %v became %v", addrs, again)
		}
	})
}

func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state", FileName(netip.MustParseAddr("198.18.0.10")))
	if got, err := Load(path); err != nil || got != nil {
		t.Fatalf("Load of a missing file = %v, %v; want nothing, no error", got, err)
	}
	for _, set := range [][]netip.AddrPort{{a3, a1, a2}, {a4}, nil} {
		if err := Save(path, set); err != nil {
			t.Fatal(err)
		}
		got, err := Load(path)
		want := slices.Clone(set)
		slices.SortFunc(want, netip.AddrPort.Compare)
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("Load after Save(%v) = %v, %v", set, got, err)
		}
	}
	// Nothing but the file is left in the directory: the temporary file
	// was renamed.
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 || ents[0].Name() != "members-198.18.0.10.txt" {
		t.Fatalf("state directory holds %v", ents)
	}
	if err := os.WriteFile(path, []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Load of a corrupt file: %v; want an ErrFormat naming the file", err)
	}
}

func TestFileName(t *testing.T) {
	if got := FileName(netip.MustParseAddr("2001:db8::10")); got != "members-2001_db8__10.txt" {
		t.Fatalf("FileName = %q", got)
	}
}
