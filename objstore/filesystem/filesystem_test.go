package filesystem_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/strata-tsdb/strata/objstore"
	"github.com/strata-tsdb/strata/objstore/filesystem"
	"github.com/strata-tsdb/strata/objstore/objstoretest"
)

var _ objstore.Bucket = (*filesystem.Bucket)(nil)

func newBucket(t *testing.T) (*filesystem.Bucket, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bucket")
	b, err := filesystem.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return b, dir
}

func TestAcceptance(t *testing.T) {
	b, dir := newBucket(t)
	objstoretest.AcceptanceTest(t, b)
	// Deletes removed every directory they emptied, and no temporary file
	// was left behind.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("bucket directory not empty after the acceptance test: %q", names)
	}
}

func TestAcceptanceWithRetryAndInstrument(t *testing.T) {
	b, _ := newBucket(t)
	objstoretest.AcceptanceTest(t, objstore.Instrument(objstore.WithRetry(b, objstore.RetryOptions{Timeout: 0, MaxRetries: 2}), nil))
}

func TestLayoutOnDisk(t *testing.T) {
	b, dir := newBucket(t)
	ctx := context.Background()
	if err := b.Upload(ctx, "t/01ABC/chunks/000001", strings.NewReader("chunk")); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "t", "01ABC", "chunks", "000001"))
	if err != nil || string(data) != "chunk" {
		t.Fatalf("object file: %q, %v", data, err)
	}
	if err := b.Delete(ctx, "t/01ABC/chunks/000001"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "t")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("emptied directories not removed: %v", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("root removed: %v", err)
	}
}

func TestTemporaryFilesAndEmptyDirsAreNotListed(t *testing.T) {
	b, dir := newBucket(t)
	ctx := context.Background()
	if err := b.Upload(ctx, "t/obj", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	// What a crash could leave: a temporary file and an empty directory.
	if err := os.WriteFile(filepath.Join(dir, "t", filesystem.TempPrefix+"123"), []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "t", "empty", "deeper"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "empty-top"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dir       string
		recursive bool
		want      []string
	}{
		{"", false, []string{"t/"}},
		{"", true, []string{"t/obj"}},
		{"t/", false, []string{"t/obj"}},
		{"t/empty/", false, nil},
	} {
		var got []string
		if err := b.Iter(ctx, tc.dir, func(n string) error { got = append(got, n); return nil }, tc.recursive); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("iter %q recursive=%v = %q, want %q", tc.dir, tc.recursive, got, tc.want)
		}
	}
	// Temporary names are reserved.
	for _, name := range []string{filesystem.TempPrefix + "x", "t/" + filesystem.TempPrefix + "123", filesystem.TempPrefix + "d/x"} {
		if _, err := b.Get(ctx, name); !errors.Is(err, objstore.ErrInvalidName) {
			t.Errorf("get %q: %v, want an invalid-name error", name, err)
		}
		if err := b.Upload(ctx, name, strings.NewReader("x")); !errors.Is(err, objstore.ErrInvalidName) {
			t.Errorf("upload %q: %v, want an invalid-name error", name, err)
		}
	}
}

func TestFailedUploadRemovesItsTemporaryFile(t *testing.T) {
	b, dir := newBucket(t)
	ctx := context.Background()
	if err := b.Upload(ctx, "t/obj", strings.NewReader("old")); err != nil {
		t.Fatal(err)
	}
	err := b.Upload(ctx, "t/obj", io.MultiReader(strings.NewReader("new, partial"), failingReader{}))
	if err == nil {
		t.Fatal("no error from a failing reader")
	}
	if !strings.Contains(err.Error(), "t/obj") || !strings.Contains(err.Error(), "filesystem") {
		t.Errorf("error %q does not name the object and the backend", err)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "t"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "obj" {
		t.Errorf("directory holds %v, want only obj", entries)
	}
	rc, err := b.Get(ctx, "t/obj")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if data, _ := io.ReadAll(rc); string(data) != "old" {
		t.Errorf("object changed by a failed upload: %q", data)
	}
}

func TestNamesStayInsideTheRoot(t *testing.T) {
	parent := t.TempDir()
	b, err := filesystem.New(filepath.Join(parent, "bucket"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(parent, "secret"), []byte("s"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, name := range []string{"../secret", "a/../../secret", "/" + filepath.Join(parent, "secret")} {
		if _, err := b.Get(ctx, name); !errors.Is(err, objstore.ErrInvalidName) {
			t.Errorf("get %q: %v, want an invalid-name error", name, err)
		}
		if err := b.Delete(ctx, name); !errors.Is(err, objstore.ErrInvalidName) {
			t.Errorf("delete %q: %v, want an invalid-name error", name, err)
		}
	}
	if err := b.Iter(ctx, "../", func(string) error { return nil }, true); !errors.Is(err, objstore.ErrInvalidName) {
		t.Errorf("iter ../: %v, want an invalid-name error", err)
	}
	if _, err := os.Stat(filepath.Join(parent, "secret")); err != nil {
		t.Errorf("file outside the root touched: %v", err)
	}
}

func TestNewNeedsADirectory(t *testing.T) {
	if _, err := filesystem.New(""); err == nil {
		t.Error("New(\"\"): no error")
	}
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := filesystem.New(f); err == nil {
		t.Error("New on a file: no error")
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }
