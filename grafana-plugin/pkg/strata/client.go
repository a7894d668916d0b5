package strata

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
)

// TenantHeader carries the tenant of a request to Strata.
const TenantHeader = "X-Scope-OrgID"

// Client talks to one Strata over its Prometheus HTTP API with the
// settings' tenant and credentials.
type Client struct {
	settings  Settings
	transport http.RoundTripper
	// raw sends requests and reads whole answers; its errors name
	// authentication and wrong-URL failures plainly.
	raw api.Client
	// api is client_golang's Prometheus API over raw.
	api promv1.API
}

// NewClient returns a client of the Strata the settings name.
func NewClient(s Settings, transport http.RoundTripper) (*Client, error) {
	if transport == nil {
		transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	inner, err := api.NewClient(api.Config{
		Address:      s.URL.String(),
		RoundTripper: &headerTransport{next: transport, settings: s},
	})
	if err != nil {
		return nil, fmt.Errorf("creating the Strata client: %w", err)
	}
	raw := &plainErrors{Client: inner, base: s.URL.String()}
	return &Client{settings: s, transport: transport, raw: raw, api: promv1.NewAPI(raw)}, nil
}

// CloseIdleConnections closes the client's idle connections to Strata.
func (c *Client) CloseIdleConnections() {
	if t, ok := c.transport.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
}

// headerTransport adds the tenant and the credentials to every request.
type headerTransport struct {
	next     http.RoundTripper
	settings Settings
}

func (t *headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if t.settings.Tenant != "" {
		r.Header.Set(TenantHeader, t.settings.Tenant)
	}
	switch t.settings.AuthType {
	case AuthBasic:
		r.SetBasicAuth(t.settings.BasicAuthUser, t.settings.BasicAuthPassword)
	case AuthBearer:
		r.Header.Set("Authorization", "Bearer "+t.settings.BearerToken)
	}
	return t.next.RoundTrip(r)
}

// ErrUnauthorized is the cause of errors for answers 401 and 403 that refuse
// the credentials: Strata's own authentication, or a proxy in front of it.
var ErrUnauthorized = errors.New("authentication failed")

// ErrNotFound is the cause of errors for answers 404 that do not come from a
// Prometheus API: the URL is not Strata's base URL.
var ErrNotFound = errors.New("no Prometheus API found")

// plainErrors turns answers that are not Prometheus API JSON into errors that
// say what is wrong, rather than client_golang's "client error: 401".
type plainErrors struct {
	api.Client
	base string
}

func (c *plainErrors) Do(ctx context.Context, req *http.Request) (*http.Response, []byte, error) {
	resp, body, err := c.Client.Do(ctx, req)
	if err != nil {
		return resp, body, fmt.Errorf("cannot reach Strata at %s: %w", c.base, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, body, nil
	}
	if e, ok := apiError(body); ok {
		if resp.StatusCode == http.StatusUnauthorized && !strings.Contains(e.Msg, "X-Scope-OrgID") {
			// Strata's own authentication (-tenant.auth-file) refused the
			// credentials; a missing tenant names the header instead.
			return resp, body, fmt.Errorf("%w at %s (HTTP 401: %s): check the basic auth user and password or the bearer token",
				ErrUnauthorized, c.base, e.Msg)
		}
		switch resp.StatusCode {
		case http.StatusBadRequest, http.StatusUnprocessableEntity, http.StatusServiceUnavailable:
			// client_golang decodes these itself.
			return resp, body, nil
		}
		// client_golang reports other codes as "client error: 401" and drops
		// the API's message (Strata answers 401 to a missing tenant).
		return resp, body, e
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		return resp, body, fmt.Errorf("%w at %s (HTTP %d): check the basic auth user and password or the bearer token",
			ErrUnauthorized, c.base, resp.StatusCode)
	case http.StatusNotFound:
		return resp, body, fmt.Errorf("%w at %s (HTTP 404 for %s): the URL must be Strata's base URL, e.g. http://strata:9201",
			ErrNotFound, c.base, req.URL.Path)
	}
	return resp, body, nil
}

// apiError decodes body as a Prometheus API error answer.
func apiError(body []byte) (*promv1.Error, bool) {
	var env apiResponse
	if json.Unmarshal(body, &env) != nil || env.Status != "error" {
		return nil, false
	}
	return &promv1.Error{Type: promv1.ErrorType(env.ErrorType), Msg: env.Error}, true
}

// apiResponse is the envelope of every Prometheus API answer.
type apiResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
	Infos     []string        `json:"infos"`
}

// call sends form to path under the base URL (as a query string, or as the
// body of a POST) and decodes the data of a successful answer into into. It
// returns the answer's envelope (for its warnings) and, for an error answer,
// the API's error.
func (c *Client) call(ctx context.Context, method, path string, form url.Values, into any) (apiResponse, error) {
	u := c.raw.URL(path, nil)
	var req *http.Request
	var err error
	if method == http.MethodPost {
		req, err = http.NewRequestWithContext(ctx, method, u.String(), strings.NewReader(form.Encode()))
		if req != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	} else {
		u.RawQuery = form.Encode()
		req, err = http.NewRequestWithContext(ctx, method, u.String(), nil)
	}
	if err != nil {
		return apiResponse{}, fmt.Errorf("building the request to %s: %w", path, err)
	}
	resp, body, err := c.raw.Do(ctx, req)
	if err != nil {
		return apiResponse{}, err
	}
	var env apiResponse
	if err := json.Unmarshal(body, &env); err != nil {
		return env, fmt.Errorf("%s answered HTTP %d with a body that is not Prometheus API JSON: %.200q", path, resp.StatusCode, body)
	}
	if env.Status != "success" {
		return env, &promv1.Error{Type: promv1.ErrorType(env.ErrorType), Msg: env.Error}
	}
	if into != nil {
		if err := json.Unmarshal(env.Data, into); err != nil {
			return env, fmt.Errorf("decoding the answer of %s: %w", path, err)
		}
	}
	return env, nil
}

// apiErrorStatus maps a Prometheus API error to the HTTP status Prometheus
// answers it with.
func apiErrorStatus(err error) (int, bool) {
	var e *promv1.Error
	if !errors.As(err, &e) {
		return 0, false
	}
	switch e.Type {
	case promv1.ErrBadData:
		return http.StatusBadRequest, true
	case promv1.ErrExec:
		return http.StatusUnprocessableEntity, true
	case promv1.ErrTimeout, promv1.ErrCanceled:
		return http.StatusServiceUnavailable, true
	case "not_found":
		return http.StatusNotFound, true
	case "unavailable":
		return http.StatusServiceUnavailable, true
	}
	return http.StatusInternalServerError, true
}
