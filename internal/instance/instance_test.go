package instance

import (
	"bufio"
	"errors"
	"io"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestName(t *testing.T) {
	for _, tc := range []struct {
		vip, want string
	}{
		{"198.18.0.10", "@hapod/198.18.0.10"},
		{"2001:db8::10", "@hapod/2001:db8::10"},
		{"::ffff:198.18.0.10", "@hapod/198.18.0.10"}, // one lock whatever the spelling
	} {
		name := Name(netip.MustParseAddr(tc.vip))
		if name != tc.want {
			t.Errorf("Name(%s) = %q, want %q", tc.vip, name, tc.want)
		}
		if a, ok := vipOfName(name); !ok || Name(a) != name {
			t.Errorf("vipOfName(%q) = %v %v, want the VIP back", name, a, ok)
		}
	}
	for _, name := range []string{"@hapod/", "@hapod/x", "@hapod/198.18.0.10/24", "@hapod/::ffff:198.18.0.10", "@other/198.18.0.10", "hapod/198.18.0.10", "@hapod/198.18.0.010"} {
		if a, ok := vipOfName(name); ok {
			t.Errorf("vipOfName(%q) = %v, want no VIP", name, a)
		}
	}
}

func TestParseRequest(t *testing.T) {
	for line, want := range map[string]Request{
		"handover":   RequestHandover,
		"handover\r": RequestHandover,
		" handover ": RequestHandover,
	} {
		if got, err := ParseRequest(line); err != nil || got != want {
			t.Errorf("ParseRequest(%q) = %v, %v; want %v", line, got, err, want)
		}
	}
	for _, line := range []string{"", "HANDOVER", "handover now", "stop", "\x00"} {
		if got, err := ParseRequest(line); !errors.Is(err, ErrBadRequest) || got != requestInvalid {
			t.Errorf("ParseRequest(%q) = %v, %v; want ErrBadRequest", line, got, err)
		}
	}
}

func TestReplyRoundTrip(t *testing.T) {
	for _, tc := range []struct{ kind, text, want string }{
		{replyAccepted, "active", "active"},
		{replyDone, "handed the VIP over to 198.18.0.12 in 85ms", "handed the VIP over to 198.18.0.12 in 85ms"},
		{replyDone, "two\nlines", "two lines"}, // one line on the wire, always
		{replyError, `unknown request "x"`, `unknown request "x"`},
	} {
		line := reply(tc.kind, tc.text)
		if strings.Count(line, "\n") != 1 {
			t.Errorf("reply(%q, %q) = %q: not one line", tc.kind, tc.text, line)
		}
		kind, text, err := parseReply(line)
		if err != nil || kind != tc.kind || text != tc.want {
			t.Errorf("parseReply(%q) = %q %q %v", line, kind, text, err)
		}
	}
	for _, line := range []string{"", "ok", "Done x", "handover"} {
		if _, _, err := parseReply(line); !errors.Is(err, ErrBadReply) {
			t.Errorf("parseReply(%q): %v, want ErrBadReply", line, err)
		}
	}
}

func TestReadLineBounded(t *testing.T) {
	r := bufio.NewReaderSize(strings.NewReader(strings.Repeat("x", 5000)+"\n"), 16)
	if _, err := readLine(r); err == nil {
		t.Error("a 5000-byte line was read")
	}
	r = bufio.NewReaderSize(strings.NewReader("handover"), 16)
	if _, err := readLine(r); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("a line cut by EOF: %v, want ErrUnexpectedEOF", err)
	}
	r = bufio.NewReaderSize(strings.NewReader(strings.Repeat("y", 40)+"\nnext\n"), 16)
	if line, err := readLine(r); err != nil || line != strings.Repeat("y", 40) {
		t.Errorf("a line longer than the buffer: %q %v", line, err)
	}
}

// A listing as the kernel writes it: the listening lock sockets (flag
// 00010000), an accepted connection on one of them (same path, not
// listening), and sockets of other programs.
const procNetUnix = `Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 29271 @hapod/198.18.0.10
0000000000000000: 00000003 00000000 00000000 0001 03 29290 @hapod/198.18.0.10
0000000000000000: 00000002 00000000 00010000 0001 01 29280 @hapod/2001:db8::10
0000000000000000: 00000002 00000000 00010000 0001 01 11111 /run/systemd/private
0000000000000000: 00000002 00000000 00010000 0001 01 11112 @hapod/not-an-address
0000000000000000: 00000002 00000000 00000000 0002 01 11113
0000000000000000: 00000003 00000000 00000000 0001 03 29291 @hapod/198.18.0.99
`

func TestParseProcNetUnix(t *testing.T) {
	got, err := ParseProcNetUnix(strings.NewReader(procNetUnix))
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Addr{netip.MustParseAddr("198.18.0.10"), netip.MustParseAddr("2001:db8::10")}
	if !slices.Equal(got, want) {
		t.Errorf("running VIPs %v, want %v (listening hapod locks only, each once)", got, want)
	}
}

func TestMayStop(t *testing.T) {
	for _, tc := range []struct {
		uid, self uint32
		ok        bool
	}{
		{0, 0, true},
		{0, 1000, true},     // root stops anyone's
		{1000, 1000, true},  // the same user
		{1000, 0, false},    // anyone in the namespace can connect: not stop
		{1000, 1001, false}, // nor another user's
	} {
		err := mayStop(tc.uid, tc.self)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrPermission)) {
			t.Errorf("mayStop(uid %d, hapod as %d) = %v, want allowed %v", tc.uid, tc.self, err, tc.ok)
		}
	}
}
