package daemon

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"github.com/hapod/hapod/pkg/config"
	"github.com/hapod/hapod/pkg/dhcpvip"
	"github.com/hapod/hapod/pkg/vrrp"
)

// lease keeps the DHCP lease of a leased VIP (--vip-dhcp). Only the node
// holding the VIP talks to the server, with the cluster's identity, so the
// server sees one client renewing one address whichever node holds it.
// It survives its macvlan being deleted from outside: the keeper is dialled
// again.
type lease struct {
	dial func() (*dhcpvip.Keeper, error)
	clk  clock.Clock
	log  *slog.Logger

	mu     sync.Mutex
	k      *dhcpvip.Keeper
	active bool
}

func newLease(cfg config.Config, ifname string, clk clock.Clock, log *slog.Logger) (*lease, error) {
	kc := dhcpvip.Config{
		Interface: ifname,
		Identity:  dhcpvip.NewIdentity(cfg.VRRP.VRID, cfg.VIP.ClusterName),
		Want:      cfg.VIP.Primary().Addr(),
		Hostname:  "hapod-" + cfg.VIP.ClusterName,
		Clock:     clk,
		Logger:    log,
	}
	l := &lease{dial: func() (*dhcpvip.Keeper, error) { return dhcpvip.DialKeeper(kc) }, clk: clk, log: log}
	k, err := l.dial()
	if err != nil {
		return nil, err
	}
	l.k = k
	return l, nil
}

func (l *lease) current() *dhcpvip.Keeper {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.k
}

func (l *lease) setActive(active bool) {
	l.mu.Lock()
	l.active = active
	k := l.k
	l.mu.Unlock()
	k.SetActive(active)
}

// Status implements status.DHCPSource.
func (l *lease) Status() dhcpvip.Status { return l.current().Status() }

// run keeps a keeper running until ctx ends.
func (l *lease) run(ctx context.Context) {
	for {
		err := l.current().Run(ctx)
		if ctx.Err() != nil {
			return
		}
		l.log.Error("DHCP lease keeper stopped; starting it again", "err", err)
		l.current().Close()
		for {
			select {
			case <-ctx.Done():
				return
			case <-l.clk.After(time.Second):
			}
			k, err := l.dial()
			if err == nil {
				l.mu.Lock()
				l.k = k
				active := l.active
				l.mu.Unlock()
				k.SetActive(active)
				break
			}
			l.log.Error("DHCP lease keeper", "err", err)
		}
	}
}

func (l *lease) close() { l.current().Close() }

// leasedVIP is the VIP the speaker holds when it is leased: taking the VIP
// makes this node the one that renews the lease (at once, with the same
// identity, so the server confirms the same address); releasing it makes
// it silent. The lease itself is never released.
type leasedVIP struct {
	vrrp.VIP
	lease *lease
}

func (v leasedVIP) Acquire() error {
	v.lease.setActive(true)
	return v.VIP.Acquire()
}

func (v leasedVIP) Release() error {
	v.lease.setActive(false)
	return v.VIP.Release()
}
