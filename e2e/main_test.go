package e2e

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-tsdb/strata/internal/proctest"
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
	if err := proctest.BuildStrata("..", strataBin, raceEnabled); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// requireE2E skips t under -short: the e2e tests start real programs.
func requireE2E(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e tests start real programs; skipped with -short")
	}
}
