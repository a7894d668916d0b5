package cluster

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/strata-tsdb/strata/internal/proctest"
	"github.com/strata-tsdb/strata/internal/testutil"
)

// TestDistributorsShareCount starts two distributors' memberships on
// loopback, the second joining the first: each counts two distributors
// (the divisor of the tenants' rates), and one once the other has left.
func TestDistributorsShareCount(t *testing.T) {
	first := proctest.FreeAddr(t)
	start := func(name string) *Member {
		return startLoopbackMember(t, first, name == "d1", name, TargetDistributor, 10*time.Second)
	}
	d1, d2 := start("d1"), start("d2")
	for _, m := range []*Member{d1, d2} {
		testutil.Eventually(t, 30*time.Second, fmt.Sprintf("%s counts 2 distributors", m.distLifecycler.GetInstanceID()), func() bool {
			return m.Distributors() == 2
		})
	}
	if err := d2.Stop(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, "d1 counts 1 distributor once d2 left", func() bool {
		return d1.Distributors() == 1
	})
	if n := (&Member{}).Distributors(); n != 1 {
		t.Errorf("a process that is no distributor counts %d, want 1", n)
	}
}

// startLoopbackMember starts a member with the one role target on
// loopback, joining the member at join (itself when first), with a 1s
// heartbeat; it is stopped when the test ends.
func startLoopbackMember(t *testing.T, join string, first bool, name, target string, heartbeatTimeout time.Duration) *Member {
	t.Helper()
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet(name, flag.ContinueOnError))
	addr := proctest.FreeAddr(t)
	if first {
		addr = join
	}
	host, port, _ := strings.Cut(addr, ":")
	cfg.Memberlist.BindAddr = host
	cfg.Memberlist.BindPort, _ = strconv.Atoi(port)
	cfg.Memberlist.Join = []string{join}
	cfg.Ring.InstanceID = name
	cfg.Ring.HeartbeatPeriod, cfg.Ring.HeartbeatTimeout = model.Duration(time.Second), model.Duration(heartbeatTimeout)
	m, err := NewMember(cfg, Options{
		Targets:    Targets{target: true},
		HTTPAddr:   proctest.FreeAddr(t),
		Logger:     slog.New(slog.DiscardHandler),
		Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Stop() })
	return m
}
