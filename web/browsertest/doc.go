// Package browsertest drives Strata's web UI in headless Chromium against a
// real Strata: it starts the strata binary, remote-writes known data into
// it, ships blocks to its bucket, and runs web/ui/tests/browser/run.js
// (playwright-core over Debian's chromium), which checks every page and
// takes the screenshots of docs/webui/. It holds tests only.
package browsertest
