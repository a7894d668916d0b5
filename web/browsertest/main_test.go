package browsertest

import (
	"os"
	"testing"

	"github.com/strata-tsdb/strata/internal/proctest"
)

// strataBin is the strata binary built once by TestMain.
var strataBin string

// TestMain builds the strata binary (with the race detector when the tests
// run with it), or takes $STRATA_E2E_BINARY. Under -short nothing is built
// and the browser test skips.
func TestMain(m *testing.M) {
	os.Exit(proctest.MainWithStrata(m, "../..", "STRATA_E2E_BINARY", raceEnabled, &strataBin))
}
