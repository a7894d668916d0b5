package main

import (
	"os"
	"runtime/debug"
)

// defaultGCPercent is Strata's garbage collection target when GOGC is not
// set. Strata's ingest path leaves little garbage (remote-write bodies are
// decoded into pooled buffers), so a target below Go's default of 100 costs
// little CPU and keeps resident memory closer to the live heap: strata-bench
// measures both in the same run (bench/RESULTS.md). Prometheus likewise
// lowers its own default (runtime.gogc, 75).
const defaultGCPercent = 50

// setGCPercent applies defaultGCPercent unless GOGC is set.
func setGCPercent() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
}
