package cluster

import (
	"flag"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-tsdb/strata/internal/proctest"
	"github.com/strata-tsdb/strata/internal/testutil"
)

func TestOwners(t *testing.T) {
	a, b := TenantToken("a"), TenantToken("b")
	if a > b {
		a, b = b, a
	}
	cases := []struct {
		name      string
		instances []ring.InstanceDesc
		// want is the owner of the tenant whose token is a, and of the one
		// whose token is b.
		wantA, wantB string
	}{
		{"no member", nil, "", ""},
		{"one member owns all", []ring.InstanceDesc{{Id: "c1", Tokens: []uint32{5}}}, "c1", "c1"},
		{"the first token at or after the tenant's", []ring.InstanceDesc{
			{Id: "c1", Tokens: []uint32{a}},
			{Id: "c2", Tokens: []uint32{b}},
		}, "c1", "c2"},
		{"past the last token wraps to the first", []ring.InstanceDesc{
			{Id: "c1", Tokens: []uint32{a - 1}},
			{Id: "c2", Tokens: []uint32{a + 1}},
		}, "c2", "c1"},
		{"a token drawn twice goes to the smaller ID", []ring.InstanceDesc{
			{Id: "c2", Tokens: []uint32{a, b}},
			{Id: "c1", Tokens: []uint32{a}},
		}, "c1", "c2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := NewOwners(tc.instances, "c1")
			ta, tb := tenantWithToken(t, a), tenantWithToken(t, b)
			if got := o.Owner(ta); got != tc.wantA {
				t.Errorf("owner of %q = %q, want %q", ta, got, tc.wantA)
			}
			if got := o.Owner(tb); got != tc.wantB {
				t.Errorf("owner of %q = %q, want %q", tb, got, tc.wantB)
			}
			if o.Owns(ta) != (tc.wantA == "c1") {
				t.Errorf("Owns(%q) = %v with owner %q", ta, o.Owns(ta), tc.wantA)
			}
		})
	}
}

func tenantWithToken(t *testing.T, tok uint32) string {
	for _, s := range []string{"a", "b"} {
		if TenantToken(s) == tok {
			return s
		}
	}
	t.Fatalf("no tenant with token %d", tok)
	return ""
}

// TestOwnersBalanced: with 128 random tokens each, three members own
// shares of 300 tenants that are not far from even, and removing one hands
// only its tenants to the others.
func TestOwnersBalanced(t *testing.T) {
	gen := ring.NewRandomTokenGenerator()
	var ins []ring.InstanceDesc
	taken := map[uint32]bool{}
	for _, id := range []string{"c1", "c2", "c3"} {
		toks := gen.GenerateTokens(128, nil)
		for _, tk := range toks {
			taken[tk] = true
		}
		ins = append(ins, ring.InstanceDesc{Id: id, Tokens: toks})
	}
	all, two := NewOwners(ins, ""), NewOwners(ins[:2], "")
	count := map[string]int{}
	for i := range 300 {
		id := "tenant-" + strconv.Itoa(i)
		owner := all.Owner(id)
		count[owner]++
		if owner != "c3" && two.Owner(id) != owner {
			t.Errorf("%s moved from %s to %s when c3 left", id, owner, two.Owner(id))
		}
	}
	for _, id := range []string{"c1", "c2", "c3"} {
		if share := float64(count[id]) / 300; math.Abs(share-1.0/3) > 0.15 {
			t.Errorf("%s owns %d of 300 tenants", id, count[id])
		}
	}
}

// TestOwnerRingsShareTenants starts two compactors' (then two rulers')
// memberships on loopback: once both are in their ring each tenant has
// exactly one owner, the same in both views, both own some, and once one
// leaves the other owns every tenant.
func TestOwnerRingsShareTenants(t *testing.T) {
	for _, tc := range []struct {
		role   string
		owners func(*Member) (*Owners, error)
		ring   func(*Member) *ring.Ring
	}{
		{TargetCompactor, (*Member).CompactorOwners, func(m *Member) *ring.Ring { return m.compactors }},
		{TargetRuler, (*Member).RulerOwners, func(m *Member) *ring.Ring { return m.rulers }},
	} {
		t.Run(tc.role, func(t *testing.T) {
			first := proctest.FreeAddr(t)
			start := func(name string) *Member {
				m := startLoopbackMember(t, first, name == "m1", name, tc.role, 3*time.Second)
				// Start returns once the member is in its own view of
				// the ring: it knows its tenants from the first.
				if _, err := tc.owners(m); err != nil {
					t.Fatalf("%s started: %v", name, err)
				}
				return m
			}
			m1, m2 := start("m1"), start("m2")
			tenants := make([]string, 40)
			for i := range tenants {
				tenants[i] = fmt.Sprintf("tenant-%d", i)
			}
			owners := func(m *Member) map[string]string {
				o, err := tc.owners(m)
				if err != nil {
					return nil
				}
				out := map[string]string{}
				for _, id := range tenants {
					out[id] = o.Owner(id)
				}
				return out
			}
			testutil.Eventually(t, 30*time.Second, "both see both in the ring", func() bool {
				for _, m := range []*Member{m1, m2} {
					rs, err := tc.ring(m).GetAllHealthy(ownerOp)
					if err != nil || len(rs.Instances) != 2 {
						return false
					}
				}
				return true
			})
			o1, o2 := owners(m1), owners(m2)
			n := map[string]int{}
			for _, id := range tenants {
				if o1[id] != o2[id] {
					t.Errorf("%s: owned by %q in m1's view, %q in m2's", id, o1[id], o2[id])
				}
				n[o1[id]]++
			}
			if n["m1"] == 0 || n["m2"] == 0 || n["m1"]+n["m2"] != len(tenants) {
				t.Fatalf("owners of %d tenants: %v, want both owning some", len(tenants), n)
			}

			// m2 stops (a killed one is the e2e tests'): it leaves the
			// ring and m1 owns every tenant.
			if err := m2.Stop(); err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, 30*time.Second, "m1 owns every tenant once m2 left", func() bool {
				o := owners(m1)
				for _, id := range tenants {
					if o[id] != "m1" {
						return false
					}
				}
				return true
			})
			if _, err := tc.owners(&Member{}); err == nil {
				t.Errorf("a process that is no %s has %s owners", tc.role, tc.role)
			}
		})
	}
}

// TestDisabledCompactorOutOfRing: a process of role compactor whose
// compactor is off takes no place in the compactors' ring, where it would
// own tenants it never compacts.
func TestDisabledCompactorOutOfRing(t *testing.T) {
	for _, disabled := range []bool{false, true} {
		var cfg Config
		cfg.RegisterFlags(flag.NewFlagSet("c", flag.ContinueOnError))
		cfg.Ring.InstanceID = "c1"
		m, err := NewMember(cfg, Options{
			Targets:           Targets{TargetCompactor: true},
			HTTPAddr:          proctest.FreeAddr(t),
			CompactorDisabled: disabled,
			Logger:            slog.New(slog.DiscardHandler),
			Registerer:        prometheus.NewRegistry(),
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := m.CompactorRingHandler() != nil; got == disabled {
			t.Errorf("compactor disabled: %v, in the compactors' ring: %v", disabled, got)
		}
	}
}
