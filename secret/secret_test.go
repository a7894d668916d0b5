package secret

import (
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestSecretFlag(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var key, user string
	StringVar(fs, &key, "s3.secret-key", "secret")
	fs.StringVar(&user, "s3.access-key", "", "not secret")
	if err := fs.Parse([]string{"-s3.secret-key=hunter2", "-s3.access-key", "AK"}); err != nil {
		t.Fatal(err)
	}
	if key != "hunter2" || user != "AK" {
		t.Fatalf("parsed %q %q", key, user)
	}
	if got := fs.Lookup("s3.secret-key").Value.String(); got != Mask {
		t.Errorf("secret flag shows %q, want %q", got, Mask)
	}
	var usage strings.Builder
	fs.SetOutput(&usage)
	fs.PrintDefaults()
	if strings.Contains(usage.String(), "hunter2") {
		t.Errorf("usage shows the secret:\n%s", usage.String())
	}

	for _, tc := range []struct{ in, want []string }{
		{[]string{"-s3.secret-key=hunter2"}, []string{"-s3.secret-key=" + Mask}},
		{[]string{"--s3.secret-key=hunter2"}, []string{"--s3.secret-key=" + Mask}},
		{[]string{"-s3.secret-key", "hunter2", "-s3.access-key", "AK"}, []string{"-s3.secret-key", Mask, "-s3.access-key", "AK"}},
		{[]string{"--s3.secret-key", "hunter2"}, []string{"--s3.secret-key", Mask}},
		{[]string{"-s3.access-key=AK", "-other=hunter2"}, []string{"-s3.access-key=AK", "-other=hunter2"}},
		{[]string{"-s3.secret-key"}, []string{"-s3.secret-key"}}, // no value: nothing to hide
		{[]string{"--", "-s3.secret-key=x"}, []string{"--", "-s3.secret-key=x"}},
	} {
		if got := RedactArgs(fs, tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("RedactArgs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
