package lab

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrKeepalivedConfig is wrapped by KeepalivedConfig.Validate's errors.
var ErrKeepalivedConfig = errors.New("keepalived config")

// KeepalivedConfig is one keepalived VRRP instance, the reference peer that
// hapod must interoperate with (Debian's keepalived 2.2.7). One keepalived
// process runs one or several (RenderKeepalived, Node.StartKeepalived).
type KeepalivedConfig struct {
	// Name is the vrrp_instance name; default "VI_<VRID>" for an IPv4 VIP,
	// "VI6_<VRID>" for an IPv6 one, so that a process running both
	// families' instances on one VRID names them apart.
	Name string
	// Interface carries the adverts and the VIP, e.g. Node.Iface.
	Interface string
	// VRID is the virtual router ID, 1..255.
	VRID uint8
	// Priority is 1..255 (255: address owner).
	Priority uint8
	// Interval is the advert interval: whole seconds with Version 2,
	// centiseconds (at most 40.95 s) with Version 3.
	Interval time.Duration
	// Version is the VRRP version, 2 or 3; an IPv6 VIP needs 3.
	Version int
	// VIP is the virtual address with its prefix length.
	VIP netip.Prefix
	// Peers switch the instance to unicast adverts. Render writes one
	// address per line: keepalived silently uses only the first address of
	// a line, which splits the brain.
	Peers []netip.Addr
	// Source is unicast_src_ip; keepalived defaults to the interface's
	// primary address of the family.
	Source netip.Addr
	// AuthPass sets VRRPv2 simple password authentication (auth_type PASS),
	// at most 8 characters (keepalived ignores the rest); empty for none.
	AuthPass string
	// Preempt lets a higher priority router take the VIP back. The zero
	// value renders nopreempt; the state is always BACKUP, which nopreempt
	// requires.
	Preempt bool
	// Extra lines go verbatim inside the vrrp_instance block, for options
	// a test needs that this struct doesn't model (e.g. "garp_master_delay 0").
	Extra []string
}

// Validate checks what keepalived would reject or silently misread.
func (c KeepalivedConfig) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrKeepalivedConfig, fmt.Sprintf(format, a...))
	}
	switch {
	case c.Interface == "":
		return bad("interface is empty")
	case c.VRID == 0:
		return bad("vrid 0: want 1..255")
	case c.Priority == 0:
		return bad("priority 0: want 1..255 (0 is only sent when resigning)")
	case c.Version != 2 && c.Version != 3:
		return bad("version %d: want 2 or 3", c.Version)
	case !c.VIP.IsValid():
		return bad("vip is not set")
	case c.Interval <= 0:
		return bad("interval %v: want > 0", c.Interval)
	case c.Version == 2 && c.Interval%time.Second != 0:
		return bad("interval %v: VRRPv2 counts whole seconds", c.Interval)
	case c.Version == 3 && (c.Interval%(10*time.Millisecond) != 0 || c.Interval > 40950*time.Millisecond):
		return bad("interval %v: VRRPv3 counts centiseconds up to 40.95s", c.Interval)
	case is6(c.VIP.Addr()) && c.Version != 3:
		return bad("IPv6 vip %s needs version 3", c.VIP)
	case c.AuthPass != "" && c.Version != 2:
		return bad("authentication exists only in VRRPv2")
	case len(c.AuthPass) > 8:
		return bad("auth_pass longer than 8 characters: keepalived uses only the first 8")
	}
	for _, p := range c.Peers {
		if !p.IsValid() || is6(p) != is6(c.VIP.Addr()) {
			return bad("peer %v: not an address of the vip's family", p)
		}
	}
	if c.Source.IsValid() && is6(c.Source) != is6(c.VIP.Addr()) {
		return bad("source %v: not an address of the vip's family", c.Source)
	}
	for _, l := range c.Extra {
		if strings.ContainsAny(l, "{}\n") {
			return bad("extra line %q: blocks and newlines are not allowed", l)
		}
	}
	return nil
}

func is6(a netip.Addr) bool { return a.Is6() && !a.Is4In6() }

// InstanceName is the vrrp_instance name, which keepalived's log lines
// about the instance start with in parentheses: Name, or the default of
// the VIP's family.
func (c KeepalivedConfig) InstanceName() string {
	switch {
	case c.Name != "":
		return c.Name
	case is6(c.VIP.Addr()):
		return fmt.Sprintf("VI6_%d", c.VRID)
	default:
		return fmt.Sprintf("VI_%d", c.VRID)
	}
}

// ValidateKeepalived checks every instance (Validate) and what keepalived
// rejects or misreads across the instances of one process: none at all,
// two of one name, and two of one VRID and family on one interface (one
// virtual router twice; the same VRID in both families is two routers,
// RFC 9568).
func ValidateKeepalived(cs ...KeepalivedConfig) error {
	if len(cs) == 0 {
		return fmt.Errorf("%w: no vrrp_instance", ErrKeepalivedConfig)
	}
	type router struct {
		iface string
		vrid  uint8
		ipv6  bool
	}
	names := make(map[string]int, len(cs))
	routers := make(map[router]int, len(cs))
	for i, c := range cs {
		if err := c.Validate(); err != nil {
			return fmt.Errorf("instance %d: %w", i, err)
		}
		name := c.InstanceName()
		if j, ok := names[name]; ok {
			return fmt.Errorf("%w: instances %d and %d are both named %s", ErrKeepalivedConfig, j, i, name)
		}
		names[name] = i
		r := router{c.Interface, c.VRID, is6(c.VIP.Addr())}
		if j, ok := routers[r]; ok {
			return fmt.Errorf("%w: instances %d and %d are both VRID %d of one family on %s", ErrKeepalivedConfig, j, i, c.VRID, c.Interface)
		}
		routers[r] = i
	}
	return nil
}

// Render is the keepalived.conf text for c alone (RenderKeepalived). It is
// pure; call Validate first.
func (c KeepalivedConfig) Render() string { return RenderKeepalived(c) }

// RenderKeepalived is the keepalived.conf text running every instance of cs
// in one keepalived process: one global_defs block (router_id: the first
// instance's name), then a vrrp_instance block per config, in order. No
// vrrp_sync_group ties them: each instance elects its holder on its own, as
// two keepalived processes would. It is pure; call ValidateKeepalived first.
func RenderKeepalived(cs ...KeepalivedConfig) string {
	var b strings.Builder
	w := func(indent int, format string, a ...any) {
		b.WriteString(strings.Repeat("    ", indent))
		fmt.Fprintf(&b, format, a...)
		b.WriteByte('\n')
	}
	w(0, "# rendered by github.com/hapod/hapod/internal/lab")
	w(0, "global_defs {")
	if len(cs) > 0 {
		w(1, "router_id %s", cs[0].InstanceName())
	}
	// Scripts are never configured; these keep keepalived from warning
	// about (or refusing, as root) script security.
	w(1, "enable_script_security")
	w(1, "script_user root")
	// -1: no realtime priority boosts (the default) and no startup warning
	// about it.
	w(1, "max_auto_priority -1")
	// vrrp_strict stays off: it would force no_accept (the VIP would not
	// answer connects) and refuse unicast peers with authentication.
	w(0, "}")
	for _, c := range cs {
		w(0, "")
		c.renderInstance(w)
	}
	return b.String()
}

// renderInstance writes c's vrrp_instance block with w (indent in levels of
// four spaces, then a format and its arguments: one line).
func (c KeepalivedConfig) renderInstance(w func(indent int, format string, a ...any)) {
	w(0, "vrrp_instance %s {", c.InstanceName())
	w(1, "state BACKUP")
	w(1, "interface %s", c.Interface)
	w(1, "version %d", c.Version)
	w(1, "virtual_router_id %d", c.VRID)
	w(1, "priority %d", c.Priority)
	w(1, "advert_int %s", seconds(c.Interval))
	if !c.Preempt {
		w(1, "nopreempt")
	}
	if c.Source.IsValid() {
		w(1, "unicast_src_ip %s", c.Source.Unmap())
	}
	if len(c.Peers) > 0 {
		w(1, "unicast_peer {")
		for _, p := range c.Peers {
			w(2, "%s", p.Unmap())
		}
		w(1, "}")
	}
	if c.AuthPass != "" {
		w(1, "authentication {")
		w(2, "auth_type PASS")
		w(2, "auth_pass %s", c.AuthPass)
		w(1, "}")
	}
	w(1, "virtual_ipaddress {")
	w(2, "%s dev %s", netip.PrefixFrom(c.VIP.Addr().Unmap(), c.VIP.Bits()), c.Interface)
	w(1, "}")
	for _, l := range c.Extra {
		w(1, "%s", l)
	}
	w(0, "}")
}

// seconds formats d as keepalived's decimal seconds ("1", "0.1", "0.25").
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}

// Keepalived is a keepalived daemon running in a node. The embedded Process
// is the parent (monitor) process; the VRRP work happens in a child whose
// PID is in VRRPPidFile.
type Keepalived struct {
	*Process
	// Instances are what the daemon runs, one vrrp_instance each.
	Instances []KeepalivedConfig
	// ConfPath, PidFile and VRRPPidFile are in the test's temporary
	// directory, unique per instance so that several run at once.
	ConfPath, PidFile, VRRPPidFile string
}

// StartKeepalived writes the instances to one file (RenderKeepalived) and
// runs keepalived in the node, in the foreground (-n), logging to the
// process log only (-l -G -D), VRRP only (-P), with its own pid files. The
// VRRP child, which runs every instance, is not respawned (-R): killing it
// is a hard failure that leaves the VIPs behind, as a crashed host would.
//
// Signals: SIGTERM to the process (Signal) makes keepalived resign (one
// priority 0 advert per instance it masters) and remove the VIPs. So does
// SIGKILL to the process, measured here: the VRRP child notices its
// parent's death and resigns just as gracefully. KillVRRP is the only hard
// failure. The daemon and its child are SIGKILLed in t.Cleanup.
func (n *Node) StartKeepalived(t T, instances ...KeepalivedConfig) *Keepalived {
	t.Helper()
	if err := ValidateKeepalived(instances...); err != nil {
		t.Fatalf("%s: %v", n.Name, err)
	}
	dir := t.TempDir()
	k := &Keepalived{
		Instances:   instances,
		ConfPath:    filepath.Join(dir, "keepalived.conf"),
		PidFile:     filepath.Join(dir, "keepalived.pid"),
		VRRPPidFile: filepath.Join(dir, "vrrp.pid"),
	}
	if err := os.WriteFile(k.ConfPath, []byte(RenderKeepalived(instances...)), 0o600); err != nil {
		t.Fatalf("%s: %v", n.Name, err)
	}
	// Registered before Start so it runs after the parent is killed (cleanups
	// run last-in first-out): a live parent would respawn a killed child.
	t.Cleanup(func() {
		if pid, err := k.VRRPPid(); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	k.Process = n.Start(t, "keepalived", "-n", "-l", "-G", "-D", "-R", "-P",
		"-f", k.ConfPath, "-p", k.PidFile, "-r", k.VRRPPidFile)
	return k
}

// VRRPPid reads the VRRP child's PID from its pid file (written shortly
// after start, removed when the child exits).
func (k *Keepalived) VRRPPid() (int, error) {
	b, err := os.ReadFile(k.VRRPPidFile)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", k.VRRPPidFile, err)
	}
	return pid, nil
}

// KillVRRP SIGKILLs the VRRP child: no resignation advert, the VIPs of
// every instance stay on the interface, the peers take over after the
// master down interval. The parent then exits (no respawn).
func (k *Keepalived) KillVRRP() error {
	pid, err := k.VRRPPid()
	if err != nil {
		return err
	}
	return syscall.Kill(pid, syscall.SIGKILL)
}

// State is the VRRP state keepalived last logged for the instance named
// name ("MASTER", "BACKUP", "FAULT"), from its "(name) Entering X STATE"
// lines; "" before the first. keepalived offers no other view of its state
// without SNMP or D-Bus (its SIGUSR1 dump goes to one fixed file for every
// keepalived on the machine).
func (k *Keepalived) State(name string) string { return keepalivedState(k.Log(), name) }

// Complaints are the lines where keepalived rejected a received advert
// (keepalived 2.2.7's vrrp_in_chk logs each rejection, one line per
// packet), or fell back to the pre-RFC unicast checksum to accept one:
// between interoperating peers there must be none.
func (k *Keepalived) Complaints() []string { return keepalivedComplaints(k.Log()) }

func keepalivedState(log, name string) string {
	prefix := "(" + name + ") Entering "
	state := ""
	for _, line := range strings.Split(log, "\n") {
		_, rest, ok := strings.Cut(line, prefix)
		if !ok {
			continue
		}
		if s, _, ok := strings.Cut(rest, " STATE"); ok {
			state = s
		}
	}
	return state
}

// keepalivedRejections are fragments of keepalived's vrrp_in_chk messages,
// one per receive check: header too short, TTL, auth type and password,
// v2 interval, version, packet type, VRID, address count, lengths,
// checksum (and the old unicast checksum fallback), the address list and
// the unicast source.
var keepalivedRejections = []string{
	"too short", "invalid ttl", "Invalid auth type", "auth, expecting", "invalid passwd",
	"interval mismatch", "invalid version", "Invalid packet type", "VRID mismatch",
	"invalid ip number count", "length mismatch", "ip_tot_len mismatch", "checksum",
	"not present in MASTER advert", "not a unicast peer",
}

func keepalivedComplaints(log string) []string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		for _, r := range keepalivedRejections {
			if strings.Contains(line, r) {
				out = append(out, line)
				break
			}
		}
	}
	return out
}
