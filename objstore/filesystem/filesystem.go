// Package filesystem is an objstore provider on a local directory, Strata's
// embedded default. Object "a/b/c" is the file <root>/a/b/c.
//
// Uploads are atomic and durable: the data goes to a temporary file in the
// object's directory, which is synced and renamed over the object, and the
// directory is synced. Temporary files start with TempPrefix; they are never
// listed, and object names with a component starting with it are rejected.
// Deleting an object removes the directories it leaves empty, up to the root.
//
// Unlike S3, a name cannot be both an object and a prefix of other objects
// ("a" and "a/b"): the upload of the second fails.
package filesystem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/strata-tsdb/strata/objstore/internal/core"
)

// TempPrefix starts the names of the temporary files of uploads in progress.
const TempPrefix = ".strata-tmp-"

// Bucket is a bucket on a local directory. It implements objstore.Bucket.
type Bucket struct {
	root string
}

// New returns a bucket on the directory dir, creating it if needed.
func New(dir string) (*Bucket, error) {
	if dir == "" {
		return nil, errors.New("filesystem bucket: no directory given")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("filesystem bucket %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("filesystem bucket %s: %w", abs, err)
	}
	return &Bucket{root: abs}, nil
}

// Dir returns the bucket's root directory.
func (b *Bucket) Dir() string { return b.root }

// Name returns "filesystem:" and the root directory.
func (b *Bucket) Name() string { return "filesystem:" + b.root }

// Close does nothing; a filesystem bucket holds no resources.
func (b *Bucket) Close() error { return nil }

// IsNotFound reports whether err wraps objstore.ErrNotFound.
func (b *Bucket) IsNotFound(err error) bool { return errors.Is(err, core.ErrNotFound) }

func (b *Bucket) errorf(op, name string, err error) error {
	return fmt.Errorf("%s: %s %q: %w", b.Name(), op, name, err)
}

func (b *Bucket) notFound(op, name string) error {
	return b.errorf(op, name, core.ErrNotFound)
}

// path validates name and returns its file path.
func (b *Bucket) path(name string) (string, error) {
	if err := core.ValidateName(name); err != nil {
		return "", err
	}
	for _, c := range strings.Split(name, "/") {
		if strings.HasPrefix(c, TempPrefix) {
			return "", fmt.Errorf("%w %q: component %q starts with the reserved %q", core.ErrInvalidName, name, c, TempPrefix)
		}
	}
	return filepath.Join(b.root, filepath.FromSlash(name)), nil
}

// isMissing reports whether err from opening or stating a path means that
// no file is there, also when a parent is a file rather than a directory.
func isMissing(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// open opens the regular file of the object name.
func (b *Bucket) open(ctx context.Context, op, name string) (*os.File, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := b.path(name)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		if isMissing(err) {
			return nil, b.notFound(op, name)
		}
		return nil, b.errorf(op, name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, b.errorf(op, name, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, b.notFound(op, name)
	}
	return f, nil
}

// Get returns a reader for the whole object.
func (b *Bucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	return b.open(ctx, "get", name)
}

// GetRange returns a reader for length bytes from off (-1: to the end).
func (b *Bucket) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	if off < 0 || length < -1 {
		return nil, core.Permanent(b.errorf("get range", name, fmt.Errorf("invalid range: offset %d, length %d", off, length)))
	}
	f, err := b.open(ctx, "get range", name)
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return nil, b.errorf("get range", name, err)
	}
	if length == -1 {
		return f, nil
	}
	return &limitedFile{Reader: io.LimitReader(f, length), f: f}, nil
}

type limitedFile struct {
	io.Reader
	f *os.File
}

func (l *limitedFile) Close() error { return l.f.Close() }

// Exists reports whether the object exists.
func (b *Bucket) Exists(ctx context.Context, name string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	p, err := b.path(name)
	if err != nil {
		return false, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		if isMissing(err) {
			return false, nil
		}
		return false, b.errorf("exists", name, err)
	}
	return fi.Mode().IsRegular(), nil
}

// Attributes returns the object's size and modification time.
func (b *Bucket) Attributes(ctx context.Context, name string) (core.Attributes, error) {
	if err := ctx.Err(); err != nil {
		return core.Attributes{}, err
	}
	p, err := b.path(name)
	if err != nil {
		return core.Attributes{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		if isMissing(err) {
			return core.Attributes{}, b.notFound("attributes", name)
		}
		return core.Attributes{}, b.errorf("attributes", name, err)
	}
	if !fi.Mode().IsRegular() {
		return core.Attributes{}, b.notFound("attributes", name)
	}
	return core.Attributes{Size: fi.Size(), LastModified: fi.ModTime()}, nil
}

// Upload writes the object atomically: a temporary file in the object's
// directory is written, synced and renamed over the object, and the
// directory is synced.
func (b *Bucket) Upload(ctx context.Context, name string, r io.Reader) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := b.path(name)
	if err != nil {
		return err
	}
	dir := filepath.Dir(p)
	tmp, err := b.createTemp(dir)
	if err != nil {
		return b.errorf("upload", name, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
			b.removeEmptyDirs(dir)
		}
	}()
	if _, err := io.Copy(tmp, ctxReader{ctx: ctx, r: r}); err != nil {
		return b.errorf("upload", name, err)
	}
	if err := tmp.Sync(); err != nil {
		return b.errorf("upload", name, err)
	}
	if err := tmp.Close(); err != nil {
		return b.errorf("upload", name, err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return b.errorf("upload", name, err)
	}
	done = true
	if err := syncDir(dir); err != nil {
		return b.errorf("upload", name, err)
	}
	return nil
}

// createTemp creates the directory dir and a temporary file in it. A
// concurrent Delete may remove dir while it is still empty, between its
// creation and the temporary file's; then both are tried again.
func (b *Bucket) createTemp(dir string) (*os.File, error) {
	var err error
	for range 10 {
		if err = b.mkdirAll(dir); err == nil {
			var f *os.File
			if f, err = os.CreateTemp(dir, TempPrefix+"*"); err == nil {
				return f, nil
			}
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return nil, err
}

// mkdirAll creates dir and its missing parents below the root, syncing the
// parent of each directory it creates so that the new entries are durable.
func (b *Bucket) mkdirAll(dir string) error {
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil
	}
	if dir == b.root {
		return os.MkdirAll(dir, 0o755)
	}
	parent := filepath.Dir(dir)
	if err := b.mkdirAll(parent); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			fi, serr := os.Stat(dir)
			if serr == nil && fi.IsDir() {
				return nil
			}
			if serr != nil {
				// Created by another upload and removed again, empty, by a
				// concurrent Delete: ErrNotExist, which createTemp retries.
				return serr
			}
		}
		return err
	}
	return syncDir(parent)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// ctxReader stops a copy when its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Delete removes the object and then each parent directory it leaves
// empty, up to (not including) the root. A missing object is not an error.
func (b *Bucket) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := b.path(name)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(p)
	if err != nil {
		if isMissing(err) {
			return nil
		}
		return b.errorf("delete", name, err)
	}
	if fi.IsDir() {
		return nil // a prefix, not an object
	}
	if err := os.Remove(p); err != nil && !isMissing(err) {
		return b.errorf("delete", name, err)
	}
	b.removeEmptyDirs(filepath.Dir(p))
	return nil
}

// removeEmptyDirs removes dir and then its parents while they are empty,
// up to (not including) the root.
func (b *Bucket) removeEmptyDirs(dir string) {
	for d := dir; d != b.root && strings.HasPrefix(d, b.root+string(filepath.Separator)); d = filepath.Dir(d) {
		if os.Remove(d) != nil {
			return // not empty (or gone): its parents are not empty either
		}
	}
}

// Iter calls f for the entries below dir in lexicographic order.
func (b *Bucket) Iter(ctx context.Context, dir string, f func(name string) error, recursive bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	prefix, err := core.CleanDir(dir)
	if err != nil {
		return err
	}
	if prefix != "" {
		if _, err := b.path(strings.TrimSuffix(prefix, "/")); err != nil {
			return fmt.Errorf("prefix: %w", err)
		}
	}
	return b.iter(ctx, prefix, f, recursive)
}

// iter lists the objects below prefix ("" or ending in "/").
func (b *Bucket) iter(ctx context.Context, prefix string, f func(name string) error, recursive bool) error {
	entries, err := b.readDir(prefix)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !strings.HasSuffix(e, "/") {
			if err := f(e); err != nil {
				return err
			}
			continue
		}
		if recursive {
			if err := b.iter(ctx, e, f, true); err != nil {
				return err
			}
			continue
		}
		has, err := b.hasObjects(e)
		if err != nil {
			return err
		}
		if has {
			if err := f(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// readDir returns the object names and sub-prefixes ("/"-suffixed) directly
// below prefix, sorted. A missing directory has no entries.
func (b *Bucket) readDir(prefix string) ([]string, error) {
	des, err := os.ReadDir(filepath.Join(b.root, filepath.FromSlash(prefix)))
	if err != nil {
		if isMissing(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("%s: iter %q: %w", b.Name(), prefix, err)
	}
	names := make([]string, 0, len(des))
	for _, de := range des {
		n := de.Name()
		if strings.HasPrefix(n, TempPrefix) {
			continue
		}
		switch t := de.Type(); {
		case t.IsDir():
			names = append(names, prefix+n+"/")
		case t.IsRegular():
			names = append(names, prefix+n)
		}
	}
	// A directory sorts by its name with the "/", as the prefix would in a
	// listing of object names.
	slices.Sort(names)
	return names, nil
}

// hasObjects reports whether any object exists below prefix. Empty
// directories (left, say, by a crash during Delete) are not listed.
func (b *Bucket) hasObjects(prefix string) (bool, error) {
	entries, err := b.readDir(prefix)
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		if !strings.HasSuffix(e, "/") {
			return true, nil
		}
	}
	for _, e := range entries {
		if has, err := b.hasObjects(e); err != nil || has {
			return has, err
		}
	}
	return false, nil
}
