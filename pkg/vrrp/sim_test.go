package vrrp

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The simulation tests run several routers on a simulated LAN in one
// goroutine: each is the core a Speaker runs (Machine, VIP plan, peers,
// status, logs), fed exactly as the Speaker's loop feeds it, with no clock
// and no scheduling luck. Each file in
// testdata/sim is a transcript in the style of etcd-io/raft's
// interaction tests: a command, "----", then what it made happen, then a
// blank line. `go test ./pkg/vrrp -run TestSim -rewrite` writes the
// observed output back into the files; review the diff.
//
// Commands:
//
//	node NAME LAST-BYTE PRIORITY [preempt] [handover=DUR] [tiebreak] [v2]
//	    a v3 router at 198.18.0.LAST-BYTE, advert interval 100ms (v2: 1s)
//	start NAME...        the Speaker's Run starts
//	run DUR              advance time, delivering adverts and timers
//	stop NAME            Run's context is cancelled (graceful stop)
//	crash NAME           the node is cut off: nothing it sends arrives,
//	                     nothing reaches it; its loop runs on
//	cut A B / heal A B   partition the pair / end it
//	priority NAME P      the effective priority AdjustPriority computed
//	link NAME up|down    SetLink
//	fail NAME acquire|release|send N
//	                     the next N such calls fail
//	inject NAME BYTE PRIO [vrid=N] [v2] | inject NAME nil
//	                     an advert from 198.18.0.BYTE reaches NAME now
//	state                every node's state, active router and VIP
//	status NAME          the node's Status
//
// Adverts cross the LAN in simLatency, in the order they were sent; a node
// whose link is down or that crashed neither sends nor hears. Output lines
// are the calls a node makes (advert, acquire, release, with "failed" when
// told to fail) and what it logs at Info and above. Regular adverts of an
// active router (a timer that sends only its advert) are counted, not
// listed. Lines starting with # before a command are kept.

var rewrite = flag.Bool("rewrite", false, "rewrite the transcripts in testdata/sim with the observed output")

func TestSim(t *testing.T) {
	files, err := filepath.Glob("testdata/sim/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) { runTranscript(t, f) })
	}
}

// simLatency is how long an advert takes across the simulated LAN: short
// against every timer, but not zero, so that routers whose timers expire
// at the same instant all act before they hear each other, as on a wire.
const simLatency = 100 * time.Microsecond

// block is one command of a transcript, the comment lines before it, and
// the output it should produce.
type block struct {
	comment   []string
	cmd, want string
}

func parseTranscript(t *testing.T, path string) []block {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var (
		blocks  []block
		cur     *block
		inOut   bool
		out     []string
		comment []string
	)
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case cur == nil && strings.HasPrefix(line, "#"):
			comment = append(comment, line)
		case cur == nil && line == "":
		case cur == nil:
			cur = &block{comment: comment, cmd: line}
			comment = nil
		case !inOut && line == "----":
			inOut = true
		case !inOut:
			t.Fatalf("%s: command %q not followed by ----", path, cur.cmd)
		case line == "":
			cur.want = strings.Join(out, "\n")
			blocks = append(blocks, *cur)
			cur, inOut, out = nil, false, nil
		default:
			out = append(out, line)
		}
	}
	if cur != nil {
		cur.want = strings.Join(out, "\n")
		blocks = append(blocks, *cur)
	}
	return blocks
}

func runTranscript(t *testing.T, path string) {
	blocks := parseTranscript(t, path)
	s := newSim()
	var b strings.Builder
	for i, bl := range blocks {
		got, err := s.exec(bl.cmd)
		if err != nil {
			t.Fatalf("%s: %q: %v", path, bl.cmd, err)
		}
		if i > 0 {
			b.WriteString("\n")
		}
		for _, c := range bl.comment {
			b.WriteString(c + "\n")
		}
		fmt.Fprintf(&b, "%s\n----\n", bl.cmd)
		if got != "" {
			b.WriteString(got + "\n")
		}
		if !*rewrite && got != bl.want {
			t.Errorf("%s: %q:\ngot:\n%s\nwant:\n%s", path, bl.cmd, got, bl.want)
		}
	}
	if *rewrite {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

var simT0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

var errSim = errors.New("injected failure")

type simNode struct {
	s      *sim
	name   string
	addr   netip.Addr
	c      *core
	link   bool // SetLink's last word
	prio   uint8
	dead   bool // crashed
	held   bool // the VIP is on the node
	exited bool // Run returned

	failAcquire, failRelease, failSend int

	lines   []string // this step's output
	adverts int      // regular adverts, not listed
}

func (n *simNode) out(format string, args ...any) {
	n.lines = append(n.lines, fmt.Sprintf(format, args...))
}

// Write takes the node's log records, one per call, at Info and above,
// as "LEVEL message attrs".
func (n *simNode) Write(p []byte) (int, error) {
	line := strings.TrimSuffix(string(p), "\n")
	if m := logLine.FindStringSubmatch(line); m != nil {
		msg := m[2]
		if u, err := strconv.Unquote(msg); err == nil {
			msg = u
		}
		line = m[1] + " " + msg + m[3]
	}
	n.lines = append(n.lines, line)
	return len(p), nil
}

// logLine splits a slog text record without its time into level,
// message and the rest.
var logLine = regexp.MustCompile(`^level=(\S+) msg=("(?:[^"\\]|\\.)*"|\S+)(.*)$`)

func (n *simNode) send(p *Packet) error {
	if n.failSend > 0 {
		n.failSend--
		n.out("advert %d failed", p.Priority)
		return errSim
	}
	n.out("advert %d", p.Priority)
	n.s.send(n, p)
	return nil
}

func (n *simNode) acquire() error { return n.vipCall("acquire", &n.failAcquire, true) }
func (n *simNode) release() error { return n.vipCall("release", &n.failRelease, false) }

// vipCall is an Acquire or Release: it fails while *fails is positive,
// else leaves the VIP held or not.
func (n *simNode) vipCall(name string, fails *int, held bool) error {
	if *fails > 0 {
		*fails--
		n.out("%s failed", name)
		return errSim
	}
	n.held = held
	n.out("%s", name)
	return nil
}

// simEvent is an advert due at one node.
type simEvent struct {
	at   time.Time
	seq  int
	node *simNode
	rcv  Received
}

type sim struct {
	now   time.Time
	seq   int
	nodes []*simNode
	queue []simEvent // adverts in flight
	cut   map[[2]string]bool
	out   []string
}

func newSim() *sim { return &sim{now: simT0, cut: map[[2]string]bool{}} }

func (s *sim) node(name string) (*simNode, error) {
	for _, n := range s.nodes {
		if n.name == name {
			return n, nil
		}
	}
	return nil, fmt.Errorf("no node %q", name)
}

func pair(a, b string) [2]string {
	if b < a {
		a, b = b, a
	}
	return [2]string{a, b}
}

func (s *sim) addNode(f []string) error {
	last, err1 := strconv.ParseUint(f[2], 10, 8)
	prio, err2 := strconv.ParseUint(f[3], 10, 8)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("bad address byte or priority")
	}
	addr := netip.AddrFrom4([4]byte{198, 18, 0, byte(last)})
	cfg := MachineConfig{VRID: 7, Priority: uint8(prio), Interval: 100 * time.Millisecond, Version: Version3, Primary: addr}
	tiebreak := false
	for _, opt := range f[4:] {
		switch {
		case opt == "preempt":
			cfg.Preempt = true
		case opt == "tiebreak":
			tiebreak = true
		case opt == "v2":
			cfg.Version, cfg.Interval = Version2, time.Second
		case strings.HasPrefix(opt, "handover="):
			d, err := time.ParseDuration(strings.TrimPrefix(opt, "handover="))
			if err != nil {
				return err
			}
			cfg.HandoverTimeout = d
		default:
			return fmt.Errorf("unknown option %q", opt)
		}
	}
	if tiebreak {
		cfg.TieBreak = TieBreakDelay(addr, cfg.Interval)
	}
	n := &simNode{s: s, name: f[1], addr: addr, link: true, prio: uint8(prio)}
	log := slog.New(slog.NewTextHandler(n, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			return a
		},
	}))
	n.c = newCore(s.now, cfg, n, log)
	s.nodes = append(s.nodes, n)
	return nil
}

// inject makes an advert described by f (see the commands) reach a node.
func (s *sim) inject(n *simNode, f []string) error {
	if len(f) == 1 && f[0] == "nil" {
		s.wake(n, wakeup{rcv: &Received{Src: netip.AddrFrom4([4]byte{198, 18, 0, 99})}}, false)
		return nil
	}
	if len(f) < 2 {
		return fmt.Errorf("inject needs a sender and a priority")
	}
	last, err1 := strconv.ParseUint(f[0], 10, 8)
	prio, err2 := strconv.ParseUint(f[1], 10, 8)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("bad address byte or priority")
	}
	p := &Packet{Version: Version3, VRID: 7, Priority: uint8(prio), Interval: 100 * time.Millisecond}
	for _, opt := range f[2:] {
		switch {
		case opt == "v2":
			p.Version, p.Interval = Version2, time.Second
		case strings.HasPrefix(opt, "vrid="):
			v, err := strconv.ParseUint(strings.TrimPrefix(opt, "vrid="), 10, 8)
			if err != nil {
				return err
			}
			p.VRID = uint8(v)
		default:
			return fmt.Errorf("unknown option %q", opt)
		}
	}
	s.wake(n, wakeup{rcv: &Received{Packet: p, Src: netip.AddrFrom4([4]byte{198, 18, 0, byte(last)})}}, false)
	return nil
}

func (s *sim) exec(line string) (string, error) {
	f := strings.Fields(line)
	s.out = nil
	var n *simNode
	if len(f) >= 2 && f[0] != "node" && f[0] != "start" && f[0] != "run" {
		var err error
		if n, err = s.node(f[1]); err != nil {
			return "", err
		}
	}
	switch {
	case f[0] == "node" && len(f) >= 4:
		if err := s.addNode(f); err != nil {
			return "", err
		}
	case f[0] == "start":
		for _, name := range f[1:] {
			n, err := s.node(name)
			if err != nil {
				return "", err
			}
			n.c.start(s.now, n.link, n.prio)
			s.flush(n, false)
		}
	case f[0] == "stop" && len(f) == 2:
		s.wake(n, wakeup{stop: true}, false)
	case f[0] == "crash" && len(f) == 2:
		n.dead = true
	case (f[0] == "cut" || f[0] == "heal") && len(f) == 3:
		s.cut[pair(f[1], f[2])] = f[0] == "cut"
	case f[0] == "priority" && len(f) == 3:
		p, err := strconv.ParseUint(f[2], 10, 8)
		if err != nil {
			return "", err
		}
		n.prio = uint8(p)
		s.wake(n, wakeup{}, false)
	case f[0] == "link" && len(f) == 3:
		n.link = f[2] == "up"
		s.wake(n, wakeup{}, false)
	case f[0] == "fail" && len(f) == 4:
		k, err := strconv.Atoi(f[3])
		if err != nil {
			return "", err
		}
		switch f[2] {
		case "acquire":
			n.failAcquire = k
		case "release":
			n.failRelease = k
		case "send":
			n.failSend = k
		default:
			return "", fmt.Errorf("cannot fail %q", f[2])
		}
	case f[0] == "inject" && len(f) >= 3:
		if err := s.inject(n, f[2:]); err != nil {
			return "", err
		}
	case f[0] == "run" && len(f) == 2:
		d, err := time.ParseDuration(f[1])
		if err != nil {
			return "", err
		}
		s.run(s.now.Add(d))
	case f[0] == "state":
		for _, n := range s.nodes {
			m := n.c.m
			st := m.State().String()
			if n.dead {
				st += " (crashed)"
			}
			if !n.link {
				st += " (no link)"
			}
			if n.exited {
				st += " (exited)"
			}
			ar := "-"
			if a := m.ActiveRouter(); a.IsValid() {
				ar = a.String()
			}
			vip := ""
			if n.held {
				vip = " VIP"
			}
			s.out = append(s.out, fmt.Sprintf("%s: %s prio %d active-router %s%s", n.name, st, m.Priority(), ar, vip))
		}
	case f[0] == "status" && len(f) == 2:
		s.status(n)
	default:
		return "", fmt.Errorf("unknown command")
	}
	return strings.Join(s.out, "\n"), nil
}

// status prints a node's Status as the Speaker publishes it.
func (s *sim) status(n *simNode) {
	st := n.c.snapshot()
	ar := "-"
	if st.ActiveRouter.IsValid() {
		ar = st.ActiveRouter.String()
	}
	s.out = append(s.out,
		fmt.Sprintf("state %v since %v (%s)", st.State, st.Since.Sub(simT0), st.LastReason),
		fmt.Sprintf("priority %d/%d active-router %s vip-held %v", st.EffectivePriority, st.BasePriority, ar, st.VIPHeld),
		fmt.Sprintf("adverts sent %d received %d, transitions %d", st.AdvertsSent, st.AdvertsReceived, st.Transitions))
	keys := slices.Collect(maps.Keys(st.TransitionsBy))
	slices.SortFunc(keys, func(a, b TransitionKey) int {
		if a.To != b.To {
			return int(a.To) - int(b.To)
		}
		return int(a.Reason) - int(b.Reason)
	})
	for _, k := range keys {
		s.out = append(s.out, fmt.Sprintf("  to %v (%v): %d", k.To, k.Reason, st.TransitionsBy[k]))
	}
	for _, p := range st.Peers {
		s.out = append(s.out, fmt.Sprintf("  peer %s prio %d interval %v heard %d, last at %v",
			p.Addr, p.Priority, p.Interval, p.Adverts, p.LastHeard.Sub(simT0)))
	}
}

// run delivers everything due up to and including until, in time order;
// at the same instant adverts in flight come before timers.
func (s *sim) run(until time.Time) {
	for {
		var next *simEvent
		if len(s.queue) > 0 {
			next = &s.queue[0]
		}
		var tickNode *simNode
		var tickAt time.Time
		for _, n := range s.nodes {
			if n.exited {
				continue
			}
			if dl := n.c.wakeAt(); !dl.IsZero() && (tickAt.IsZero() || dl.Before(tickAt)) {
				tickNode, tickAt = n, dl
			}
		}
		switch {
		case next != nil && !next.at.After(until) && (tickNode == nil || !tickAt.Before(next.at)):
			e := *next
			s.queue = s.queue[1:]
			s.now = e.at
			if n := e.node; !n.dead && n.link && !n.exited {
				s.wake(n, wakeup{rcv: &e.rcv}, false)
			}
		case tickNode != nil && !tickAt.After(until):
			s.now = tickAt
			s.wake(tickNode, wakeup{}, true)
		default:
			s.now = until
			for _, n := range s.nodes {
				if n.adverts > 0 {
					s.out = append(s.out, fmt.Sprintf("%s sent %d regular adverts", n.name, n.adverts))
					n.adverts = 0
				}
			}
			return
		}
	}
}

// wake is one turn of the node's loop at s.now, with its controls; timer
// says no input woke it. When the loop ends, exit follows as in Run.
func (s *sim) wake(n *simNode, w wakeup, timer bool) {
	if n.exited {
		return
	}
	w.link, w.prio = n.link, n.prio
	before := n.c.m.State()
	if n.c.wake(s.now, w) {
		n.exited = true
		if err := n.c.exit(s.now); err != nil {
			n.out("exit: %v", err)
		} else {
			n.out("exit")
		}
	}
	regular := timer && before == StateActive && n.c.m.State() == StateActive &&
		len(n.lines) == 1 && n.lines[0] == fmt.Sprintf("advert %d", n.c.m.Priority())
	s.flush(n, regular)
}

// flush moves the node's output of one step to the transcript.
func (s *sim) flush(n *simNode, regular bool) {
	at := s.now.Sub(simT0)
	if regular {
		n.adverts++
		n.lines = nil
		return
	}
	for _, l := range n.lines {
		s.out = append(s.out, fmt.Sprintf("%v %s: %s", at, n.name, l))
	}
	n.lines = nil
}

// send puts an advert in flight to every other live, connected node.
func (s *sim) send(from *simNode, p *Packet) {
	if from.dead || !from.link {
		return
	}
	for _, n := range s.nodes {
		if n == from || s.cut[pair(from.name, n.name)] {
			continue
		}
		s.seq++
		q := *p
		s.queue = append(s.queue, simEvent{at: s.now.Add(simLatency), seq: s.seq, node: n, rcv: Received{Packet: &q, Src: from.addr}})
	}
	slices.SortStableFunc(s.queue, func(a, b simEvent) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.seq - b.seq
	})
}
