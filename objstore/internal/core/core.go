// Package core holds what the objstore package and its providers share:
// the attribute type, the error sentinels and the rules for object names.
// It exists so that providers need not import objstore (which builds them);
// objstore re-exports everything here.
package core

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Attributes describe an object.
type Attributes struct {
	// Size is the object's length in bytes.
	Size int64
	// LastModified is when the object was last written.
	LastModified time.Time
}

// ErrNotFound is wrapped by errors of providers for objects that do not exist.
var ErrNotFound = errors.New("object not found")

// ErrInvalidName is wrapped by errors for object names or prefixes that
// break the naming rules of ValidateName.
var ErrInvalidName = errors.New("invalid object name")

// ErrPermanent is matched (errors.Is) by errors that retrying cannot fix,
// such as a denied access or a malformed request.
var ErrPermanent = errors.New("permanent error")

type permanentError struct{ err error }

func (e permanentError) Error() string        { return e.err.Error() }
func (e permanentError) Unwrap() error        { return e.err }
func (e permanentError) Is(target error) bool { return target == ErrPermanent }

// Permanent marks err as one that retrying cannot fix; the message is kept.
// It returns nil for a nil err.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// ValidateName checks that name is a valid object name: not empty, relative
// (no leading "/"), no trailing "/", no empty, "." or ".." component, no NUL
// byte. Valid names cannot escape a bucket's root on any provider.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidName)
	case strings.HasPrefix(name, "/"):
		return fmt.Errorf("%w %q: absolute", ErrInvalidName, name)
	case strings.HasSuffix(name, "/"):
		return fmt.Errorf("%w %q: ends with /", ErrInvalidName, name)
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("%w %q: contains a NUL byte", ErrInvalidName, name)
	}
	for _, c := range strings.Split(name, "/") {
		switch c {
		case "":
			return fmt.Errorf("%w %q: empty path component", ErrInvalidName, name)
		case ".", "..":
			return fmt.Errorf("%w %q: %q path component", ErrInvalidName, name, c)
		}
	}
	return nil
}

// CleanDir validates an iteration prefix and returns it in canonical form:
// "" for the root, otherwise the directory with one trailing "/". A prefix
// is valid when it is empty or, without its optional trailing "/", a valid
// object name.
func CleanDir(dir string) (string, error) {
	if dir == "" {
		return "", nil
	}
	d := strings.TrimSuffix(dir, "/")
	if err := ValidateName(d); err != nil {
		return "", fmt.Errorf("prefix: %w", err)
	}
	return d + "/", nil
}

// Size returns the number of bytes left in r when r can tell: a regular
// *os.File, a reader with a Len() int method (bytes.Reader, strings.Reader,
// bytes.Buffer), or one with a Size() int64 method, less its current offset
// when it is also an io.Seeker. Otherwise it returns -1.
func Size(r io.Reader) int64 {
	switch v := r.(type) {
	case *os.File:
		fi, err := v.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			return -1
		}
		pos, err := v.Seek(0, io.SeekCurrent)
		if err != nil {
			return -1
		}
		return max(fi.Size()-pos, 0)
	case interface{ Len() int }:
		return int64(v.Len())
	case interface{ Size() int64 }:
		size := v.Size()
		if s, ok := r.(io.Seeker); ok {
			pos, err := s.Seek(0, io.SeekCurrent)
			if err != nil {
				return -1
			}
			size = max(size-pos, 0)
		}
		return size
	}
	return -1
}
