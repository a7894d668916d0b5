// Package tenant carries the tenant identity of a request from the HTTP edge
// (the X-Scope-OrgID header) through contexts to the store.
//
// A tenant ID names a directory on disk and a prefix in the bucket, so it is
// validated before it reaches either: it must be a non-empty, printable string
// of at most MaxIDLength bytes with no path separators, not starting with "."
// (which would make "." and "..", or a hidden directory).
package tenant

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// HeaderName is the HTTP header that names the tenant, as in Cortex, Mimir and Loki.
const HeaderName = "X-Scope-OrgID"

// MaxIDLength is the longest accepted tenant ID, in bytes.
const MaxIDLength = 150

// ErrNoTenant is returned when a request carries no tenant and no default applies.
var ErrNoTenant = errors.New("no tenant ID in request (header " + HeaderName + ")")

// ErrInvalidTenant is returned when a request names its tenant wrongly: an
// invalid ID, an empty header, or the header more than once.
var ErrInvalidTenant = errors.New("invalid tenant")

type ctxKey struct{}

// WithID returns a copy of ctx carrying tenant id.
func WithID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the tenant carried by ctx, if any.
func FromContext(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(ctxKey{}).(string)
	return id, ok && id != ""
}

// ValidateID reports why id cannot be used as a tenant ID, or nil if it can.
func ValidateID(id string) error {
	switch {
	case id == "":
		return errors.New("tenant ID is empty")
	case len(id) > MaxIDLength:
		return fmt.Errorf("tenant ID is longer than %d bytes", MaxIDLength)
	case id[0] == '.':
		// ".", ".." and "..." would name the tenants directory, its parent
		// or a hidden directory.
		return fmt.Errorf("tenant ID %q must not start with \".\"", id)
	}
	for _, r := range id {
		// Allow the characters Mimir allows: letters, digits and a few marks.
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case r == '!' || r == '-' || r == '_' || r == '.' || r == '*' || r == '\'' || r == '(' || r == ')':
		default:
			return fmt.Errorf("tenant ID %q contains unsupported character %q", id, r)
		}
	}
	return nil
}

// Resolver extracts and validates the tenant of an HTTP request.
type Resolver struct {
	// Default is used when the request carries no tenant header. When empty,
	// the header is required.
	Default string
	// Auth, when set, authenticates every request: its credentials name its
	// tenant, and a tenant header must agree. Without it the header is
	// trusted as sent.
	Auth *Authenticator
}

// FromRequest returns the tenant of r: its X-Scope-OrgID header, or the
// resolver's default when the header is absent. A header sent twice, or sent
// empty, is an error rather than a fallback to the default: either is a
// sender's mistake that would otherwise store or read another tenant's data.
// With an Authenticator, credentials are checked first, so that a request
// without valid ones is answered 401 whatever its header says.
func (res Resolver) FromRequest(r *http.Request) (string, error) {
	authID := ""
	if res.Auth != nil {
		var err error
		if authID, err = res.Auth.Authenticate(r); err != nil {
			return "", err
		}
	}
	id, sent, err := headerID(r)
	switch {
	case err != nil:
		return "", err
	case res.Auth != nil:
		if sent && id != authID {
			return "", fmt.Errorf("%w: header %s names tenant %q", ErrForbidden, HeaderName, id)
		}
		return authID, nil
	case !sent:
		if res.Default == "" {
			return "", ErrNoTenant
		}
		return res.Default, nil
	}
	if err := ValidateID(id); err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidTenant, err)
	}
	return id, nil
}

// headerID returns the value of r's tenant header and whether it was sent;
// an error when it is sent empty or more than once.
func headerID(r *http.Request) (string, bool, error) {
	switch vs := r.Header.Values(HeaderName); len(vs) {
	case 0:
		return "", false, nil
	case 1:
		if vs[0] == "" {
			return "", true, fmt.Errorf("%w: header %s is empty", ErrInvalidTenant, HeaderName)
		}
		return vs[0], true, nil
	default:
		return "", true, fmt.Errorf("%w: header %s is sent %d times", ErrInvalidTenant, HeaderName, len(vs))
	}
}

// Middleware resolves the tenant of each request and stores it in the
// request's context. Requests without a valid tenant are answered by onError.
func (res Resolver) Middleware(next http.Handler, onError func(http.ResponseWriter, *http.Request, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := res.FromRequest(r)
		if err != nil {
			onError(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithID(r.Context(), id)))
	})
}
