package strata

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
)

// timeNow is the clock of the health check's test query.
var timeNow = time.Now

// CheckHealth asks Strata for its build information with the data source's
// URL, tenant and credentials, and says plainly which of them is wrong.
func (d *Datasource) CheckHealth(ctx context.Context, _ *backend.CheckHealthRequest) (*backend.CheckHealthResult, error) {
	if d.settingsErr != nil {
		return healthError("Invalid settings: " + d.settingsErr.Error()), nil
	}
	ctx, cancel := context.WithTimeout(ctx, d.settings.Timeout)
	defer cancel()
	info, err := d.client.api.Buildinfo(ctx)
	if err != nil {
		return healthError(d.explain(err)), nil
	}
	if info.Version == "" {
		return healthError(fmt.Sprintf("%s answers the Prometheus API but reports no version: is it Strata?", d.settings.URL)), nil
	}
	// A query proves the tenant may read, not only reach, the API.
	if _, _, _, err := d.client.api.Query(ctx, "vector(1)", timeNow()); err != nil {
		return healthError("Strata " + info.Version + " is reachable but a test query failed: " + d.explain(err)), nil
	}
	msg := fmt.Sprintf("Strata %s is reachable at %s", info.Version, d.settings.URL)
	if info.Revision != "" {
		msg = fmt.Sprintf("Strata %s (revision %s) is reachable at %s", info.Version, info.Revision, d.settings.URL)
	}
	if d.settings.Tenant != "" {
		msg += fmt.Sprintf("; tenant %q", d.settings.Tenant)
	} else {
		msg += "; no tenant set (Strata's default tenant)"
	}
	return &backend.CheckHealthResult{Status: backend.HealthStatusOk, Message: msg}, nil
}

// explain turns a failed call into a message naming the setting to fix.
func (d *Datasource) explain(err error) string {
	var apiErr *promv1.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("Strata at %s did not answer within the timeout of %s", d.settings.URL, d.settings.Timeout)
	case errors.Is(err, ErrUnauthorized), errors.Is(err, ErrNotFound):
		return err.Error()
	case errors.As(err, &apiErr) && strings.Contains(apiErr.Msg, "tenant"):
		if d.settings.Tenant == "" {
			return "Strata requires a tenant: set Tenant (sent as X-Scope-OrgID) in the data source settings (Strata said: " + apiErr.Msg + ")"
		}
		return fmt.Sprintf("Strata rejected the tenant %q: %s", d.settings.Tenant, apiErr.Msg)
	case errors.As(err, &apiErr) && apiErr.Type == promv1.ErrBadResponse:
		return fmt.Sprintf("%s does not answer as Strata's Prometheus API (%s): check the URL", d.settings.URL, apiErr.Msg)
	}
	return err.Error()
}

func healthError(msg string) *backend.CheckHealthResult {
	return &backend.CheckHealthResult{Status: backend.HealthStatusError, Message: msg}
}
