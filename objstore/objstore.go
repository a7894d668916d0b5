// Package objstore is Strata's access to object storage: a small Bucket
// interface, a local-filesystem provider (the embedded default, package
// objstore/filesystem) and an S3 provider on minio-go (package objstore/s3),
// with retries, timeouts and instrumentation wrapped around the interface
// (WithRetry, Instrument) instead of woven into each provider. New builds
// the configured stack from a Config.
//
// Object names are slash-separated paths relative to the bucket root, such
// as "tenant/01J.../meta.json", and follow the rules of ValidateName.
// Directories are implied by names; Iter lists one level below a prefix and
// returns sub-prefixes with a trailing "/".
package objstore

import (
	"context"
	"io"

	"github.com/strata-tsdb/strata/objstore/internal/core"
)

// Bucket is the object-storage interface Strata's store and compactor use.
// Implementations are safe for concurrent use. Methods return an error
// wrapping ErrInvalidName for a name (or prefix) that ValidateName rejects.
type Bucket interface {
	// Get returns a reader for the whole object. It returns an error for
	// which IsNotFound is true when the object does not exist.
	Get(ctx context.Context, name string) (io.ReadCloser, error)
	// GetRange returns a reader for length bytes of the object from off;
	// length -1 reads to the end. The reader ends early at the end of the
	// object; an off at or beyond the end gives an empty reader. A missing
	// object is reported as Get does; a negative off or a length below -1
	// is an error.
	GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error)
	// Upload writes the object, replacing any previous one, atomically:
	// readers see the old or the new object, never a part. When r is also an
	// io.Seeker, a failed attempt may be retried from the start.
	Upload(ctx context.Context, name string, r io.Reader) error
	// Delete removes the object. Deleting a missing object is not an error.
	Delete(ctx context.Context, name string) error
	// Iter calls f for each entry directly below dir (sub-prefixes end in
	// "/"), or for every object below dir when recursive is set, in
	// lexicographic (byte) order. Names passed to f are full object names
	// (or prefixes), not relative to dir. dir is "" for the root; its
	// trailing "/" is optional. A missing dir gives no calls and no error.
	// An error from f stops the iteration and is returned.
	Iter(ctx context.Context, dir string, f func(name string) error, recursive bool) error
	// Exists reports whether the object exists.
	Exists(ctx context.Context, name string) (bool, error)
	// Attributes returns the object's size and modification time.
	Attributes(ctx context.Context, name string) (Attributes, error)
	// IsNotFound reports whether err says an object does not exist.
	IsNotFound(err error) bool
	// Name names the bucket and its provider for messages and metrics.
	Name() string
	// Close releases the bucket's resources.
	Close() error
}

// Attributes describe an object: its Size in bytes and LastModified time.
type Attributes = core.Attributes

// ErrNotFound is wrapped by errors of providers for objects that do not exist.
var ErrNotFound = core.ErrNotFound

// ErrInvalidName is wrapped by errors for names or prefixes that break the
// rules of ValidateName. Such errors are never retried.
var ErrInvalidName = core.ErrInvalidName

// ErrPermanent is matched (errors.Is) by errors that retrying cannot fix,
// such as a denied access; see Permanent. Such errors are never retried.
var ErrPermanent = core.ErrPermanent

// Permanent marks err so that errors.Is(err, ErrPermanent) holds, keeping
// its message and chain. It returns nil for a nil err.
func Permanent(err error) error { return core.Permanent(err) }

// ValidateName checks that name is a valid object name: not empty, relative
// (no leading "/"), no trailing "/", no empty, "." or ".." component, no NUL
// byte. The error wraps ErrInvalidName.
func ValidateName(name string) error { return core.ValidateName(name) }
