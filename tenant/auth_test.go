package tenant

import (
	"errors"
	"net/http/httptest"
	"testing"
)

func TestAuthenticator(t *testing.T) {
	a, err := ParseAuth([]byte(`
tenants:
  team-a: {bearer_token: tok-a}
  team-b: {username: prom, password: pw-b}
`))
	if err != nil {
		t.Fatal(err)
	}
	res := Resolver{Default: "anonymous", Auth: a}
	for _, tc := range []struct {
		name, bearer, user, pass, header string
		want                             string
		err                              error
	}{
		{name: "bearer", bearer: "tok-a", want: "team-a"},
		{name: "bearer with matching header", bearer: "tok-a", header: "team-a", want: "team-a"},
		{name: "bearer with other tenant's header", bearer: "tok-a", header: "team-b", err: ErrForbidden},
		{name: "basic", user: "prom", pass: "pw-b", want: "team-b"},
		{name: "wrong password", user: "prom", pass: "x", err: ErrUnauthenticated},
		{name: "wrong token", bearer: "tok-b", err: ErrUnauthenticated},
		{name: "header only", header: "team-a", err: ErrUnauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tc.bearer != "" {
				r.Header.Set("Authorization", "Bearer "+tc.bearer)
			}
			if tc.user != "" {
				r.SetBasicAuth(tc.user, tc.pass)
			}
			if tc.header != "" {
				r.Header.Set(HeaderName, tc.header)
			}
			got, err := res.FromRequest(r)
			if !errors.Is(err, tc.err) || got != tc.want {
				t.Errorf("got %q, %v; want %q, %v", got, err, tc.want, tc.err)
			}
		})
	}
	for _, bad := range []string{
		"tenants: {a: {}}",
		"tenants: {a: {username: u}}",
		"tenants: {a: {bearer_token: t}, b: {bearer_token: t}}",
		"tenants: {'a/b': {bearer_token: t}}",
	} {
		if _, err := ParseAuth([]byte(bad)); err == nil {
			t.Errorf("ParseAuth(%q) accepted", bad)
		}
	}
}
