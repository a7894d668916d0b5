package core

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	for _, name := range []string{"a", "a/b", "tenant/01J/chunks/000001", "a.b", ".hidden", "a/..b", "a b", "ü/ß"} {
		if err := ValidateName(name); err != nil {
			t.Errorf("%q: %v", name, err)
		}
	}
	for _, name := range []string{"", "/a", "a/", "a//b", ".", "..", "./a", "a/.", "a/../b", "../a", "a\x00"} {
		err := ValidateName(name)
		if !errors.Is(err, ErrInvalidName) {
			t.Errorf("%q: %v, want ErrInvalidName", name, err)
		}
	}
}

func TestCleanDir(t *testing.T) {
	for dir, want := range map[string]string{"": "", "a": "a/", "a/": "a/", "a/b": "a/b/", "a/b/": "a/b/"} {
		got, err := CleanDir(dir)
		if err != nil || got != want {
			t.Errorf("%q: %q, %v; want %q", dir, got, err, want)
		}
	}
	for _, dir := range []string{"/", "//", "a//", "../", "/a/", "a/../"} {
		if _, err := CleanDir(dir); !errors.Is(err, ErrInvalidName) {
			t.Errorf("%q: %v, want ErrInvalidName", dir, err)
		}
	}
}

func TestPermanent(t *testing.T) {
	base := errors.New("access denied")
	err := fmt.Errorf("bucket: %w", Permanent(base))
	if !errors.Is(err, ErrPermanent) || !errors.Is(err, base) || err.Error() != "bucket: access denied" {
		t.Errorf("got %v", err)
	}
	if Permanent(nil) != nil {
		t.Error("Permanent(nil) != nil")
	}
	if errors.Is(base, ErrPermanent) {
		t.Error("unmarked error is permanent")
	}
}

func TestSize(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(3, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	br := bytes.NewReader([]byte("0123"))
	br.Seek(1, io.SeekStart)
	for _, tc := range []struct {
		name string
		r    io.Reader
		want int64
	}{
		{"file at offset 3", f, 7},
		{"bytes reader at 1", br, 3},
		{"strings reader", strings.NewReader("abc"), 3},
		{"buffer", bytes.NewBufferString("abcd"), 4},
		{"section", io.NewSectionReader(strings.NewReader("0123456789"), 2, 5), 5},
		{"plain", io.MultiReader(strings.NewReader("abc")), -1},
	} {
		if got := Size(tc.r); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}
