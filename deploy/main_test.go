package deploy

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-tsdb/strata/internal/proctest"
)

// strataBin is the strata binary TestMain builds from this tree.
var strataBin string

// TestMain builds the strata binary once for the tests; under -short nothing
// is built and the tests that need it skip.
func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "strata-deploy-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploy: create build directory:", err)
		os.Exit(1)
	}
	strataBin = filepath.Join(dir, "strata")
	if err := proctest.BuildStrata("..", strataBin, false); err != nil {
		fmt.Fprintln(os.Stderr, "deploy: build strata:", err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// requireStrata skips t under -short, where no binary is built.
func requireStrata(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the strata binary and real programs; skipped with -short")
	}
}
