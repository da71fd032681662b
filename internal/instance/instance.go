// Package instance keeps to one `hapod run` per VIP per host, and lets the
// command line (`hapod reset`, `init`, `join`) find that one and talk to it.
//
// The lock is an abstract unix socket named after the VIP,
// "@hapod/198.18.0.10". Abstract sockets belong to the network namespace,
// not to a file system: hapod's pod is hostNetwork, so the host's CLI and
// the pod see the same name; the pod's read-only root needs nothing
// written; and the kernel frees the name the moment the holder dies,
// SIGKILL included, so a lock is never stale.
//
// The holder serves its lock socket. A client writes one request line and
// reads reply lines:
//
//	handover            ->  accepted <state>     (at once)
//	                        done <outcome>       (when the VIP is handed over, right before exit)
//	anything else       ->  error <reason>
package instance

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
)

// namePrefix starts the name of every hapod lock; the '@' makes it
// abstract (Go's net package turns it into the leading NUL byte).
const namePrefix = "@hapod/"

// Name is the abstract unix socket name of vip's lock.
func Name(vip netip.Addr) string { return namePrefix + vip.Unmap().WithZone("").String() }

// vipOfName is the VIP a lock name stands for.
func vipOfName(name string) (netip.Addr, bool) {
	s, ok := strings.CutPrefix(name, namePrefix)
	if !ok {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" || a.Is4In6() || Name(a) != name {
		return netip.Addr{}, false
	}
	return a, true
}

// ErrNotRunning is returned by Dial when no hapod holds the VIP's lock.
var ErrNotRunning = errors.New("no hapod runs for this VIP on this host")

// ErrStopped is returned by Conn.Handover when the instance closed the
// connection without reporting an outcome: it was stopping already.
var ErrStopped = errors.New("hapod stopped without reporting how the handover went")

// HeldError is Acquire's error when another process holds the lock.
type HeldError struct {
	// VIP is the lock's VIP.
	VIP netip.Addr
	// PID is the holder's process ID as this process sees it; 0 when
	// unknown: the holder runs in another PID namespace (a container) and
	// the kernel cannot name it here.
	PID int
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("%s already runs for VIP %s on this host (it holds %s): one 'hapod run' per VIP per host, so this one exits and leaves the VIP alone",
		Describe(e.PID), e.VIP, Name(e.VIP))
}

// Describe names a holder by its PID as SO_PEERCRED reported it (0:
// another PID namespace).
func Describe(pid int) string {
	if pid <= 0 {
		return "a hapod in another PID namespace (a container)"
	}
	return fmt.Sprintf("hapod (pid %d)", pid)
}

// Request is what a client asks of the running instance.
type Request int

// Requests; the zero value is invalid.
const (
	requestInvalid Request = iota
	// RequestHandover asks the instance to stop as on SIGTERM: an active
	// router sends priority 0 and keeps serving until a successor is
	// heard (or a timeout), releases the VIP and exits.
	RequestHandover
)

func (r Request) String() string {
	if r == RequestHandover {
		return "handover"
	}
	return fmt.Sprintf("Request(%d)", int(r))
}

// ErrBadRequest is returned by ParseRequest for a line no instance
// understands.
var ErrBadRequest = errors.New("unknown request")

// ErrPermission is what a client that may not stop the instance is told.
var ErrPermission = errors.New("permission denied")

// mayStop allows a request from uid to an instance running as self when
// uid could kill it: root, or the same user.
func mayStop(uid, self uint32) error {
	if uid == 0 || uid == self {
		return nil
	}
	return fmt.Errorf("%w: uid %d may not stop a hapod running as uid %d (run as root)", ErrPermission, uid, self)
}

// maxLine bounds a request or reply line: requests are one word, replies
// one sentence.
const maxLine = 512

// ParseRequest parses one request line (without its newline).
func ParseRequest(line string) (Request, error) {
	if strings.TrimSpace(line) == RequestHandover.String() {
		return RequestHandover, nil
	}
	return requestInvalid, fmt.Errorf("%w %q", ErrBadRequest, line)
}

// Reply kinds: the first word of a reply line.
const (
	replyAccepted = "accepted"
	replyDone     = "done"
	replyError    = "error"
)

// ErrBadReply is returned by a client for a reply it cannot parse.
var ErrBadReply = errors.New("bad reply from hapod")

// reply formats one reply line; newlines in text would split it, so they
// become spaces.
func reply(kind, text string) string {
	return kind + " " + strings.Join(strings.Fields(text), " ") + "\n"
}

// parseReply splits a reply line into its kind and text.
func parseReply(line string) (kind, text string, err error) {
	kind, text, _ = strings.Cut(strings.TrimRight(line, "\n"), " ")
	switch kind {
	case replyAccepted, replyDone, replyError:
		return kind, text, nil
	}
	return "", "", fmt.Errorf("%w: %q", ErrBadReply, line)
}

// readLine reads one line of at most maxLine bytes.
func readLine(r *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		frag, err := r.ReadSlice('\n')
		b.Write(frag)
		if b.Len() > maxLine {
			return "", fmt.Errorf("line longer than %d bytes", maxLine)
		}
		if err == nil {
			return strings.TrimSuffix(b.String(), "\n"), nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) && b.Len() > 0 {
				return "", io.ErrUnexpectedEOF
			}
			return "", err
		}
	}
}

// ParseProcNetUnix returns the VIPs whose lock is listening in a
// /proc/net/unix listing: the hapod instances running in the reader's
// network namespace, each once, in the listing's order.
func ParseProcNetUnix(r io.Reader) ([]netip.Addr, error) {
	const acceptCon = 0x10000 // __SO_ACCEPTCON: a listening socket
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		// Num RefCount Protocol Flags Type St Inode [Path]
		f := strings.Fields(sc.Text())
		if len(f) < 8 {
			continue
		}
		var flags uint64
		if _, err := fmt.Sscanf(f[3], "%x", &flags); err != nil || flags&acceptCon == 0 {
			continue
		}
		if a, ok := vipOfName(f[7]); ok && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out, sc.Err()
}
