// This file only keeps web/ui/ (node_modules holds a few .go files) out of
// Strata's root module, so that the root's `go test ./...` and `go vet ./...`
// do not wander into npm packages. The built UI that the binary embeds is in
// web/dist/, part of the root module (package web).
module github.com/strata-tsdb/strata/web/ui

go 1.26.8
