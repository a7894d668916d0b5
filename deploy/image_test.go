package deploy

import (
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mattn/go-shellwords"
)

// TestImageBinaryIsStatic runs the strata build command of the Dockerfile's
// build stage, as written there (ARG defaults substituted, the output
// redirected to a temporary directory), and checks that the binary it makes
// is a static executable that runs on distroless/static (no dynamic loader,
// no shared libraries). -trimpath is left out: it only strips file paths
// from the binary, and would make go rebuild every dependency uncached.
func TestImageBinaryIsStatic(t *testing.T) {
	requireStrata(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	stages, err := parseDockerfile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	build, ok := stageNamed(stages, "build")
	if !ok {
		t.Fatal("the Dockerfile has no build stage")
	}
	args := map[string]string{}
	for _, a := range append(regexp.MustCompile(`(?m)^ARG (\S+)$`).FindAllStringSubmatch(string(b), -1), nil) {
		if a == nil {
			continue
		}
		if k, v, ok := strings.Cut(a[1], "="); ok {
			args[k] = v
		}
	}
	var cmdline string
	for _, run := range build.all("RUN") {
		if i := strings.Index(run, "CGO_ENABLED=0 go build"); i >= 0 && strings.Contains(run, "./cmd/strata") {
			cmdline, _, _ = strings.Cut(run[i:], "&&")
		}
	}
	if cmdline == "" {
		t.Fatal("the build stage has no `CGO_ENABLED=0 go build ... ./cmd/strata`")
	}
	cmdline = os.Expand(cmdline, func(k string) string { return args[k] })
	words, err := shellwords.Parse(cmdline)
	if err != nil {
		t.Fatalf("parse %q: %v", cmdline, err)
	}
	out := filepath.Join(t.TempDir(), "strata")
	var env []string
	for len(words) > 0 && strings.Contains(words[0], "=") {
		env = append(env, words[0])
		words = words[1:]
	}
	words = slices.DeleteFunc(words, func(w string) bool { return w == "-trimpath" })
	for i, w := range words {
		if w == "-o" && i+1 < len(words) {
			words[i+1] = out
		}
	}
	if words[0] != "go" {
		t.Fatalf("the build command %q does not run go", cmdline)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", words[1:]...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	if outb, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmdline, err, outb)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("the image's strata binary needs a dynamic loader: distroless/static has none")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the image's strata binary links shared libraries %v", libs)
	}
}
