// Package objstoretest holds the acceptance test every objstore.Bucket
// implementation must pass.
package objstoretest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-tsdb/strata/objstore"
)

// AcceptanceTest checks that b behaves as objstore.Bucket documents. b must
// be empty; it is left empty.
func AcceptanceTest(t *testing.T, b objstore.Bucket) {
	ctx := context.Background()
	start := time.Now()

	if got := list(t, b, "", true); len(got) != 0 {
		t.Fatalf("bucket is not empty: %q", got)
	}

	objects := map[string]string{
		"id1/obj_1.some":  "@test-data@",
		"id1/obj_2.some":  "@test-data2@",
		"id1/obj_3.some":  "@test-data3@",
		"id1/sub/a":       "a",
		"id1/sub/deep/b":  "b",
		"id1-x":           "sorts before id1/",
		"id2/obj_4.some":  "@test-data4@",
		"obj_5.some":      "@test-data5@",
		"a/b/c/d/e/f.txt": "deeply nested",
	}
	for _, name := range sortedKeys(objects) {
		if err := b.Upload(ctx, name, strings.NewReader(objects[name])); err != nil {
			t.Fatalf("upload %s: %v", name, err)
		}
	}

	t.Run("get", func(t *testing.T) {
		for _, name := range sortedKeys(objects) {
			if got := get(t, b, name); got != objects[name] {
				t.Errorf("get %s = %q, want %q", name, got, objects[name])
			}
		}
	})

	t.Run("get not found", func(t *testing.T) {
		for _, name := range []string{"missing", "id1/missing", "id1", "id1/sub", "missing/deeper/still"} {
			rc, err := b.Get(ctx, name)
			if err == nil {
				rc.Close()
				t.Errorf("get %s: no error", name)
				continue
			}
			if !b.IsNotFound(err) || !errors.Is(err, objstore.ErrNotFound) {
				t.Errorf("get %s: %v is not a not-found error", name, err)
			}
			if !strings.Contains(err.Error(), name) {
				t.Errorf("get %s: error %q does not name the object", name, err)
			}
		}
	})

	t.Run("get range", func(t *testing.T) {
		const name = "id1/obj_1.some" // "@test-data@", 11 bytes
		for _, tc := range []struct {
			off, length int64
			want        string
		}{
			{0, -1, "@test-data@"},
			{1, 3, "tes"},
			{3, -1, "st-data@"},
			{0, 1, "@"},
			{10, 1, "@"},
			{10, -1, "@"},
			{0, 11, "@test-data@"},
			{0, 100, "@test-data@"},
			{5, 100, "-data@"},
			{4, 0, ""},
			{11, -1, ""},
			{11, 5, ""},
			{100, -1, ""},
			{100, 5, ""},
		} {
			rc, err := b.GetRange(ctx, name, tc.off, tc.length)
			if err != nil {
				t.Errorf("get range %d,%d: %v", tc.off, tc.length, err)
				continue
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Errorf("read range %d,%d: %v", tc.off, tc.length, err)
			}
			if string(got) != tc.want {
				t.Errorf("get range %d,%d = %q, want %q", tc.off, tc.length, got, tc.want)
			}
		}
		for _, r := range [][2]int64{{0, -1}, {1, 3}, {0, 0}, {100, 1}} {
			rc, err := b.GetRange(ctx, "id1/missing", r[0], r[1])
			if err == nil {
				rc.Close()
				t.Errorf("get range %v of a missing object: no error", r)
			} else if !b.IsNotFound(err) {
				t.Errorf("get range %v of a missing object: %v is not a not-found error", r, err)
			}
		}
		for _, r := range [][2]int64{{-1, 3}, {0, -2}} {
			rc, err := b.GetRange(ctx, name, r[0], r[1])
			if err == nil {
				rc.Close()
				t.Errorf("get range %v: no error for an invalid range", r)
			} else if b.IsNotFound(err) {
				t.Errorf("get range %v: invalid range reported as not found: %v", r, err)
			}
		}
	})

	t.Run("exists", func(t *testing.T) {
		for name, want := range map[string]bool{
			"id1/obj_1.some":   true,
			"a/b/c/d/e/f.txt":  true,
			"id1/missing":      false,
			"missing":          false,
			"id1":              false,
			"id1/sub":          false,
			"id1/obj_1.some/x": false,
		} {
			got, err := b.Exists(ctx, name)
			if err != nil {
				t.Errorf("exists %s: %v", name, err)
			} else if got != want {
				t.Errorf("exists %s = %v, want %v", name, got, want)
			}
		}
	})

	t.Run("attributes", func(t *testing.T) {
		for _, name := range sortedKeys(objects) {
			attrs, err := b.Attributes(ctx, name)
			if err != nil {
				t.Errorf("attributes %s: %v", name, err)
				continue
			}
			if attrs.Size != int64(len(objects[name])) {
				t.Errorf("attributes %s: size %d, want %d", name, attrs.Size, len(objects[name]))
			}
			// Object stores keep whole seconds.
			if lm := attrs.LastModified; lm.Before(start.Add(-2*time.Second)) || lm.After(time.Now().Add(2*time.Second)) {
				t.Errorf("attributes %s: last modified %v, not around the test's run (%v)", name, lm, start)
			}
		}
		for _, name := range []string{"missing", "id1", "id1/missing"} {
			_, err := b.Attributes(ctx, name)
			if err == nil || !b.IsNotFound(err) {
				t.Errorf("attributes %s: %v, want a not-found error", name, err)
			}
		}
	})

	t.Run("iter", func(t *testing.T) {
		all := sortedKeys(objects)
		for _, tc := range []struct {
			dir       string
			recursive bool
			want      []string
		}{
			{"", false, []string{"a/", "id1-x", "id1/", "id2/", "obj_5.some"}},
			{"", true, all},
			{"id1/", false, []string{"id1/obj_1.some", "id1/obj_2.some", "id1/obj_3.some", "id1/sub/"}},
			{"id1", false, []string{"id1/obj_1.some", "id1/obj_2.some", "id1/obj_3.some", "id1/sub/"}},
			{"id1/", true, []string{"id1/obj_1.some", "id1/obj_2.some", "id1/obj_3.some", "id1/sub/a", "id1/sub/deep/b"}},
			{"id1/sub", false, []string{"id1/sub/a", "id1/sub/deep/"}},
			{"id1/sub/", true, []string{"id1/sub/a", "id1/sub/deep/b"}},
			{"a", false, []string{"a/b/"}},
			{"a/b/c/d", true, []string{"a/b/c/d/e/f.txt"}},
			{"a/b/c/d/e/", false, []string{"a/b/c/d/e/f.txt"}},
			{"missing", false, nil},
			{"missing/", true, nil},
			{"id", false, nil},             // not a prefix of names, only of components
			{"id1/obj_1.some", false, nil}, // an object, not a directory
			{"id1/obj_1.some/", true, nil},
		} {
			got := list(t, b, tc.dir, tc.recursive)
			if !slices.Equal(got, tc.want) {
				t.Errorf("iter %q recursive=%v = %q, want %q", tc.dir, tc.recursive, got, tc.want)
			}
			if !slices.IsSorted(got) {
				t.Errorf("iter %q recursive=%v: not in lexicographic order: %q", tc.dir, tc.recursive, got)
			}
		}
	})

	t.Run("iter stops at an error of f", func(t *testing.T) {
		for _, recursive := range []bool{false, true} {
			stop := errors.New("stop")
			var calls []string
			err := b.Iter(ctx, "id1/", func(name string) error {
				calls = append(calls, name)
				if len(calls) == 2 {
					return stop
				}
				return nil
			}, recursive)
			if !errors.Is(err, stop) {
				t.Errorf("recursive=%v: Iter returned %v, want f's error", recursive, err)
			}
			if want := []string{"id1/obj_1.some", "id1/obj_2.some"}; !slices.Equal(calls, want) {
				t.Errorf("recursive=%v: f called with %q, want %q", recursive, calls, want)
			}
		}
	})

	t.Run("overwrite", func(t *testing.T) {
		const name = "id2/obj_4.some"
		for _, content := range []string{"a longer content than before", "short", ""} {
			if err := b.Upload(ctx, name, strings.NewReader(content)); err != nil {
				t.Fatalf("upload: %v", err)
			}
			if got := get(t, b, name); got != content {
				t.Errorf("after overwrite got %q, want %q", got, content)
			}
			attrs, err := b.Attributes(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			if attrs.Size != int64(len(content)) {
				t.Errorf("after overwrite size %d, want %d", attrs.Size, len(content))
			}
		}
		if err := b.Upload(ctx, name, strings.NewReader(objects[name])); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("readers", func(t *testing.T) {
		big := make([]byte, 17<<20+12345) // more than one part of a multipart upload
		rnd := rand.New(rand.NewPCG(1, 2))
		for i := range big {
			big[i] = byte(rnd.Uint32())
		}
		small := []byte("0123456789abcdef")
		f := tempFile(t, small)
		if _, err := f.Seek(4, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		bigFile := tempFile(t, big)
		for _, tc := range []struct {
			name string
			r    io.Reader
			want []byte
		}{
			{"empty", bytes.NewReader(nil), nil},
			{"bytes reader", bytes.NewReader(small), small},
			{"bytes buffer", bytes.NewBuffer(small), small},
			{"plain reader", onlyReader{bytes.NewReader(small)}, small},
			{"file read from offset 4", f, small[4:]},
			{"big plain reader", onlyReader{bytes.NewReader(big)}, big},
			{"big file", bigFile, big},
			{"big section", io.NewSectionReader(bytes.NewReader(big), 1000, 2000), big[1000:3000]},
		} {
			name := "readers/" + strings.ReplaceAll(tc.name, " ", "-")
			if err := b.Upload(ctx, name, tc.r); err != nil {
				t.Errorf("%s: upload: %v", tc.name, err)
				continue
			}
			if got := get(t, b, name); got != string(tc.want) {
				t.Errorf("%s: got %d bytes, want %d (equal prefix %d)", tc.name, len(got), len(tc.want), commonPrefix(got, string(tc.want)))
			}
			if err := b.Delete(ctx, name); err != nil {
				t.Errorf("%s: delete: %v", tc.name, err)
			}
		}
	})

	t.Run("failed reader leaves no object", func(t *testing.T) {
		const name = "failed/upload"
		err := b.Upload(ctx, name, io.MultiReader(strings.NewReader("partial"), errReader{}))
		if err == nil {
			t.Fatal("upload from a failing reader: no error")
		}
		if ok, err := b.Exists(ctx, name); err != nil || ok {
			t.Errorf("after a failed upload: exists = %v, %v", ok, err)
		}
		if got := list(t, b, "failed/", true); len(got) != 0 {
			t.Errorf("after a failed upload: listed %q", got)
		}
	})

	t.Run("cancelled context", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := b.Upload(cctx, "cancelled/x", strings.NewReader("x")); err == nil {
			t.Error("upload with a cancelled context: no error")
		}
		if rc, err := b.Get(cctx, "id1/obj_1.some"); err == nil {
			rc.Close()
			t.Error("get with a cancelled context: no error")
		}
		if err := b.Iter(cctx, "", func(string) error { return nil }, true); err == nil {
			t.Error("iter with a cancelled context: no error")
		}
		if ok, _ := b.Exists(ctx, "cancelled/x"); ok {
			t.Error("upload with a cancelled context created the object")
		}
	})

	t.Run("invalid names", func(t *testing.T) {
		for _, name := range []string{"", "/abs", "../x", "a/../../x", "a//b", "a/./b", "a/", ".", "..", "a/..", "x\x00y"} {
			checkInvalid := func(op string, err error) {
				t.Helper()
				if !errors.Is(err, objstore.ErrInvalidName) {
					t.Errorf("%s %q: %v, want an invalid-name error", op, name, err)
				}
				if b.IsNotFound(err) {
					t.Errorf("%s %q: invalid name reported as not found", op, name)
				}
			}
			_, err := b.Get(ctx, name)
			checkInvalid("get", err)
			_, err = b.GetRange(ctx, name, 0, 1)
			checkInvalid("get range", err)
			checkInvalid("upload", b.Upload(ctx, name, strings.NewReader("x")))
			checkInvalid("delete", b.Delete(ctx, name))
			_, err = b.Exists(ctx, name)
			checkInvalid("exists", err)
			_, err = b.Attributes(ctx, name)
			checkInvalid("attributes", err)
		}
		for _, dir := range []string{"/", "/abs", "../", "a//b/", "a/../b", "./"} {
			err := b.Iter(ctx, dir, func(string) error { return nil }, false)
			if !errors.Is(err, objstore.ErrInvalidName) {
				t.Errorf("iter %q: %v, want an invalid-name error", dir, err)
			}
		}
	})

	t.Run("concurrent uploads and deletes", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for g := range 4 {
			wg.Go(func() {
				for i := range 8 {
					name := fmt.Sprintf("conc/d%d/o%d-%d", i%2, g, i)
					if err := b.Upload(ctx, name, strings.NewReader(name)); err != nil {
						errs <- err
						return
					}
					if err := b.Delete(ctx, name); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if got := list(t, b, "conc/", true); len(got) != 0 {
			t.Errorf("left after concurrent uploads and deletes: %q", got)
		}
	})

	t.Run("delete", func(t *testing.T) {
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(b.Delete(ctx, "id1/sub/deep/b"))
		if _, err := b.Get(ctx, "id1/sub/deep/b"); !b.IsNotFound(err) {
			t.Errorf("get after delete: %v, want not found", err)
		}
		if got, want := list(t, b, "id1/sub/", false), []string{"id1/sub/a"}; !slices.Equal(got, want) {
			t.Errorf("after delete iter = %q, want %q", got, want)
		}
		must(b.Delete(ctx, "id1/sub/deep/b")) // again
		must(b.Delete(ctx, "missing"))
		must(b.Delete(ctx, "missing/deeper/still"))
		must(b.Delete(ctx, "id1/sub")) // a prefix, not an object
		if got := get(t, b, "id1/sub/a"); got != "a" {
			t.Errorf("deleting a prefix changed an object below it: %q", got)
		}
		must(b.Delete(ctx, "id1/sub/a"))
		if got, want := list(t, b, "id1/", false), []string{"id1/obj_1.some", "id1/obj_2.some", "id1/obj_3.some"}; !slices.Equal(got, want) {
			t.Errorf("after deleting the last object of a prefix iter = %q, want %q", got, want)
		}
		must(b.Delete(ctx, "a/b/c/d/e/f.txt"))
		if got := list(t, b, "", false); slices.Contains(got, "a/") {
			t.Errorf("after deleting the only object below a/: iter = %q", got)
		}
	})

	t.Run("leaves the bucket empty", func(t *testing.T) {
		for _, name := range list(t, b, "", true) {
			if err := b.Delete(ctx, name); err != nil {
				t.Error(err)
			}
		}
		if got := list(t, b, "", false); len(got) != 0 {
			t.Errorf("after deleting everything iter = %q", got)
		}
	})
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func get(t *testing.T, b objstore.Bucket, name string) string {
	t.Helper()
	rc, err := b.Get(context.Background(), name)
	if err != nil {
		t.Fatalf("get %s: %v", name, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return string(data)
}

func list(t *testing.T, b objstore.Bucket, dir string, recursive bool) []string {
	t.Helper()
	var names []string
	err := b.Iter(context.Background(), dir, func(name string) error {
		names = append(names, name)
		return nil
	}, recursive)
	if err != nil {
		t.Fatalf("iter %q recursive=%v: %v", dir, recursive, err)
	}
	return names
}

func tempFile(t *testing.T, data []byte) *os.File {
	t.Helper()
	p := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// onlyReader hides every method but Read, so that the size is unknown.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("reader failed") }
