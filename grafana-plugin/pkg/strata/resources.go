package strata

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
)

// resourcePaths are the resource calls the query editor makes: Strata's
// metadata endpoints, for metric-name and label autocompletion.
var resourcePaths = []*regexp.Regexp{
	regexp.MustCompile(`^labels$`),
	regexp.MustCompile(`^label/[^/]+/values$`),
	regexp.MustCompile(`^series$`),
	regexp.MustCompile(`^metadata$`),
}

// CallResource forwards the editor's autocompletion calls (labels,
// label/<name>/values, series, metadata) to Strata's /api/v1 with the data
// source's tenant and credentials, and answers with Strata's JSON.
func (d *Datasource) CallResource(ctx context.Context, req *backend.CallResourceRequest, sender backend.CallResourceResponseSender) error {
	if d.settingsErr != nil {
		return sendJSONError(sender, http.StatusBadRequest, "bad_data", "invalid data source settings: "+d.settingsErr.Error())
	}
	path := strings.Trim(req.Path, "/")
	known := false
	for _, re := range resourcePaths {
		known = known || re.MatchString(path)
	}
	if !known {
		return sendJSONError(sender, http.StatusNotFound, "not_found",
			fmt.Sprintf("unknown resource %q: use labels, label/<name>/values, series or metadata", req.Path))
	}
	if req.Method != http.MethodGet && req.Method != http.MethodPost {
		return sendJSONError(sender, http.StatusMethodNotAllowed, "bad_data", "method "+req.Method+" not allowed")
	}
	ctx, cancel := context.WithTimeout(ctx, d.settings.Timeout)
	defer cancel()

	query := ""
	if u, err := url.Parse(req.URL); err == nil {
		query = u.RawQuery
	}
	target := d.client.raw.URL("/api/v1/"+path, nil)
	target.RawQuery = query
	var body io.Reader
	if req.Method == http.MethodPost {
		body = strings.NewReader(string(req.Body))
	}
	hreq, err := http.NewRequestWithContext(ctx, req.Method, target.String(), body)
	if err != nil {
		return sendJSONError(sender, http.StatusBadRequest, "bad_data", err.Error())
	}
	if req.Method == http.MethodPost {
		hreq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, respBody, err := d.client.raw.Do(ctx, hreq)
	if err != nil {
		code := http.StatusBadGateway
		if resp != nil {
			code = resp.StatusCode
		}
		return sendJSONError(sender, code, "unavailable", d.explain(err))
	}
	return sender.Send(&backend.CallResourceResponse{
		Status:  resp.StatusCode,
		Headers: map[string][]string{"Content-Type": {"application/json"}},
		Body:    respBody,
	})
}

func sendJSONError(sender backend.CallResourceResponseSender, code int, typ, msg string) error {
	body, err := json.Marshal(map[string]string{"status": "error", "errorType": typ, "error": msg})
	if err != nil {
		return fmt.Errorf("encoding a resource error: %w", err)
	}
	return sender.Send(&backend.CallResourceResponse{
		Status:  code,
		Headers: map[string][]string{"Content-Type": {"application/json"}},
		Body:    body,
	})
}
