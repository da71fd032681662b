package vrrp

import (
	"bufio"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The simulation tests run several Machines on a simulated LAN in one
// goroutine: no Speaker, no clock, no scheduling luck. Each file in
// testdata/sim is a transcript in the style of etcd-io/raft's
// interaction tests: a command, "----", then what it made happen, then a
// blank line. `go test ./pkg/vrrp -run TestSim -rewrite` writes the
// observed output back into the files; review the diff.
//
// Commands:
//
//	node NAME LAST-BYTE PRIORITY [preempt] [handover=DUR] [tiebreak]
//	    a v3 router at 198.18.0.LAST-BYTE, advert interval 100ms
//	start NAME...        Startup
//	run DUR              advance time, delivering adverts and ticks
//	stop NAME            Shutdown (graceful)
//	crash NAME           the node goes silent and deaf
//	cut A B / heal A B   partition the pair / end it
//	priority NAME P      SetPriority
//	link NAME up|down    LinkUp / LinkDown
//	state                every node's state, active router and VIP
//
// Adverts cross the LAN in simLatency, in the order they were sent; a node
// whose link is down or that crashed neither sends nor hears. Regular
// adverts of an active router (a Tick that sends only its advert) are
// counted, not listed. Lines starting with # before a command are kept.

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

type simNode struct {
	name    string
	m       *Machine
	dead    bool // crashed
	noLink  bool
	held    bool
	adverts int // regular adverts, not listed
}

// simEvent is an input due for one node.
type simEvent struct {
	at   time.Time
	seq  int
	node *simNode
	in   Input
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

func (s *sim) exec(line string) (string, error) {
	f := strings.Fields(line)
	s.out = nil
	switch {
	case f[0] == "node" && len(f) >= 4:
		last, err1 := strconv.ParseUint(f[2], 10, 8)
		prio, err2 := strconv.ParseUint(f[3], 10, 8)
		if err1 != nil || err2 != nil {
			return "", fmt.Errorf("bad address byte or priority")
		}
		addr := netip.AddrFrom4([4]byte{198, 18, 0, byte(last)})
		cfg := MachineConfig{VRID: 7, Priority: uint8(prio), Interval: 100 * time.Millisecond, Version: Version3, Primary: addr}
		for _, opt := range f[4:] {
			switch {
			case opt == "preempt":
				cfg.Preempt = true
			case opt == "tiebreak":
				cfg.TieBreak = TieBreakDelay(addr, cfg.Interval)
			case strings.HasPrefix(opt, "handover="):
				d, err := time.ParseDuration(strings.TrimPrefix(opt, "handover="))
				if err != nil {
					return "", err
				}
				cfg.HandoverTimeout = d
			default:
				return "", fmt.Errorf("unknown option %q", opt)
			}
		}
		s.nodes = append(s.nodes, &simNode{name: f[1], m: NewMachine(cfg)})
	case f[0] == "start":
		for _, name := range f[1:] {
			n, err := s.node(name)
			if err != nil {
				return "", err
			}
			s.step(n, Startup{})
		}
	case f[0] == "stop" && len(f) == 2:
		n, err := s.node(f[1])
		if err != nil {
			return "", err
		}
		s.step(n, Shutdown{})
	case f[0] == "crash" && len(f) == 2:
		n, err := s.node(f[1])
		if err != nil {
			return "", err
		}
		n.dead = true
	case (f[0] == "cut" || f[0] == "heal") && len(f) == 3:
		s.cut[pair(f[1], f[2])] = f[0] == "cut"
	case f[0] == "priority" && len(f) == 3:
		n, err := s.node(f[1])
		if err != nil {
			return "", err
		}
		p, err := strconv.ParseUint(f[2], 10, 8)
		if err != nil {
			return "", err
		}
		s.step(n, SetPriority{Priority: uint8(p)})
	case f[0] == "link" && len(f) == 3:
		n, err := s.node(f[1])
		if err != nil {
			return "", err
		}
		n.noLink = f[2] != "up"
		if n.noLink {
			s.step(n, LinkDown{})
		} else {
			s.step(n, LinkUp{})
		}
	case f[0] == "run" && len(f) == 2:
		d, err := time.ParseDuration(f[1])
		if err != nil {
			return "", err
		}
		s.run(s.now.Add(d))
	case f[0] == "state":
		for _, n := range s.nodes {
			st := n.m.State().String()
			if n.dead {
				st += " (crashed)"
			}
			if n.noLink {
				st += " (no link)"
			}
			ar := "-"
			if a := n.m.ActiveRouter(); a.IsValid() {
				ar = a.String()
			}
			vip := ""
			if n.held {
				vip = " VIP"
			}
			s.out = append(s.out, fmt.Sprintf("%s: %s prio %d active-router %s%s", n.name, st, n.m.Priority(), ar, vip))
		}
	default:
		return "", fmt.Errorf("unknown command")
	}
	return strings.Join(s.out, "\n"), nil
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
			if n.dead {
				continue
			}
			if dl := n.m.NextDeadline(); !dl.IsZero() && (tickAt.IsZero() || dl.Before(tickAt)) {
				tickNode, tickAt = n, dl
			}
		}
		switch {
		case next != nil && !next.at.After(until) && (tickNode == nil || !tickAt.Before(next.at)):
			e := *next
			s.queue = s.queue[1:]
			s.now = e.at
			if !e.node.dead && !e.node.noLink {
				s.step(e.node, e.in)
			}
		case tickNode != nil && !tickAt.After(until):
			s.now = tickAt
			s.step(tickNode, Tick{})
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

func (s *sim) step(n *simNode, in Input) {
	before := n.m.State()
	acts := n.m.Step(s.now, in)
	regular := false
	if _, ok := in.(Tick); ok && before == StateActive && n.m.State() == StateActive && len(acts) == 1 {
		_, regular = acts[0].(SendAdvert)
	}
	at := s.now.Sub(simT0)
	for _, a := range acts {
		switch a := a.(type) {
		case SendAdvert:
			if regular {
				n.adverts++
			} else {
				s.out = append(s.out, fmt.Sprintf("%v %s: advert %d", at, n.name, a.Priority))
			}
			s.send(n, a.Priority)
		case Transition:
			s.out = append(s.out, fmt.Sprintf("%v %s: %v -> %v (%s)", at, n.name, a.From, a.To, a.Text()))
		case TakeVIP:
			n.held = true
			s.out = append(s.out, fmt.Sprintf("%v %s: take VIP", at, n.name))
		case ReleaseVIP:
			n.held = false
			s.out = append(s.out, fmt.Sprintf("%v %s: release VIP", at, n.name))
		case AnnounceVIP:
			s.out = append(s.out, fmt.Sprintf("%v %s: announce VIP", at, n.name))
		case HandoverDone:
			to := "nobody (timed out)"
			if a.To.IsValid() {
				to = fmt.Sprintf("%s (prio %d)", a.To, a.Priority)
			}
			s.out = append(s.out, fmt.Sprintf("%v %s: handover to %s after %v", at, n.name, to, a.After))
		default:
			s.out = append(s.out, fmt.Sprintf("%v %s: %#v", at, n.name, a))
		}
	}
}

// send puts an advert in flight to every other live, connected node.
func (s *sim) send(from *simNode, prio uint8) {
	if from.dead || from.noLink {
		return
	}
	for _, n := range s.nodes {
		if n == from || s.cut[pair(from.name, n.name)] {
			continue
		}
		s.seq++
		s.queue = append(s.queue, simEvent{at: s.now.Add(simLatency), seq: s.seq, node: n,
			in: Advert{From: from.m.cfg.Primary, Priority: prio, Interval: from.m.cfg.Interval}})
	}
	slices.SortStableFunc(s.queue, func(a, b simEvent) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.seq - b.seq
	})
}
