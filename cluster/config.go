// Package cluster makes Strata processes one cluster: which roles a process
// runs (-target), the ring of ingesters on dskit's ring over its memberlist
// KV, the ingesters' place in it (tokens, heartbeats, leaving after a flush,
// forgetting dead members), and the ring's status page.
package cluster

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/strata-tsdb/strata/internal/flagext"
)

// Roles a process can run (-target).
const (
	TargetAll         = "all"
	TargetDistributor = "distributor"
	TargetIngester    = "ingester"
	TargetQuerier     = "querier"
	TargetCompactor   = "compactor"
	TargetRuler       = "ruler"
)

var roles = []string{TargetDistributor, TargetIngester, TargetQuerier, TargetCompactor, TargetRuler}

// Config is the cluster's part of the configuration: the process's roles,
// the ring and memberlist.
type Config struct {
	Target      flagext.StringList `yaml:"target"`
	Ring        RingConfig         `yaml:"ring"`
	Memberlist  MemberlistConfig   `yaml:"memberlist"`
	Distributor DistributorConfig  `yaml:"distributor"`
	Querier     QuerierConfig      `yaml:"querier"`
}

// RingConfig configures the ingesters' ring and this process's place in it.
type RingConfig struct {
	ReplicationFactor int            `yaml:"replication_factor"`
	HeartbeatPeriod   model.Duration `yaml:"heartbeat_period"`
	HeartbeatTimeout  model.Duration `yaml:"heartbeat_timeout"`
	ForgetAfter       model.Duration `yaml:"forget_after"`
	NumTokens         int            `yaml:"num_tokens"`
	InstanceID        string         `yaml:"instance_id"`
	InstanceAddr      string         `yaml:"instance_addr"`
	TokensFile        string         `yaml:"tokens_file"`
}

// MemberlistConfig configures the gossip that carries the ring.
type MemberlistConfig struct {
	BindAddr string             `yaml:"bind_addr"`
	BindPort int                `yaml:"bind_port"`
	Join     flagext.StringList `yaml:"join"`
}

// DistributorConfig configures the distributor's writes to ingesters.
type DistributorConfig struct {
	PushTimeout model.Duration `yaml:"push_timeout"`
}

// QuerierConfig configures the querier's reads from ingesters.
type QuerierConfig struct {
	IngesterTimeout model.Duration `yaml:"ingester_timeout"`
}

// RegisterFlags registers the flags of c on fs, with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Target = flagext.StringList{TargetAll}
	fs.Var(&c.Target, "target", "Roles this process runs: all (one process doing everything, the default), or a comma-separated list of distributor, ingester, querier, compactor, ruler. Processes of a cluster find each other through -memberlist.join.")
	fs.IntVar(&c.Ring.ReplicationFactor, "ring.replication-factor", 3, "How many ingesters receive each series; a write is answered 2xx once a majority of them have it in their WAL.")
	flagext.DurationVar(fs, &c.Ring.HeartbeatPeriod, "ring.heartbeat-period", 5*time.Second, "How often an ingester renews its entry in the ring (a distributor, compactor or ruler in its own); also how often a ruler checks which tenants it owns.")
	flagext.DurationVar(fs, &c.Ring.HeartbeatTimeout, "ring.heartbeat-timeout", time.Minute, "An ingester whose last heartbeat is older is unhealthy: writes go to the next ingesters of the ring and reads do without it. A compactor or ruler whose last heartbeat is older loses its tenants to the healthy compactors or rulers.")
	flagext.DurationVar(fs, &c.Ring.ForgetAfter, "ring.forget-after", 10*time.Minute, "An ingester unhealthy this long is removed from the ring by the others (no manual forget needed). Longer than -ring.heartbeat-timeout.")
	fs.IntVar(&c.Ring.NumTokens, "ring.num-tokens", 128, "Tokens an ingester takes in the ingesters' ring, a compactor in the compactors' ring and a ruler in the rulers' ring (where each tenant belongs to the healthy compactor or ruler owning the first token at or after the tenant's).")
	fs.StringVar(&c.Ring.InstanceID, "ring.instance-id", "", "This ingester's name in the ring; the host name when empty. Keep it across restarts: an ingester restarted under the same name takes its tokens back.")
	fs.StringVar(&c.Ring.InstanceAddr, "ring.instance-addr", "", "Address (host:port) at which the other processes reach this one's HTTP server; the first private address of the host and the port of -http.listen-address when empty.")
	fs.StringVar(&c.Ring.TokensFile, "ring.tokens-file", "", "File where an ingester keeps its tokens, to take the same ones after a restart even once forgotten; none when empty.")
	fs.StringVar(&c.Memberlist.BindAddr, "memberlist.bind-addr", "0.0.0.0", "Address memberlist listens on (TCP only: dskit's transport).")
	fs.IntVar(&c.Memberlist.BindPort, "memberlist.bind-port", 7946, "Port memberlist listens on.")
	fs.Var(&c.Memberlist.Join, "memberlist.join", "Comma-separated host:port of members to join (any processes of the cluster; more than one in case one is down).")
	flagext.DurationVar(fs, &c.Distributor.PushTimeout, "distributor.push-timeout", 10*time.Second, "How long a distributor waits for one ingester to write a request to its WAL.")
	flagext.DurationVar(fs, &c.Querier.IngesterTimeout, "querier.ingester-timeout", time.Minute, "How long a querier waits for one ingester's answer to a read.")
	flagext.MarkBasic("target", "memberlist.join")
}

// Validate reports a setting that cannot work.
func (c *Config) Validate() error {
	if _, err := ParseTargets(c.Target); err != nil {
		return err
	}
	if c.Ring.ReplicationFactor < 1 {
		return errors.New("ring.replication-factor must be at least 1")
	}
	if c.Ring.HeartbeatPeriod <= 0 || c.Ring.HeartbeatTimeout <= c.Ring.HeartbeatPeriod {
		return errors.New("ring.heartbeat-timeout must be longer than a positive ring.heartbeat-period")
	}
	if c.Ring.ForgetAfter <= c.Ring.HeartbeatTimeout {
		return errors.New("ring.forget-after must be longer than ring.heartbeat-timeout")
	}
	if c.Ring.NumTokens < 1 {
		return errors.New("ring.num-tokens must be at least 1")
	}
	if c.Distributor.PushTimeout <= 0 || c.Querier.IngesterTimeout <= 0 {
		return errors.New("distributor.push-timeout and querier.ingester-timeout must be positive")
	}
	return nil
}

// Targets is the set of roles of a process.
type Targets map[string]bool

// ParseTargets reads -target: "all", or a list of roles.
func ParseTargets(list []string) (Targets, error) {
	t := Targets{}
	for _, s := range list {
		s = strings.TrimSpace(s)
		switch {
		case s == TargetAll:
			if len(list) > 1 {
				return nil, errors.New("target all runs every role and cannot be listed with others")
			}
		case slices.Contains(roles, s):
			t[s] = true
		default:
			return nil, fmt.Errorf("target %q is not one of all, %s", s, strings.Join(roles, ", "))
		}
	}
	if len(list) == 0 {
		return nil, errors.New("target must name at least one role")
	}
	return t, nil
}

// All reports whether the process is the single process of old, which runs
// every role in-process and no ring.
func (t Targets) All() bool { return len(t) == 0 }

// Has reports whether the process runs role, itself or as part of all.
func (t Targets) Has(role string) bool { return t.All() || t[role] }

// Clustered reports whether the process is a member of a cluster.
func (t Targets) Clustered() bool { return !t.All() }
