package blockmeta

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/tombstones"

	"github.com/strata-tsdb/strata/objstore"
)

// DeletionsDir is the folder of a tenant's deletion requests in the bucket:
// <tenant>/deletions/<id>.json.
const DeletionsDir = "deletions"

// Matcher is a label matcher as a deletion request stores it.
type Matcher struct {
	Type  string `json:"type"` // =, !=, =~, !~
	Name  string `json:"name"`
	Value string `json:"value"`
}

// DeletionRequest is a series deletion (Prometheus's delete_series) of a
// tenant, kept in the bucket until the compactor has rewritten every block
// it touches.
//
// Invariants: readers of bucket blocks leave out the data of every request
// they know of (Tombstones), so a deletion takes effect at once; a request
// is removed only once every live block overlapping it was rewritten or
// found untouched (Checked), and the blocks it replaced were marked longer
// ago than the readers' view of the bucket lags.
type DeletionRequest struct {
	ID string `json:"id"`
	// Matchers select the series, as one match[] of the request.
	Matchers []Matcher `json:"matchers"`
	// MinTime and MaxTime bound the deleted samples, in milliseconds, both
	// included.
	MinTime int64 `json:"minTime"`
	MaxTime int64 `json:"maxTime"`
	// CreatedAt is when the request was made, in Unix milliseconds.
	CreatedAt int64 `json:"createdAt"`
	// Checked are the blocks the compactor has rewritten for the request,
	// wrote, or found without its data.
	Checked []ulid.ULID `json:"checked,omitempty"`
	// DoneAt is when the compactor first found every live block it
	// overlaps checked (Unix milliseconds), 0 until then.
	DoneAt int64 `json:"doneAt,omitempty"`
}

// NewDeletionRequest returns a request deleting the series matching ms in
// [mint, maxt], made at now (Unix milliseconds).
func NewDeletionRequest(ms []*labels.Matcher, mint, maxt, now int64) *DeletionRequest {
	r := &DeletionRequest{ID: ulid.MustNew(ulid.Now(), rand.Reader).String(), MinTime: mint, MaxTime: maxt, CreatedAt: now}
	for _, m := range ms {
		r.Matchers = append(r.Matchers, Matcher{Type: m.Type.String(), Name: m.Name, Value: m.Value})
	}
	return r
}

var matchTypes = map[string]labels.MatchType{
	labels.MatchEqual.String():     labels.MatchEqual,
	labels.MatchNotEqual.String():  labels.MatchNotEqual,
	labels.MatchRegexp.String():    labels.MatchRegexp,
	labels.MatchNotRegexp.String(): labels.MatchNotRegexp,
}

// LabelMatchers returns the request's matchers.
func (r *DeletionRequest) LabelMatchers() ([]*labels.Matcher, error) {
	out := make([]*labels.Matcher, 0, len(r.Matchers))
	for _, m := range r.Matchers {
		t, ok := matchTypes[m.Type]
		if !ok {
			return nil, fmt.Errorf("deletion request %s: unknown match type %q", r.ID, m.Type)
		}
		lm, err := labels.NewMatcher(t, m.Name, m.Value)
		if err != nil {
			return nil, fmt.Errorf("deletion request %s: %w", r.ID, err)
		}
		out = append(out, lm)
	}
	return out, nil
}

// Overlaps reports whether the request may delete data of a block of
// resolution res over [mint, maxt) (a block's half-open range).
func (r *DeletionRequest) Overlaps(mint, maxt, res int64) bool {
	return r.MinTime < maxt && r.MaxTime+max(res-1, 0) >= mint
}

// IsChecked reports whether block id was checked for the request.
func (r *DeletionRequest) IsChecked(id ulid.ULID) bool { return slices.Contains(r.Checked, id) }

func deletionPath(tenantID, id string) string {
	return path.Join(tenantID, DeletionsDir, id+".json")
}

// WriteDeletion uploads request r of the tenant.
func WriteDeletion(ctx context.Context, bkt objstore.Bucket, tenantID string, r *DeletionRequest) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := bkt.Upload(ctx, deletionPath(tenantID, r.ID), bytes.NewReader(b)); err != nil {
		return fmt.Errorf("upload deletion request %s of tenant %q: %w", r.ID, tenantID, err)
	}
	return nil
}

// RemoveDeletion removes request id of the tenant.
func RemoveDeletion(ctx context.Context, bkt objstore.Bucket, tenantID, id string) error {
	if err := bkt.Delete(ctx, deletionPath(tenantID, id)); err != nil && !bkt.IsNotFound(err) {
		return fmt.Errorf("remove deletion request %s of tenant %q: %w", id, tenantID, err)
	}
	return nil
}

// ReadDeletions returns the tenant's deletion requests, oldest first. A
// request that cannot be parsed fails the read: skipping it would show
// deleted data.
func ReadDeletions(ctx context.Context, bkt objstore.Bucket, tenantID string) ([]*DeletionRequest, error) {
	var names []string
	err := bkt.Iter(ctx, path.Join(tenantID, DeletionsDir)+"/", func(name string) error {
		if strings.HasSuffix(name, ".json") {
			names = append(names, name)
		}
		return nil
	}, false)
	if err != nil {
		return nil, fmt.Errorf("list deletion requests of tenant %q: %w", tenantID, err)
	}
	slices.Sort(names)
	out := make([]*DeletionRequest, 0, len(names))
	for _, name := range names {
		rc, err := bkt.Get(ctx, name)
		if bkt.IsNotFound(err) {
			continue // removed since the listing
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		var r DeletionRequest
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("parse %s: %w", name, err)
		}
		if _, err := r.LabelMatchers(); err != nil {
			return nil, err
		}
		out = append(out, &r)
	}
	return out, nil
}

// Tombstones returns the intervals requests delete from the series of a
// block of resolution res read through ir, and how many series they touch
// (0: the block holds nothing they delete).
//
// In a downsampled block an aggregate sample stamped w+res-1 stands for the
// raw samples of [w, w+res): it is deleted when any of them is, so that no
// window keeps an aggregate of part of its samples. The counter aggregate
// keeps raw samples and their raw timestamps, and loses exactly the deleted
// range.
func Tombstones(ctx context.Context, ir tsdb.IndexReader, res int64, requests []*DeletionRequest) (*tombstones.MemTombstones, int, error) {
	stones := tombstones.NewMemTombstones()
	touched := map[uint64]bool{}
	var builder labels.ScratchBuilder
	var chks []chunks.Meta
	for _, r := range requests {
		ms, err := r.LabelMatchers()
		if err != nil {
			return nil, 0, err
		}
		type part struct {
			extra    *labels.Matcher
			mint     int64
			maxtWide int64
		}
		parts := []part{{nil, r.MinTime, r.MaxTime}}
		if res > 0 {
			parts = []part{
				{labels.MustNewMatcher(labels.MatchEqual, AggrLabel, AggrCounter), r.MinTime, r.MaxTime},
				{labels.MustNewMatcher(labels.MatchNotEqual, AggrLabel, AggrCounter), r.MinTime, r.MaxTime + res - 1},
			}
		}
		for _, pt := range parts {
			sel := ms
			if pt.extra != nil {
				sel = append(slices.Clone(ms), pt.extra)
			}
			p, err := tsdb.PostingsForMatchers(ctx, ir, sel...)
			if err != nil {
				return nil, 0, fmt.Errorf("select series of deletion request %s: %w", r.ID, err)
			}
			for p.Next() {
				ref := p.At()
				if err := ir.Series(ref, &builder, &chks); err != nil {
					return nil, 0, fmt.Errorf("read series of deletion request %s: %w", r.ID, err)
				}
				for _, c := range chks {
					if c.OverlapsClosedInterval(pt.mint, pt.maxtWide) {
						stones.AddInterval(ref, tombstones.Interval{Mint: pt.mint, Maxt: pt.maxtWide})
						touched[uint64(ref)] = true
						break
					}
				}
			}
			if err := p.Err(); err != nil {
				return nil, 0, err
			}
		}
	}
	return stones, len(touched), nil
}

// WithTombstones returns b read with stones as its tombstones: the TSDB's
// queriers and compactor then leave the deleted data out.
func WithTombstones(b tsdb.BlockReader, stones tombstones.Reader) tsdb.BlockReader {
	return stonedBlock{BlockReader: b, stones: stones}
}

type stonedBlock struct {
	tsdb.BlockReader
	stones tombstones.Reader
}

func (b stonedBlock) Tombstones() (tombstones.Reader, error) { return b.stones, nil }

// AddOwnTombstones adds the tombstones b already has to stones.
func AddOwnTombstones(stones *tombstones.MemTombstones, b tsdb.BlockReader) error {
	own, err := b.Tombstones()
	if err != nil {
		return err
	}
	defer own.Close()
	return own.Iter(func(ref storage.SeriesRef, ivs tombstones.Intervals) error {
		stones.AddInterval(ref, ivs...)
		return nil
	})
}
