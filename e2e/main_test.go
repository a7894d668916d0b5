package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// strataBin is the strata binary built once by TestMain for every test.
var strataBin string

// TestMain builds the strata binary into a temporary directory, with the race
// detector when the tests themselves run with it, and removes it afterwards.
// Under -short nothing is built: every test skips. STRATA_E2E_BINARY names a
// binary to test instead of building one.
func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	if bin := os.Getenv("STRATA_E2E_BINARY"); bin != "" {
		strataBin = bin
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "strata-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: create build directory:", err)
		os.Exit(1)
	}
	strataBin = filepath.Join(dir, "strata")
	if err := buildStrata(strataBin); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// buildStrata runs go build for ./cmd/strata, writing the binary to out.
func buildStrata(out string) error {
	args := []string{"build", "-o", out}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/strata")
	// go test puts its toolchain's bin directory first on the PATH of the
	// processes it starts, so "go" is the toolchain running the tests.
	cmd := exec.Command("go", args...)
	cmd.Dir = ".." // the module root; go test runs in the package directory
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %v: %w", args, err)
	}
	return nil
}

// requireE2E skips t under -short: the e2e tests start real programs.
func requireE2E(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e tests start real programs; skipped with -short")
	}
}
