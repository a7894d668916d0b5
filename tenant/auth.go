package tenant

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// Errors of authentication; the HTTP edge answers the first with 401 and the
// second with 403.
var (
	ErrUnauthenticated = errors.New("missing or invalid credentials")
	ErrForbidden       = errors.New("credentials not valid for the requested tenant")
)

// Credentials are what a tenant authenticates with: a bearer token, or a
// basic-auth user name and password, or both.
type Credentials struct {
	BearerToken string `yaml:"bearer_token"`
	Username    string `yaml:"username"`
	Password    string `yaml:"password"`
}

// authFile is the format of the authentication file:
//
//	tenants:
//	  team-a:
//	    bearer_token: s3cr3t
//	  team-b:
//	    username: prometheus
//	    password: pa55
type authFile struct {
	Tenants map[string]Credentials `yaml:"tenants"`
}

type credential struct {
	tenant string
	// Digests, compared in constant time: equal-length inputs keep the
	// comparison's time independent of where a guess goes wrong.
	token, user, pass [sha256.Size]byte
	hasToken, hasUser bool
}

// Authenticator maps credentials to tenants. With one, the credentials of a
// request decide its tenant; X-Scope-OrgID, when also sent, must name the
// same tenant.
type Authenticator struct {
	creds []credential
}

// LoadAuthFile reads an authentication file.
func LoadAuthFile(path string) (*Authenticator, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read auth file: %w", err)
	}
	return ParseAuth(b)
}

// ParseAuth parses the content of an authentication file.
func ParseAuth(b []byte) (*Authenticator, error) {
	var f authFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("parse auth file: %w", err)
	}
	a := &Authenticator{}
	seen := map[string]string{}
	for id, c := range f.Tenants {
		if err := ValidateID(id); err != nil {
			return nil, fmt.Errorf("auth file: %w", err)
		}
		cr := credential{tenant: id}
		if c.BearerToken != "" {
			if other, dup := seen["t:"+c.BearerToken]; dup {
				return nil, fmt.Errorf("auth file: tenants %q and %q share a bearer token", other, id)
			}
			seen["t:"+c.BearerToken] = id
			cr.token, cr.hasToken = sha256.Sum256([]byte(c.BearerToken)), true
		}
		if c.Username != "" {
			if c.Password == "" {
				return nil, fmt.Errorf("auth file: tenant %q has a username without a password", id)
			}
			if other, dup := seen["u:"+c.Username]; dup {
				return nil, fmt.Errorf("auth file: tenants %q and %q share the username %q", other, id, c.Username)
			}
			seen["u:"+c.Username] = id
			cr.user, cr.pass, cr.hasUser = sha256.Sum256([]byte(c.Username)), sha256.Sum256([]byte(c.Password)), true
		}
		if !cr.hasToken && !cr.hasUser {
			return nil, fmt.Errorf("auth file: tenant %q has neither bearer_token nor username and password", id)
		}
		a.creds = append(a.creds, cr)
	}
	return a, nil
}

// Authenticate returns the tenant whose credentials r carries.
func (a *Authenticator) Authenticate(r *http.Request) (string, error) {
	if user, pass, ok := r.BasicAuth(); ok {
		u, p := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
		for i := range a.creds {
			c := &a.creds[i]
			if c.hasUser && subtle.ConstantTimeCompare(u[:], c.user[:])&subtle.ConstantTimeCompare(p[:], c.pass[:]) == 1 {
				return c.tenant, nil
			}
		}
		return "", ErrUnauthenticated
	}
	h := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || token == "" {
		return "", ErrUnauthenticated
	}
	t := sha256.Sum256([]byte(token))
	for i := range a.creds {
		c := &a.creds[i]
		if c.hasToken && subtle.ConstantTimeCompare(t[:], c.token[:]) == 1 {
			return c.tenant, nil
		}
	}
	return "", ErrUnauthenticated
}

// StatusCode is the HTTP status answering a request whose tenant could not
// be resolved with err.
func StatusCode(err error) int {
	switch {
	case errors.Is(err, ErrNoTenant), errors.Is(err, ErrUnauthenticated):
		return http.StatusUnauthorized
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden
	}
	return http.StatusBadRequest
}

// ErrorType is the errorType of the Prometheus API's error envelope that
// answers a request whose tenant could not be resolved with err: 401 and
// 403 are not bad data, and a client tells them apart by this field.
func ErrorType(err error) string {
	switch StatusCode(err) {
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	}
	return "bad_data"
}
