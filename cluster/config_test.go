package cluster

import (
	"flag"
	"strings"
	"testing"
)

func TestParseTargets(t *testing.T) {
	for _, tc := range []struct {
		in        []string
		all       bool
		has, lack []string
		err       string
	}{
		{in: []string{"all"}, all: true, has: []string{TargetDistributor, TargetIngester, TargetQuerier, TargetCompactor, TargetRuler}},
		{in: []string{"ingester"}, has: []string{TargetIngester}, lack: []string{TargetDistributor, TargetQuerier, TargetCompactor}},
		{in: []string{"distributor", " querier"}, has: []string{TargetDistributor, TargetQuerier}, lack: []string{TargetIngester}},
		{in: []string{"all", "ingester"}, err: "cannot be listed"},
		{in: []string{"querier", "ruler"}, has: []string{TargetQuerier, TargetRuler}, lack: []string{TargetIngester, TargetCompactor}},
		{in: []string{"rulers"}, err: `target "rulers" is not one of`},
		{in: nil, err: "at least one role"},
	} {
		t.Run(strings.Join(tc.in, ","), func(t *testing.T) {
			ts, err := ParseTargets(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ts.All() != tc.all || ts.Clustered() == tc.all {
				t.Errorf("All %v Clustered %v, want All %v", ts.All(), ts.Clustered(), tc.all)
			}
			for _, r := range tc.has {
				if !ts.Has(r) {
					t.Errorf("lacks %s", r)
				}
			}
			for _, r := range tc.lack {
				if ts.Has(r) {
					t.Errorf("has %s", r)
				}
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{args: nil},
		{args: []string{"-target=distributor,ingester,querier"}},
		{args: []string{"-target=distributor,all"}, err: "cannot be listed"},
		{args: []string{"-ring.replication-factor=0"}, err: "replication-factor"},
		{args: []string{"-ring.heartbeat-timeout=1s", "-ring.heartbeat-period=5s"}, err: "heartbeat-timeout"},
		{args: []string{"-ring.forget-after=30s"}, err: "forget-after"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var c Config
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			c.RegisterFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			err := c.Validate()
			if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("Validate: %v, want error containing %q", err, tc.err)
			}
		})
	}
}
