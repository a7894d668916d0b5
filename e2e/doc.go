// Package e2e holds Strata's end-to-end tests. They build the strata binary
// (with the race detector when the tests run with -race; STRATA_E2E_BINARY
// names a prebuilt one instead), start it together with real programs
// (Prometheus 2 as a remote-write 1.0 client, Prometheus 3 as a remote-write
// 2.0 client, both as remote-read clients, node exporter as a scrape target)
// and check what a user of those programs would see:
//
//   - TestRemoteWrite1MatchesPrometheus, TestRemoteWrite2MatchesPrometheus:
//     Strata answers the query API byte for byte as the Prometheus that sent
//     it the data answers from its own TSDB.
//   - TestRemoteRead: a Prometheus reading Strata through remote read, and a
//     Go client of both remote-read response types, get the written samples.
//   - TestCrashRecovery: every acknowledged sample survives SIGKILL.
//   - TestTenantIsolation, TestTenantHeaderRequired: tenants see only their
//     own data; invalid or missing tenant IDs are refused.
//
// The programs are installed by `make deps` (scripts/deps.sh). A missing one
// fails the tests; `go test -short` (make test-unit) skips the whole package.
// Every process listens on 127.0.0.1, logs to a file in the test's temporary
// directory (printed when the test fails) and is killed when its test ends.
package e2e
