package objstore_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strata-tsdb/strata/objstore"
)

func TestInstrument(t *testing.T) {
	ctx := context.Background()
	fb := newFaultBucket(t)
	reg := prometheus.NewRegistry()
	b := objstore.Instrument(fb, reg)
	if b.Name() != fb.Name() {
		t.Errorf("name %q, want %q", b.Name(), fb.Name())
	}

	// Successes.
	upload(t, b, "d/obj", "content")
	rc, err := b.Get(ctx, "d/obj")
	readAll(t, rc, err)
	rc, err = b.GetRange(ctx, "d/obj", 1, 3)
	readAll(t, rc, err)
	if _, err := b.Exists(ctx, "d/obj"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Attributes(ctx, "d/obj"); err != nil {
		t.Fatal(err)
	}
	if err := b.Iter(ctx, "d/", func(string) error { return nil }, true); err != nil {
		t.Fatal(err)
	}
	// Missing objects: not failures of get, get_range, exists, attributes.
	if _, err := b.Get(ctx, "missing"); !b.IsNotFound(err) {
		t.Fatalf("get missing: %v", err)
	}
	if _, err := b.GetRange(ctx, "missing", 0, 1); !b.IsNotFound(err) {
		t.Fatalf("get range missing: %v", err)
	}
	if ok, err := b.Exists(ctx, "missing"); ok || err != nil {
		t.Fatalf("exists missing: %v, %v", ok, err)
	}
	if _, err := b.Attributes(ctx, "missing"); !b.IsNotFound(err) {
		t.Fatalf("attributes missing: %v", err)
	}
	if err := b.Delete(ctx, "missing"); err != nil {
		t.Fatal(err)
	}
	// Failures.
	if err := b.Upload(ctx, "../x", strings.NewReader("x")); err == nil {
		t.Fatal("upload ../x: no error")
	}
	fb.hook = func(_ context.Context, op string, _ int) error {
		if op == "delete" || op == "iter" {
			return errTransient
		}
		return nil
	}
	if err := b.Delete(ctx, "d/obj"); err == nil {
		t.Fatal("delete: no error")
	}
	if err := b.Iter(ctx, "", func(string) error { return nil }, false); err == nil {
		t.Fatal("iter: no error")
	}
	fb.hook = nil
	// A failed read is a failure of get.
	fr := &failingReadBucket{Bucket: fb}
	b2 := objstore.Instrument(fr, reg) // same registry, same name: shares the metrics
	rc, err = b2.Get(ctx, "d/obj")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(rc); err == nil {
		t.Fatal("read: no error")
	}
	rc.Close()
	rc.Close() // a second Close counts nothing

	name := fb.Name()
	want := fmt.Sprintf(`
# HELP strata_objstore_operation_failures_total Bucket operations that failed, after any retries. A missing object is not a failure of get, get_range, exists or attributes.
# TYPE strata_objstore_operation_failures_total counter
strata_objstore_operation_failures_total{bucket=%[1]q,operation="attributes"} 0
strata_objstore_operation_failures_total{bucket=%[1]q,operation="delete"} 1
strata_objstore_operation_failures_total{bucket=%[1]q,operation="exists"} 0
strata_objstore_operation_failures_total{bucket=%[1]q,operation="get"} 1
strata_objstore_operation_failures_total{bucket=%[1]q,operation="get_range"} 0
strata_objstore_operation_failures_total{bucket=%[1]q,operation="iter"} 1
strata_objstore_operation_failures_total{bucket=%[1]q,operation="upload"} 1
# HELP strata_objstore_operations_total Bucket operations started.
# TYPE strata_objstore_operations_total counter
strata_objstore_operations_total{bucket=%[1]q,operation="attributes"} 2
strata_objstore_operations_total{bucket=%[1]q,operation="delete"} 2
strata_objstore_operations_total{bucket=%[1]q,operation="exists"} 2
strata_objstore_operations_total{bucket=%[1]q,operation="get"} 3
strata_objstore_operations_total{bucket=%[1]q,operation="get_range"} 2
strata_objstore_operations_total{bucket=%[1]q,operation="iter"} 2
strata_objstore_operations_total{bucket=%[1]q,operation="upload"} 2
`, name)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"strata_objstore_operations_total", "strata_objstore_operation_failures_total"); err != nil {
		t.Error(err)
	}

	// Every finished operation has one duration observation.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != "strata_objstore_operation_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "operation" {
					counts[l.GetValue()] = m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	for op, want := range map[string]uint64{"get": 3, "get_range": 2, "upload": 2, "delete": 2, "iter": 2, "exists": 2, "attributes": 2} {
		if counts[op] != want {
			t.Errorf("duration observations of %s: %d, want %d", op, counts[op], want)
		}
	}
}

func TestInstrumentWithoutRegistry(t *testing.T) {
	b := objstore.Instrument(newFaultBucket(t), nil)
	upload(t, b, "x", "x")
}

type failingReadBucket struct{ objstore.Bucket }

func (f *failingReadBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	rc, err := f.Bucket.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(rc, errReader{}), rc}, nil
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }
