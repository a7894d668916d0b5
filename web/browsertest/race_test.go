//go:build race

package browsertest

// raceEnabled reports whether the tests, and so the strata binary they build,
// run with the race detector.
const raceEnabled = true
