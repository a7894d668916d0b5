// Package s3 is an objstore provider on an S3-compatible service (AWS S3,
// MinIO, ...) through minio-go.
//
// Credentials come from the Config when it has an access key; otherwise
// from the usual AWS chain: the AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
// (and AWS_SESSION_TOKEN) environment variables, the shared credentials
// file (~/.aws/credentials, AWS_PROFILE), then the EC2/ECS instance role.
//
// The client does not retry by itself; objstore.WithRetry does. Errors
// name the bucket, its endpoint and the object, wrap objstore.ErrNotFound
// for missing objects and match objstore.ErrPermanent for client errors
// (4xx other than timeouts and throttling) that retrying cannot fix.
package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/strata-tsdb/strata/objstore/internal/core"
)

// Config configures an S3 bucket.
type Config struct {
	// Endpoint is host[:port] of the service; an "http://" or "https://"
	// prefix also sets Insecure. Empty means AWS S3 (s3.amazonaws.com).
	Endpoint string `yaml:"endpoint"`
	// Bucket is the bucket's name. The bucket must exist.
	Bucket string `yaml:"bucket"`
	// Region is the bucket's region; empty lets the client discover it.
	Region string `yaml:"region"`
	// AccessKey and SecretKey are static credentials; when AccessKey is
	// empty the AWS credential chain is used (which reads the environment:
	// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).
	AccessKey string `yaml:"access_key"`
	SecretKey string `yaml:"secret_key"`
	// SecretKeyFile names a file holding the secret key instead of
	// SecretKey (surrounding white space ignored); it is read by New.
	SecretKeyFile string `yaml:"secret_key_file"`
	// Insecure uses plain HTTP instead of HTTPS.
	Insecure bool `yaml:"insecure"`
	// PathStyle addresses the bucket as endpoint/bucket rather than as the
	// virtual host bucket.endpoint (needed by most non-AWS services).
	PathStyle bool `yaml:"path_style"`
}

// DefaultEndpoint is used when Config.Endpoint is empty.
const DefaultEndpoint = "s3.amazonaws.com"

// partSize is the part size of multipart uploads. It bounds the memory an
// upload of unknown size buffers, and objects to 10000 parts (160 GiB).
const partSize = 16 << 20

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Bucket == "":
		return errors.New("s3 bucket name must be set")
	case c.SecretKey != "" && c.SecretKeyFile != "":
		return errors.New("s3 secret key and secret key file are both set")
	case c.AccessKey != "" && c.SecretKey == "" && c.SecretKeyFile == "":
		return errors.New("s3 secret key must be set with the access key")
	case c.AccessKey == "" && (c.SecretKey != "" || c.SecretKeyFile != ""):
		return errors.New("s3 access key must be set with the secret key")
	}
	if _, _, err := c.hostAndSecure(); err != nil {
		return err
	}
	return nil
}

func (c Config) hostAndSecure() (host string, secure bool, err error) {
	host, secure = c.Endpoint, !c.Insecure
	switch {
	case host == "":
		host = DefaultEndpoint
	case strings.HasPrefix(host, "http://"):
		host, secure = strings.TrimPrefix(host, "http://"), false
	case strings.HasPrefix(host, "https://"):
		host, secure = strings.TrimPrefix(host, "https://"), true
	}
	host = strings.TrimSuffix(host, "/")
	if host == "" || strings.ContainsAny(host, "/?#") {
		return "", false, fmt.Errorf("s3 endpoint %q must be host[:port]", c.Endpoint)
	}
	return host, secure, nil
}

// Bucket is an S3 bucket. It implements objstore.Bucket.
type Bucket struct {
	client    *minio.Client
	transport *http.Transport
	bucket    string
	endpoint  string
}

// New returns a client of the bucket c describes. It makes no request; see
// CheckBucket.
func New(c Config) (*Bucket, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	host, secure, _ := c.hostAndSecure()
	var creds *credentials.Credentials
	if c.AccessKey != "" {
		secret := c.SecretKey
		if c.SecretKeyFile != "" {
			b, err := os.ReadFile(c.SecretKeyFile)
			if err != nil {
				return nil, fmt.Errorf("s3 secret key file: %w", err)
			}
			secret = strings.TrimSpace(string(b))
		}
		creds = credentials.NewStaticV4(c.AccessKey, secret, "")
	} else {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{},
			&credentials.FileAWSCredentials{},
			&credentials.IAM{Client: &http.Client{Transport: http.DefaultTransport}},
		})
	}
	tr, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, fmt.Errorf("s3 bucket %s: %w", c.Bucket, err)
	}
	lookup := minio.BucketLookupAuto
	if c.PathStyle {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(host, &minio.Options{
		Creds:        creds,
		Secure:       secure,
		Region:       c.Region,
		BucketLookup: lookup,
		Transport:    tr,
		MaxRetries:   1, // retries are objstore.WithRetry's job
	})
	if err != nil {
		return nil, fmt.Errorf("s3 bucket %s at %s: %w", c.Bucket, host, err)
	}
	return &Bucket{client: client, transport: tr, bucket: c.Bucket, endpoint: host}, nil
}

// CheckBucket returns an error unless the bucket exists and is accessible.
func (b *Bucket) CheckBucket(ctx context.Context) error {
	ok, err := b.client.BucketExists(ctx, b.bucket)
	if err != nil {
		return b.wrap("check bucket", "", err)
	}
	if !ok {
		return core.Permanent(fmt.Errorf("%s: the bucket does not exist; create it first", b.desc()))
	}
	return nil
}

// Name returns "s3:" and the bucket's name.
func (b *Bucket) Name() string { return "s3:" + b.bucket }

// Close closes the client's idle connections.
func (b *Bucket) Close() error {
	b.transport.CloseIdleConnections()
	return nil
}

func (b *Bucket) desc() string {
	return fmt.Sprintf("s3 bucket %s at %s", b.bucket, b.endpoint)
}

// IsNotFound reports whether err says an object does not exist.
func (b *Bucket) IsNotFound(err error) bool {
	if errors.Is(err, core.ErrNotFound) {
		return true
	}
	var resp minio.ErrorResponse
	return errors.As(err, &resp) && resp.Code == minio.NoSuchKey
}

// wrap names the bucket and object in err and classifies it: a missing
// object wraps ErrNotFound, a client error is Permanent.
func (b *Bucket) wrap(op, name string, err error) error {
	what := op
	if name != "" {
		what = fmt.Sprintf("%s %q", op, name)
	}
	var resp minio.ErrorResponse
	if !errors.As(err, &resp) {
		return fmt.Errorf("%s: %s: %w", b.desc(), what, err)
	}
	if resp.Code == minio.NoSuchKey {
		return fmt.Errorf("%s: %s: %w: %w", b.desc(), what, core.ErrNotFound, err)
	}
	err = fmt.Errorf("%s: %s: %w", b.desc(), what, err)
	if resp.StatusCode >= 400 && resp.StatusCode < 500 &&
		resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
		return core.Permanent(err)
	}
	return err
}

// Get returns a reader for the whole object.
func (b *Bucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	return b.get(ctx, "get", name, minio.GetObjectOptions{})
}

// GetRange returns a reader for length bytes from off (-1: to the end).
func (b *Bucket) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	const op = "get range"
	if err := core.ValidateName(name); err != nil {
		return nil, err
	}
	if off < 0 || length < -1 {
		return nil, core.Permanent(fmt.Errorf("%s: %s %q: invalid range: offset %d, length %d", b.desc(), op, name, off, length))
	}
	var opts minio.GetObjectOptions
	switch {
	case length == 0:
		// HTTP ranges cannot say "no bytes"; check that the object exists.
		if _, err := b.Attributes(ctx, name); err != nil {
			return nil, err
		}
		return io.NopCloser(strings.NewReader("")), nil
	case length == -1 && off == 0:
	case length == -1:
		if err := opts.SetRange(off, 0); err != nil {
			return nil, b.wrap(op, name, err)
		}
	default:
		if err := opts.SetRange(off, off+length-1); err != nil {
			return nil, b.wrap(op, name, err)
		}
	}
	return b.get(ctx, op, name, opts)
}

func (b *Bucket) get(ctx context.Context, op, name string, opts minio.GetObjectOptions) (io.ReadCloser, error) {
	if err := core.ValidateName(name); err != nil {
		return nil, err
	}
	// Core's GetObject sends the request now (one GET), so that a missing
	// object is reported here rather than by the first Read.
	body, _, _, err := minio.Core{Client: b.client}.GetObject(ctx, b.bucket, name, opts)
	if err != nil {
		if minio.ToErrorResponse(err).Code == "InvalidRange" {
			// The range starts at or beyond the end of an existing object.
			return io.NopCloser(strings.NewReader("")), nil
		}
		return nil, b.wrap(op, name, err)
	}
	return &objectReader{body: body, b: b, op: op, name: name}, nil
}

// objectReader names the bucket and object in read errors.
type objectReader struct {
	body     io.ReadCloser
	b        *Bucket
	op, name string
}

func (r *objectReader) Read(p []byte) (int, error) {
	n, err := r.body.Read(p)
	if err != nil && err != io.EOF {
		err = r.b.wrap(r.op, r.name, err)
	}
	return n, err
}

func (r *objectReader) Close() error { return r.body.Close() }

// Exists reports whether the object exists.
func (b *Bucket) Exists(ctx context.Context, name string) (bool, error) {
	if err := core.ValidateName(name); err != nil {
		return false, err
	}
	_, err := b.client.StatObject(ctx, b.bucket, name, minio.StatObjectOptions{})
	if err != nil {
		if b.IsNotFound(err) {
			return false, nil
		}
		return false, b.wrap("exists", name, err)
	}
	return true, nil
}

// Attributes returns the object's size and modification time.
func (b *Bucket) Attributes(ctx context.Context, name string) (core.Attributes, error) {
	if err := core.ValidateName(name); err != nil {
		return core.Attributes{}, err
	}
	info, err := b.client.StatObject(ctx, b.bucket, name, minio.StatObjectOptions{})
	if err != nil {
		return core.Attributes{}, b.wrap("attributes", name, err)
	}
	return core.Attributes{Size: info.Size, LastModified: info.LastModified}, nil
}

// Upload writes the object with PutObject, which S3 applies atomically.
func (b *Bucket) Upload(ctx context.Context, name string, r io.Reader) error {
	if err := core.ValidateName(name); err != nil {
		return err
	}
	r, size := sized(r)
	_, err := b.client.PutObject(ctx, b.bucket, name, r, size, minio.PutObjectOptions{
		ContentType: "application/octet-stream",
		PartSize:    partSize,
	})
	if err != nil {
		return b.wrap("upload", name, err)
	}
	return nil
}

// sized returns the reader to upload and the number of bytes left in it,
// or -1 when that is unknown.
func sized(r io.Reader) (io.Reader, int64) {
	size := core.Size(r)
	if f, ok := r.(*os.File); ok && size >= 0 {
		// minio-go reads an *os.File with ReadAt from offset 0; a section
		// keeps the upload to the bytes from the current offset.
		pos, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return r, -1
		}
		return io.NewSectionReader(f, pos, size), size
	}
	return r, size
}

// Delete removes the object; a missing object is not an error.
func (b *Bucket) Delete(ctx context.Context, name string) error {
	if err := core.ValidateName(name); err != nil {
		return err
	}
	if err := b.client.RemoveObject(ctx, b.bucket, name, minio.RemoveObjectOptions{}); err != nil {
		if b.IsNotFound(err) {
			return nil
		}
		return b.wrap("delete", name, err)
	}
	return nil
}

// Iter calls f for the entries below dir in lexicographic order. A
// non-recursive listing is collected and sorted before f is called, as S3
// returns objects and sub-prefixes in two separately sorted lists per page.
func (b *Bucket) Iter(ctx context.Context, dir string, f func(name string) error, recursive bool) error {
	prefix, err := core.CleanDir(dir)
	if err != nil {
		return err
	}
	fetchOwner := false
	var names []string
	for obj := range b.client.ListObjectsIter(ctx, b.bucket, minio.ListObjectsOptions{
		Prefix:     prefix,
		Recursive:  recursive,
		FetchOwner: &fetchOwner,
	}) {
		if obj.Err != nil {
			return b.wrap("iter", prefix, obj.Err)
		}
		key := obj.Key
		// Skip "directory marker" objects some tools create.
		if key == prefix || (recursive && strings.HasSuffix(key, "/")) {
			continue
		}
		if !recursive {
			names = append(names, key)
			continue
		}
		if err := f(key); err != nil {
			return err
		}
	}
	// The listing ends silently when ctx is done; do not report a partial
	// listing as a complete one.
	if err := ctx.Err(); err != nil {
		return b.wrap("iter", prefix, context.Cause(ctx))
	}
	slices.Sort(names)
	for _, n := range names {
		if err := f(n); err != nil {
			return err
		}
	}
	return nil
}
