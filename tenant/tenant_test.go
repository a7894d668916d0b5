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
	for _, tc := range []struct {
		name    string
		header  string
		def     string
		want    string
		wantErr bool
	}{
		{"header wins", "t1", "default", "t1", false},
		{"default when absent", "", "default", "default", false},
		{"required when no default", "", "", "", true},
		{"invalid header", "../x", "default", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tc.header != "" {
				r.Header.Set(HeaderName, tc.header)
			}
			got, err := Resolver{Default: tc.def}.FromRequest(r)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("got (%q, %v), want (%q, err=%v)", got, err, tc.want, tc.wantErr)
			}
		})
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
