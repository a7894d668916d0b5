// Package secret keeps secret settings out of everything Strata shows: a
// secret flag prints as Mask in flag listings (/api/v1/status/flags, -h
// defaults), and RedactArgs masks its value in a command line
// (/debug/pprof/cmdline).
package secret

import (
	"flag"
	"strings"
)

// Mask is shown instead of a secret's value.
const Mask = "<secret>"

// value is the flag.Value of a secret string. It is a pointer to the
// string it sets, as the standard library's flag values are (the
// configuration reference finds a flag's YAML key by that address).
type value string

func (v *value) String() string {
	if v == nil || *v == "" {
		return ""
	}
	return Mask
}

func (v *value) Set(s string) error { *v = value(s); return nil }

// isSecret marks the flag's value as one never to be shown.
func (*value) isSecret() {}

// StringVar defines a string flag whose value is a secret: it is stored in
// *p as given, and shown as Mask.
func StringVar(fs *flag.FlagSet, p *string, name, usage string) {
	*p = ""
	fs.Var((*value)(p), name, usage)
}

// IsSecret reports whether f was defined by StringVar.
func IsSecret(f *flag.Flag) bool {
	_, ok := f.Value.(interface{ isSecret() })
	return ok
}

// RedactArgs returns a copy of a command line's arguments (without the
// program name) with the value of every secret flag of fs replaced by Mask,
// in each form the flag package accepts: -name=value, --name=value, and
// -name value.
func RedactArgs(fs *flag.FlagSet, args []string) []string {
	out := make([]string, len(args))
	copy(out, args)
	for i := 0; i < len(out); i++ {
		a := out[i]
		if a == "--" {
			break
		}
		name, ok := strings.CutPrefix(a, "-")
		if !ok {
			continue
		}
		name = strings.TrimPrefix(name, "-")
		name, _, hasValue := strings.Cut(name, "=")
		f := fs.Lookup(name)
		if f == nil || !IsSecret(f) {
			continue
		}
		if hasValue {
			out[i] = a[:strings.Index(a, "=")+1] + Mask
		} else if i+1 < len(out) {
			i++
			out[i] = Mask
		}
	}
	return out
}
