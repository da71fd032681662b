package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// ErrUnreachable wraps every failure to get a Report from a status server.
var ErrUnreachable = errors.New("status server unreachable")

// Fetch reads the Report of the hapod whose status server is at addr.
// Every failure wraps ErrUnreachable and fits on one line.
func Fetch(ctx context.Context, client *http.Client, addr netip.AddrPort) (Report, error) {
	if client == nil {
		client = http.DefaultClient
	}
	fail := func(err error) (Report, error) {
		return Report{}, fmt.Errorf("%w at %s: %v", ErrUnreachable, addr, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr.String()+"/status", nil)
	if err != nil {
		return fail(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		// The url.Error's "Get URL:" prefix repeats the address.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return fail(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fail(fmt.Errorf("GET /status: %s", resp.Status))
	}
	var r Report
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&r); err != nil {
		return fail(fmt.Errorf("GET /status: %w", err))
	}
	return r, nil
}

// peerLine describes a peer for the table: its last advert and when it
// came.
func peerLine(p PeerReport) string {
	prio := fmt.Sprintf("priority %d", p.Priority)
	if p.Priority == 0 {
		prio += " (leaving)"
	}
	s := fmt.Sprintf("%s, every %s, heard %s ago, %d adverts", prio,
		humanDuration(time.Duration(p.IntervalSeconds*float64(time.Second))),
		humanDuration(time.Duration(p.LastHeardSecondsAgo*float64(time.Second))), p.Adverts)
	if p.Active {
		s += ", active router"
	}
	return s
}

// WriteTable prints r compactly for a terminal: the node line, a block
// per virtual router (its state, VIPs and peers), the proxy, then one row
// per backend.
func WriteTable(w io.Writer, r Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	health := "healthy"
	if !r.Healthy {
		health = "NOT HEALTHY: " + strings.Join(r.Problems, "; ")
	}
	fmt.Fprintf(tw, "NODE\t%s\t%s\n", r.Node, health)
	for _, rr := range r.Routers {
		writeRouter(tw, rr)
	}
	// One listener per line, so that several VIPs do not widen the
	// first column of every other line.
	first := ""
	if len(r.Proxy.Listen) > 0 {
		first = r.Proxy.Listen[0].String()
	}
	fmt.Fprintf(tw, "PROXY\t%s\tactive %d, accepted %d\n", first, r.Proxy.Active, r.Proxy.Accepted)
	for _, a := range r.Proxy.Listen[min(1, len(r.Proxy.Listen)):] {
		fmt.Fprintf(tw, "\t%s\n", a)
	}
	if rd := r.Redirect; rd != nil {
		first := ""
		if len(rd.Endpoints) > 0 {
			first = rd.Endpoints[0].String()
		}
		fmt.Fprintf(tw, "REDIRECT\t%s\t%s\n", first, redirectLine(*rd))
		for _, e := range rd.Endpoints[min(1, len(rd.Endpoints)):] {
			fmt.Fprintf(tw, "\t%s\n", e)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BACKEND\tHEALTH\tLATENCY\tACTIVE\tTOTAL\tLAST ERROR")
	for _, b := range r.Backends {
		lat := "-"
		if b.Checks > 0 {
			lat = fmt.Sprintf("%.1fms", b.LastLatencySeconds*1000)
		}
		h := b.Health
		if b.Suspect {
			h += " (suspect)"
		}
		lastErr := b.LastError
		if lastErr == "" {
			lastErr = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", b.Address, h, lat, b.ActiveConnections, b.TotalConnections, lastErr)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if m := r.Membership; m != nil {
		return writeMembers(w, r.Time, *m)
	}
	return nil
}

// writeRouter is one router's block of WriteTable: its state, each VIP
// (with its link and conflicts when they have something to say), its
// priority and its peers.
func writeRouter(tw io.Writer, rr RouterReport) {
	active := "-"
	if rr.ActiveRouter.IsValid() {
		active = rr.ActiveRouter.String()
	}
	fmt.Fprintf(tw, "VRRP %s\t%s\tVRID %d, for %s since %s (%s)\n", rr.Family, strings.ToUpper(rr.State), rr.VRID,
		humanDuration(time.Duration(rr.SinceSeconds*float64(time.Second))), rr.Since.Local().Format(time.DateTime), rr.LastReason)
	var links []string
	for _, v := range rr.VIPs {
		held := "no"
		if v.Held {
			held = "yes"
		}
		fmt.Fprintf(tw, "VIP\t%s\theld here: %s, active router: %s\n", v.Prefix, held, active)
		h := v.Holding
		if h == nil {
			continue
		}
		if !h.LinkUp && h.LinkReason != "" && !slices.Contains(links, h.LinkReason) {
			links = append(links, h.LinkReason)
			fmt.Fprintf(tw, "LINK\tdown\t%s\n", h.LinkReason)
		}
		if h.Conflicts > 0 {
			fmt.Fprintf(tw, "CONFLICT\t%s\tanswered for %s at %s, %d conflicts\n", h.LastConflictMAC, v.Prefix.Addr(),
				h.LastConflict.Local().Format(time.DateTime), h.Conflicts)
		}
	}
	prio := fmt.Sprintf("base %d", rr.BasePriority)
	if rr.EffectivePriority != rr.BasePriority {
		prio += ", lowered"
	}
	fmt.Fprintf(tw, "PRIORITY\t%d\t%s\n", rr.EffectivePriority, prio)
	if len(rr.Peers) == 0 {
		fmt.Fprintf(tw, "PEERS\tnone heard\t\n")
	}
	for _, p := range rr.Peers {
		fmt.Fprintf(tw, "PEER\t%s\t%s\n", p.Address, peerLine(p))
	}
}

// writeMembers is the membership part of WriteTable: where each member
// comes from, and when a missing one leaves.
func writeMembers(w io.Writer, now time.Time, m MembershipReport) error {
	api := "API reachable"
	switch {
	case m.LastRead.IsZero():
		api = "API not read yet"
	case !m.APIReachable:
		api = "API NOT REACHABLE (members kept): " + m.LastError
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "MEMBER\tSOURCE\t%s\n", api)
	for _, mm := range m.Members {
		note := "-"
		if !mm.RemoveAt.IsZero() {
			note = "missing from the API's list, removed in " + humanDuration(mm.RemoveAt.Sub(now))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", mm.Address, mm.Source, note)
	}
	return tw.Flush()
}

// redirectLine says where the endpoint goes, why, and since when.
func redirectLine(rd RedirectReport) string {
	s := fmt.Sprintf("to the proxy on :%d", rd.ListenPort)
	if !rd.Installed {
		s = "to the local kube-apiserver"
	}
	s += " (" + rd.Reason + ")"
	if !rd.Since.IsZero() {
		s += " for " + humanDuration(time.Duration(rd.SinceSeconds*float64(time.Second)))
	}
	if rd.Problem != "" {
		s += "; last change failed: " + rd.Problem
	}
	return s
}
