package deploy

import (
	"os"
	"testing"

	"github.com/strata-tsdb/strata/internal/proctest"
)

// strataBin is the strata binary TestMain builds from this tree.
var strataBin string

// TestMain builds the strata binary once for the tests; under -short nothing
// is built and the tests that need it skip.
func TestMain(m *testing.M) {
	os.Exit(proctest.MainWithStrata(m, "..", "", false, &strataBin))
}

// requireStrata skips t under -short, where no binary is built.
func requireStrata(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the strata binary and real programs; skipped with -short")
	}
}
