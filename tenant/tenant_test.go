package tenant

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestValidateID(t *testing.T) {
	for _, tc := range []struct {
		id    string
		valid bool
	}{
		{"team-a", true},
		{"Team_B.prod", true},
		{"12345", true},
		{"", false},
		{".", false},
		{"..", false},
		{"...", false},     // would be a hidden directory
		{".hidden", false}, // likewise
		{"a..b", true},     // dots inside are fine
		{"a.", true},
		{"a/b", false},
		{"../etc", false},
		{`a\b`, false},
		{"with space", false},
		{"tab\t", false},
		{"ümlaut", false},
		{strings.Repeat("x", MaxIDLength), true},
		{strings.Repeat("x", MaxIDLength+1), false},
	} {
		err := ValidateID(tc.id)
		if (err == nil) != tc.valid {
			t.Errorf("ValidateID(%q) = %v, want valid=%v", tc.id, err, tc.valid)
		}
	}
}

func TestResolverFromRequest(t *testing.T) {
	auth, err := ParseAuth([]byte("tenants:\n  t1: {bearer_token: tok1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		headers  []string // values of X-Scope-OrgID, each sent as its own header
		def      string
		auth     bool
		token    string
		want     string
		wantCode int // 0: no error
	}{
		{"header wins", []string{"t1"}, "default", false, "", "t1", 0},
		{"default when absent", nil, "default", false, "", "default", 0},
		{"required when no default", nil, "", false, "", "", 401},
		{"invalid header", []string{"../x"}, "default", false, "", "", 400},
		{"hidden directory", []string{"..."}, "default", false, "", "", 400},
		// An empty or repeated header is the sender's mistake, not a request
		// for the default tenant or for the first tenant named.
		{"empty header", []string{""}, "default", false, "", "", 400},
		{"two headers", []string{"t1", "t2"}, "default", false, "", "", 400},
		{"two equal headers", []string{"t1", "t1"}, "default", false, "", "", 400},
		{"auth: credentials name the tenant", nil, "", true, "tok1", "t1", 0},
		{"auth: header agrees", []string{"t1"}, "", true, "tok1", "t1", 0},
		{"auth: header disagrees", []string{"t2"}, "", true, "tok1", "", 403},
		{"auth: no credentials, bad header", []string{""}, "", true, "", "", 401},
		{"auth: empty header", []string{""}, "", true, "tok1", "", 400},
		{"auth: two headers", []string{"t1", "t1"}, "", true, "tok1", "", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			for _, h := range tc.headers {
				r.Header.Add(HeaderName, h)
			}
			if tc.token != "" {
				r.Header.Set("Authorization", "Bearer "+tc.token)
			}
			res := Resolver{Default: tc.def}
			if tc.auth {
				res.Auth = auth
			}
			got, err := res.FromRequest(r)
			code := 0
			if err != nil {
				code = StatusCode(err)
			}
			if code != tc.wantCode || got != tc.want {
				t.Fatalf("got (%q, %v: HTTP %d), want (%q, HTTP %d)", got, err, code, tc.want, tc.wantCode)
			}
		})
	}
}

func TestErrorType(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{ErrUnauthenticated, "unauthorized"},
		{ErrNoTenant, "unauthorized"},
		{ErrForbidden, "forbidden"},
		{ErrInvalidTenant, "bad_data"},
	} {
		if got := ErrorType(tc.err); got != tc.want {
			t.Errorf("ErrorType(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestContextRoundTrip(t *testing.T) {
	if _, ok := FromContext(context.Background()); ok {
		t.Fatal("empty context must carry no tenant")
	}
	id, ok := FromContext(WithID(context.Background(), "t"))
	if !ok || id != "t" {
		t.Fatalf("got %q %v", id, ok)
	}
}
