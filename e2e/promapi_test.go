package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// apiClient calls the Prometheus HTTP API of a Strata or Prometheus server.
type apiClient struct {
	base   string // http://host:port
	tenant string // X-Scope-OrgID; none when empty
	hc     *http.Client
}

// newAPIClient returns a client of the API at base, as tenant (none when empty).
func newAPIClient(base, tenant string) *apiClient {
	return &apiClient{base: base, tenant: tenant, hc: &http.Client{Timeout: 30 * time.Second}}
}

// apiResponse is a raw answer of the API.
type apiResponse struct {
	code        int
	contentType string
	body        []byte
}

// get sends GET path?params and returns the status code and body.
func (c *apiClient) get(t *testing.T, path string, params url.Values) apiResponse {
	t.Helper()
	u := c.base + path
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return c.do(t, req)
}

// post sends params as a POST form to path and returns the status code and body.
func (c *apiClient) post(t *testing.T, path string, params url.Values) apiResponse {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.base+path, strings.NewReader(params.Encode()))
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(t, req)
}

func (c *apiClient) do(t *testing.T, req *http.Request) apiResponse {
	t.Helper()
	if c.tenant != "" {
		req.Header.Set("X-Scope-OrgID", c.tenant)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.Method, req.URL, err)
	}
	return apiResponse{code: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), body: b}
}

// query evaluates an instant query at ts (Unix milliseconds) with GET.
func (c *apiClient) query(t *testing.T, q string, ts int64) apiResponse {
	t.Helper()
	return c.get(t, "/api/v1/query", url.Values{"query": {q}, "time": {apiTime(ts)}})
}

// queryRange evaluates a range query over [start, end] (Unix milliseconds)
// with a POST form, the way Grafana sends it.
func (c *apiClient) queryRange(t *testing.T, q string, start, end int64, step time.Duration) apiResponse {
	t.Helper()
	return c.post(t, "/api/v1/query_range", url.Values{
		"query": {q},
		"start": {apiTime(start)},
		"end":   {apiTime(end)},
		"step":  {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)},
	})
}

// apiTime formats Unix milliseconds as the API's seconds with three decimals.
func apiTime(ms int64) string {
	return strconv.FormatFloat(float64(ms)/1000, 'f', 3, 64)
}

// envelope is the API's response envelope, with data left raw.
type envelope struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
	Infos     []string        `json:"infos"`
}

// decodeEnvelope decodes an API answer, failing t if it is not JSON.
func decodeEnvelope(t *testing.T, what string, r apiResponse) envelope {
	t.Helper()
	var e envelope
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("%s: answer (HTTP %d) is not the API's JSON: %v\n%s", what, r.code, err, r.body)
	}
	return e
}

// mustSucceed decodes an answer that must be a success and returns its data.
func mustSucceed(t *testing.T, what string, r apiResponse) json.RawMessage {
	t.Helper()
	e := decodeEnvelope(t, what, r)
	if r.code != http.StatusOK || e.Status != "success" {
		t.Fatalf("%s: HTTP %d, want 200 and status success:\n%s", what, r.code, r.body)
	}
	return e.Data
}

// promSample is one float sample of a vector or matrix answer.
type promSample struct {
	T int64 // Unix milliseconds
	V float64
}

// promSeries is one series of a vector or matrix answer.
type promSeries struct {
	Metric  map[string]string
	Samples []promSample
}

// decodeResult decodes the data of a query answer of type vector or matrix.
func decodeResult(t *testing.T, what string, data json.RawMessage) []promSeries {
	t.Helper()
	var d struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string   `json:"metric"`
			Value  []json.RawMessage   `json:"value"`
			Values [][]json.RawMessage `json:"values"`
		} `json:"result"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: decode result: %v\n%s", what, err, data)
	}
	var out []promSeries
	for _, r := range d.Result {
		s := promSeries{Metric: r.Metric}
		pairs := r.Values
		if d.ResultType == "vector" {
			pairs = [][]json.RawMessage{r.Value}
		}
		for _, p := range pairs {
			smp, err := decodePair(p)
			if err != nil {
				t.Fatalf("%s: decode sample %s: %v", what, p, err)
			}
			s.Samples = append(s.Samples, smp)
		}
		out = append(out, s)
	}
	return out
}

// decodePair decodes a [seconds, "value"] pair of the API.
func decodePair(p []json.RawMessage) (promSample, error) {
	if len(p) != 2 {
		return promSample{}, fmt.Errorf("want 2 elements, have %d", len(p))
	}
	var sec float64
	if err := json.Unmarshal(p[0], &sec); err != nil {
		return promSample{}, err
	}
	var vs string
	if err := json.Unmarshal(p[1], &vs); err != nil {
		return promSample{}, err
	}
	v, err := strconv.ParseFloat(vs, 64)
	if err != nil {
		return promSample{}, err
	}
	return promSample{T: int64(math.Round(sec * 1000)), V: v}, nil
}

// scalarValue runs an instant query whose answer is a one-element vector or
// a scalar and returns its value; ok is false for an empty vector.
func scalarValue(t *testing.T, c *apiClient, q string, ts int64) (v float64, ok bool) {
	t.Helper()
	data := mustSucceed(t, q, c.query(t, q, ts))
	var d struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if d.ResultType == "scalar" {
		var pair []json.RawMessage
		if err := json.Unmarshal(d.Result, &pair); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		s, err := decodePair(pair)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return s.V, true
	}
	res := decodeResult(t, q, data)
	switch len(res) {
	case 0:
		return 0, false
	case 1:
		return res[0].Samples[0].V, true
	}
	t.Fatalf("%s: want one series, have %d: %s", q, len(res), data)
	return 0, false
}

// diffBodies describes where two answers differ, showing some context.
func diffBodies(a, b []byte) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	from := max(i-200, 0)
	clip := func(x []byte) string {
		to := min(i+300, len(x))
		if from >= to {
			return ""
		}
		return string(x[from:to])
	}
	return fmt.Sprintf("first difference at byte %d (lengths %d and %d)\n  strata:     ...%s...\n  prometheus: ...%s...",
		i, len(a), len(b), clip(a), clip(b))
}
