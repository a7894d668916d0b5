package querier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"

	"github.com/grafana/dskit/ring"
	"github.com/prometheus/prometheus/model/metadata"

	"github.com/strata-tsdb/strata/tenant"
)

// MetadataPath is the ingesters' internal metric metadata endpoint: the
// metadata of the tenant of the X-Scope-OrgID header, of family metric (all
// when empty), as JSON: family name to entries.
const MetadataPath = "/ingester/metadata"

// MetadataHandler serves MetadataPath from list.
func MetadataHandler(list func(tenant, metric string) (map[string][]metadata.Metadata, error)) http.Handler {
	res := tenant.Resolver{} // the header is required: queriers set it
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := res.FromRequest(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fams, err := list(id, r.FormValue("metric"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(fams)
	})
}

// MetricMetadata returns the metadata the ingesters hold for tenant id's
// family metric (every family when empty): the union of their answers,
// each family's entries in the order first seen, an entry once. More
// failures than the ring's read set allows are an error.
func (r *Reader) MetricMetadata(ctx context.Context, id, metric string) (map[string][]metadata.Metadata, error) {
	rs, err := r.opts.Ring.GetReplicationSetForOperation(ring.Read)
	if err != nil {
		return nil, fmt.Errorf("ingesters to read from: %w", err)
	}
	answers := make([]map[string][]metadata.Metadata, len(rs.Instances))
	errs := make([]error, len(rs.Instances))
	var wg sync.WaitGroup
	for i, in := range rs.Instances {
		wg.Go(func() { answers[i], errs[i] = r.metadataOf(ctx, in.Addr, id, metric) })
	}
	wg.Wait()
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
		}
	}
	if failed > rs.MaxErrors {
		return nil, fmt.Errorf("%d of %d ingesters failed to answer, at most %d may: %w", failed, len(rs.Instances), rs.MaxErrors, errors.Join(errs...))
	}
	out := map[string][]metadata.Metadata{}
	for _, a := range answers {
		for fam, entries := range a {
			for _, e := range entries {
				if !slices.Contains(out[fam], e) {
					out[fam] = append(out[fam], e)
				}
			}
		}
	}
	return out, nil
}

func (r *Reader) metadataOf(ctx context.Context, addr, id, metric string) (map[string][]metadata.Metadata, error) {
	return getJSON[map[string][]metadata.Metadata](ctx, r, addr, id, MetadataPath, url.Values{"metric": {metric}}, "metadata")
}
