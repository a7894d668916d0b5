// Command gpx_strata is the backend of the Strata Grafana data source: Grafana
// starts it and talks to it over the plugin SDK's gRPC protocol.
package main

import (
	"os"

	"github.com/grafana/grafana-plugin-sdk-go/backend/datasource"
	"github.com/grafana/grafana-plugin-sdk-go/backend/log"

	"github.com/strata-tsdb/strata/grafana-plugin/pkg/strata"
)

func main() {
	if err := datasource.Manage(strata.PluginID, strata.NewDatasource, datasource.ManageOpts{}); err != nil {
		log.DefaultLogger.Error("strata data source stopped", "error", err.Error())
		os.Exit(1)
	}
}
