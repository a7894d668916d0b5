package cluster

import (
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"

	"github.com/grafana/dskit/ring"
)

// ownerOp counts only ACTIVE members with a recent heartbeat as owners.
var ownerOp = ring.NewOp([]ring.InstanceState{ring.ACTIVE}, nil)

// Owners maps tenants to the one healthy member of a ring that owns each:
// the member holding the first of the healthy members' tokens at or after
// the tenant's token (fnv32a of its ID).
//
// Why not ring.Get with a replication factor of 1, as Mimir's compactor
// does: Get picks the owner among all members and then drops it when
// unhealthy, so a dead member's tenants have no owner until it is
// forgotten (-ring.forget-after). Choosing among the healthy members only
// hands them over once its heartbeat is older than -ring.heartbeat-timeout.
// Two members may briefly disagree while their views of the ring differ;
// the compactor's bucket lease keeps them off one tenant meanwhile.
type Owners struct {
	tokens []uint32          // sorted
	owner  map[uint32]string // token -> instance ID
	self   string
}

// NewOwners builds the ownership of tenants among instances (the healthy
// members); self is the caller's instance ID.
func NewOwners(instances []ring.InstanceDesc, self string) *Owners {
	o := &Owners{owner: map[uint32]string{}, self: self}
	for _, in := range instances {
		for _, t := range in.Tokens {
			// Two members drawing the same token: the smaller ID keeps it,
			// on every member alike.
			if prev, ok := o.owner[t]; ok && prev < in.Id {
				continue
			}
			if _, ok := o.owner[t]; !ok {
				o.tokens = append(o.tokens, t)
			}
			o.owner[t] = in.Id
		}
	}
	slices.Sort(o.tokens)
	return o
}

// TenantToken is a tenant's place in an ownership ring.
func TenantToken(tenant string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(tenant))
	return h.Sum32()
}

// Owner returns the instance ID owning tenant; empty when there is no
// healthy member.
func (o *Owners) Owner(tenant string) string {
	if len(o.tokens) == 0 {
		return ""
	}
	key := TenantToken(tenant)
	i := sort.Search(len(o.tokens), func(i int) bool { return o.tokens[i] >= key })
	if i == len(o.tokens) {
		i = 0
	}
	return o.owner[o.tokens[i]]
}

// Owns reports whether the caller owns tenant.
func (o *Owners) Owns(tenant string) bool { return o.Owner(tenant) == o.self }

// errNotMember is returned for the ring of a role the process does not run.
var errNotMember = errors.New("this process is no member")

// errNotInRing is returned while this member is not yet (or no longer) a
// healthy member of its ring: it owns nothing it could be sure of.
var errNotInRing = errors.New("this member is not a healthy member of the ring")

// healthyOwners returns the ownership among r's healthy members, self
// being one of them.
func healthyOwners(r *ring.Ring, self string) (*Owners, error) {
	rs, err := r.GetAllHealthy(ownerOp)
	if err != nil {
		return nil, fmt.Errorf("read the ring: %w", err)
	}
	if !slices.ContainsFunc(rs.Instances, func(in ring.InstanceDesc) bool { return in.Id == self }) {
		return nil, fmt.Errorf("%w (%s)", errNotInRing, self)
	}
	return NewOwners(rs.Instances, self), nil
}
