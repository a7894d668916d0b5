// Package strata is the backend of the Strata Grafana data source: it answers
// Grafana's data queries (PromQL, anomaly bands, alert-state annotations),
// health checks and the editor's autocompletion calls through Strata's HTTP API.
package strata

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/instancemgmt"
)

// Query types of the query model's queryType.
const (
	QueryTypePromQL  = "promql"
	QueryTypeAnomaly = "anomaly"
	QueryTypeAlerts  = "alerts"
)

// Query is the JSON model of one query (a panel target or an alert rule's query).
type Query struct {
	QueryType string `json:"queryType"`

	// PromQL and anomaly queries.
	Expr         string `json:"expr"`
	LegendFormat string `json:"legendFormat"`
	Instant      bool   `json:"instant"`
	Range        *bool  `json:"range"`
	Interval     string `json:"interval"`

	// Anomaly queries.
	Detector string         `json:"detector"`
	Params   map[string]any `json:"params"`

	// Alert-state annotation queries.
	AlertName string   `json:"alertName"`
	Matchers  string   `json:"matchers"`
	States    []string `json:"states"`
}

// Datasource is one configured Strata data source.
type Datasource struct {
	settings Settings
	client   *Client
	// settingsErr says why the settings are unusable; every call answers with it.
	settingsErr error
}

var (
	_ backend.QueryDataHandler      = (*Datasource)(nil)
	_ backend.CheckHealthHandler    = (*Datasource)(nil)
	_ backend.CallResourceHandler   = (*Datasource)(nil)
	_ instancemgmt.InstanceDisposer = (*Datasource)(nil)
)

// NewDatasource creates the data source of an instance's settings; Grafana
// calls it again when the settings change.
func NewDatasource(_ context.Context, s backend.DataSourceInstanceSettings) (instancemgmt.Instance, error) {
	settings, err := ParseSettings(s)
	if err == nil {
		var c *Client
		if c, err = NewClient(settings, nil); err == nil {
			return &Datasource{settings: settings, client: c}, nil
		}
	}
	// Still create the instance, so that the health check and every query can
	// say what is wrong with the settings.
	return &Datasource{settings: settings, settingsErr: err}, nil
}

// Dispose releases the instance's idle connections; Grafana calls it when
// the settings change or the data source is deleted.
func (d *Datasource) Dispose() {
	if d.client != nil {
		d.client.CloseIdleConnections()
	}
}

// QueryData answers each query of the request independently: one bad query
// does not fail the others.
func (d *Datasource) QueryData(ctx context.Context, req *backend.QueryDataRequest) (*backend.QueryDataResponse, error) {
	resp := backend.NewQueryDataResponse()
	for _, q := range req.Queries {
		if d.settingsErr != nil {
			resp.Responses[q.RefID] = backend.ErrDataResponseWithSource(backend.StatusBadRequest, backend.ErrorSourcePlugin,
				"invalid data source settings: "+d.settingsErr.Error())
			continue
		}
		resp.Responses[q.RefID] = d.query(ctx, q)
	}
	return resp, nil
}

func (d *Datasource) query(ctx context.Context, dq backend.DataQuery) backend.DataResponse {
	var q Query
	if err := json.Unmarshal(dq.JSON, &q); err != nil {
		return backend.ErrDataResponseWithSource(backend.StatusBadRequest, backend.ErrorSourcePlugin,
			fmt.Sprintf("invalid query JSON: %v", err))
	}
	if q.QueryType == "" {
		q.QueryType = QueryTypePromQL
	}
	ctx, cancel := context.WithTimeout(ctx, d.settings.Timeout)
	defer cancel()
	var r backend.DataResponse
	var err error
	switch q.QueryType {
	case QueryTypePromQL:
		r, err = d.queryPromQL(ctx, dq, q)
	case QueryTypeAnomaly:
		r, err = d.queryAnomaly(ctx, dq, q)
	case QueryTypeAlerts:
		r, err = d.queryAlerts(ctx, dq, q)
	default:
		err = badQuery(fmt.Errorf("unknown queryType %q: use promql, anomaly or alerts", q.QueryType))
	}
	if err != nil {
		return errorResponse(err)
	}
	return r
}

// badQuery marks errors in the query itself, found before asking Strata.
type badQueryError struct{ error }

func (e badQueryError) Unwrap() error { return e.error }

func badQuery(err error) error { return badQueryError{err} }

// errorResponse maps an error to a data response with a fitting status and source.
func errorResponse(err error) backend.DataResponse {
	var bq badQueryError
	switch {
	case errors.As(err, &bq):
		return backend.ErrDataResponseWithSource(backend.StatusBadRequest, backend.ErrorSourcePlugin, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return backend.ErrDataResponseWithSource(backend.StatusTimeout, backend.ErrorSourceDownstream, err.Error())
	case errors.Is(err, ErrUnauthorized):
		return backend.ErrDataResponseWithSource(backend.StatusUnauthorized, backend.ErrorSourceDownstream, err.Error())
	}
	status := backend.StatusBadGateway
	if code, ok := apiErrorStatus(err); ok {
		status = backend.Status(code)
	}
	return backend.ErrDataResponseWithSource(status, backend.ErrorSourceDownstream, err.Error())
}
