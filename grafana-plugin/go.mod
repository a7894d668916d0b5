// This file only keeps grafana-plugin/ (node_modules holds a few .go files)
// out of Strata's root module, so that the root's `go test ./...` and
// `go vet ./...` do not wander into npm packages. The plugin's backend is
// the module in pkg/.
module github.com/strata-tsdb/strata/grafana-plugin

go 1.26.8
