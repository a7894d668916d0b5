package e2e

import (
	"os"
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
	os.Exit(proctest.MainWithStrata(m, "..", "STRATA_E2E_BINARY", raceEnabled, &strataBin))
}

// requireE2E skips t under -short: the e2e tests start real programs.
func requireE2E(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e tests start real programs; skipped with -short")
	}
}
