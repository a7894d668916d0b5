package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/grpcplugin"
	"github.com/grafana/grafana-plugin-sdk-go/genproto/pluginv2"
	"github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"

	"github.com/strata-tsdb/strata/grafana-plugin/pkg/internal/stratatest"
)

// pluginBinary returns the built backend: $STRATA_PLUGIN_BINARY (the
// Makefile passes dist/gpx_strata_linux_amd64) or one built here.
func pluginBinary(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("STRATA_PLUGIN_BINARY"); b != "" {
		return b
	}
	bin := filepath.Join(t.TempDir(), "gpx_strata")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building the plugin: %v\n%s", err, out)
	}
	return bin
}

// TestBuiltPluginOverGRPC starts the built plugin binary as Grafana does
// (go-plugin handshake with the data source magic cookie, gRPC protocol 2)
// and asks it for its health, a query and an autocompletion resource.
func TestBuiltPluginOverGRPC(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Strata and the plugin binary; not run with -short")
	}
	srv := stratatest.Start(t, stratatest.Options{})
	now := time.Now().Truncate(15 * time.Second) // on the 15s steps of the query
	var samples []stratatest.Sample
	for i := 0; i <= 40; i++ {
		samples = append(samples, stratatest.Sample{T: now.Add(time.Duration(i-40) * 15 * time.Second), V: float64(i)})
	}
	srv.Write(t, "grpc-tenant", stratatest.Series{Labels: map[string]string{"__name__": "grpc_test_metric", "host": "h1"}, Samples: samples})

	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig: plugin.HandshakeConfig{
			ProtocolVersion:  grpcplugin.ProtocolVersion,
			MagicCookieKey:   grpcplugin.MagicCookieKey,
			MagicCookieValue: grpcplugin.MagicCookieValue,
		},
		Plugins: plugin.PluginSet{
			"diagnostics": &grpcplugin.DiagnosticsGRPCPlugin{},
			"data":        &grpcplugin.DataGRPCPlugin{},
			"resource":    &grpcplugin.ResourceGRPCPlugin{},
		},
		Cmd:              exec.Command(pluginBinary(t)),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           hclog.New(&hclog.LoggerOptions{Output: io.Discard}),
		StartTimeout:     30 * time.Second,
	})
	t.Cleanup(client.Kill)
	rpc, err := client.Client()
	if err != nil {
		t.Fatalf("handshake with the plugin: %v", err)
	}
	dispense := func(name string) any {
		raw, err := rpc.Dispense(name)
		if err != nil {
			t.Fatalf("dispensing %s: %v", name, err)
		}
		return raw
	}
	diag := dispense("diagnostics").(grpcplugin.DiagnosticsClient)
	dataClient := dispense("data").(grpcplugin.DataClient)
	resource := dispense("resource").(grpcplugin.ResourceClient)

	jsonData, _ := json.Marshal(map[string]any{"tenant": "grpc-tenant", "timeoutSeconds": 10})
	pctx := backend.ToProto().PluginContext(backend.PluginContext{
		OrgID:    1,
		PluginID: "strata-tsdb-datasource",
		DataSourceInstanceSettings: &backend.DataSourceInstanceSettings{
			ID: 1, UID: "strata", Name: "Strata", URL: srv.URL, JSONData: jsonData, Updated: now,
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	t.Run("CheckHealth", func(t *testing.T) {
		res, err := diag.CheckHealth(ctx, &pluginv2.CheckHealthRequest{PluginContext: pctx})
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != pluginv2.CheckHealthResponse_OK || !strings.Contains(res.Message, "Strata") {
			t.Fatalf("health = %v %q", res.Status, res.Message)
		}
	})

	t.Run("QueryData", func(t *testing.T) {
		// As a Grafana-managed alert rule sends it: no front end involved.
		model, _ := json.Marshal(map[string]any{"refId": "A", "queryType": "promql", "expr": "max(grpc_test_metric)", "legendFormat": "max"})
		req := backend.ToProto().QueryDataRequest(&backend.QueryDataRequest{
			Queries: []backend.DataQuery{{RefID: "A", JSON: model, Interval: 15 * time.Second, MaxDataPoints: 100,
				TimeRange: backend.TimeRange{From: now.Add(-10 * time.Minute), To: now}}},
		})
		req.PluginContext = pctx
		res, err := dataClient.QueryData(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := backend.FromProto().QueryDataResponse(res)
		if err != nil {
			t.Fatal(err)
		}
		r := resp.Responses["A"]
		if r.Error != nil {
			t.Fatal(r.Error)
		}
		if len(r.Frames) != 1 || r.Frames[0].Name != "max" || r.Frames[0].Rows() != 41 {
			for _, f := range r.Frames {
				t.Logf("frame %q: %d rows", f.Name, f.Rows())
			}
			t.Fatalf("want one frame \"max\" of 41 rows, got %d frames", len(r.Frames))
		}
		if last := r.Frames[0].Fields[1].At(40).(float64); last != 40 {
			t.Errorf("last value = %v, want 40", last)
		}
	})

	t.Run("CallResource", func(t *testing.T) {
		stream, err := resource.CallResource(ctx, &pluginv2.CallResourceRequest{
			PluginContext: pctx, Path: "label/host/values", Method: "GET", Url: "label/host/values",
		})
		if err != nil {
			t.Fatal(err)
		}
		msg, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if msg.Code != 200 || !strings.Contains(string(msg.Body), `"h1"`) {
			t.Fatalf("resource answer %d %s", msg.Code, msg.Body)
		}
	})
}
