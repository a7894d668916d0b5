package distributor

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"

	"github.com/strata-tsdb/strata/tenant"
)

// Metric metadata is forwarded apart from samples, best effort, as remote
// write treats it: the pipeline hands it over after each commit
// (SetMetadata), and Run sends what is new every MetadataInterval to every
// healthy ingester, as one remote write 1.0 metadata-only request per tenant
// (queriers ask every ingester, so any one that has an entry answers it).
// An entry is sent again after metadataResend, so that an ingester that
// lost it (a restart after a crash) has it back, and forgotten after
// metadataForget without being set.
const (
	MetadataInterval = time.Second
	metadataResend   = 10 * time.Minute
	metadataForget   = time.Hour
)

type metaKey struct {
	tenant, family string
	md             metadata.Metadata
}

// metaEntry is when an entry was last set and last sent (zero: not yet).
type metaEntry struct{ set, sent time.Time }

// SetMetadata queues the metadata of a family of tenant for the ingesters,
// unless it was sent recently.
func (d *Distributor) SetMetadata(id, family string, md metadata.Metadata) error {
	now := time.Now()
	k := metaKey{tenant: id, family: family, md: md}
	d.metaMu.Lock()
	defer d.metaMu.Unlock()
	e := d.meta[k]
	e.set = now
	d.meta[k] = e
	return nil
}

// Run forwards metadata until ctx is done. It is the Distributor's only
// goroutine; the server owns it.
func (d *Distributor) Run(ctx context.Context) {
	t := time.NewTicker(MetadataInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.sendMetadata(ctx, time.Now())
		}
	}
}

// sendMetadata sends the entries due at now to every healthy ingester. An
// entry counts as sent once every one of them took it.
func (d *Distributor) sendMetadata(ctx context.Context, now time.Time) {
	byTenant := map[string][]metaKey{}
	d.metaMu.Lock()
	for k, e := range d.meta {
		switch {
		case now.Sub(e.set) > metadataForget:
			delete(d.meta, k)
		case e.sent.IsZero() || now.Sub(e.sent) > metadataResend:
			byTenant[k.tenant] = append(byTenant[k.tenant], k)
		}
	}
	d.metaMu.Unlock()
	if len(byTenant) == 0 {
		return
	}
	rs, err := d.opts.Ring.GetAllHealthy(ring.Write)
	if err != nil {
		d.logger.Warn("no ingesters to send metric metadata to; retried", "err", err)
		return
	}
	for id, keys := range byTenant {
		body := encodeMetadata(keys)
		ok := true
		for _, in := range rs.Instances {
			if err := d.sendMetadataTo(ctx, id, in.Addr, body); err != nil {
				d.logger.Warn("sending metric metadata failed; retried", "tenant", id, "ingester", in.Addr, "err", err)
				ok = false
			}
		}
		if !ok {
			continue
		}
		d.metaMu.Lock()
		for _, k := range keys {
			if e, found := d.meta[k]; found {
				e.sent = now
				d.meta[k] = e
			}
		}
		d.metaMu.Unlock()
	}
}

// encodeMetadata returns a snappy-compressed remote write 1.0 body of
// metadata only.
func encodeMetadata(keys []metaKey) []byte {
	req := prompb.WriteRequest{Metadata: make([]prompb.MetricMetadata, 0, len(keys))}
	for _, k := range keys {
		req.Metadata = append(req.Metadata, prompb.MetricMetadata{
			Type:             prompb.FromMetadataType(k.md.Type),
			MetricFamilyName: k.family,
			Help:             k.md.Help,
			Unit:             k.md.Unit,
		})
	}
	raw, err := req.Marshal()
	if err != nil {
		panic(fmt.Sprintf("marshal remote write 1.0 metadata: %v", err))
	}
	return snappy.Encode(nil, raw)
}

func (d *Distributor) sendMetadataTo(ctx context.Context, id, addr string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, d.opts.PushTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.opts.Scheme+"://"+addr+PushPath, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	req.Header.Set(tenant.HeaderName, id)
	resp, err := d.opts.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("ingester answered %s", resp.Status)
	}
	return nil
}
