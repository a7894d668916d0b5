package strata

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
)

// PluginID is the id of the plugin in plugin.json.
const PluginID = "strata-tsdb-datasource"

// Authentication types of the jsonData field authType.
const (
	AuthNone   = "none"
	AuthBasic  = "basic"
	AuthBearer = "bearer"
)

// DefaultTimeout bounds a request to Strata when the settings name none.
const DefaultTimeout = 30 * time.Second

// Settings are the data source settings: the instance URL, jsonData and
// secureJsonData of the plugin contract.
type Settings struct {
	// URL is Strata's base URL, e.g. http://strata:9201.
	URL *url.URL
	// Tenant is sent as X-Scope-OrgID; empty sends no header.
	Tenant string
	// AuthType is one of AuthNone, AuthBasic and AuthBearer.
	AuthType          string
	BasicAuthUser     string
	BasicAuthPassword string
	BearerToken       string
	// Timeout bounds each request to Strata.
	Timeout time.Duration
}

type jsonSettings struct {
	Tenant         string   `json:"tenant"`
	AuthType       string   `json:"authType"`
	BasicAuthUser  string   `json:"basicAuthUser"`
	TimeoutSeconds *float64 `json:"timeoutSeconds"`
}

// ParseSettings reads and validates the settings of a data source instance.
func ParseSettings(s backend.DataSourceInstanceSettings) (Settings, error) {
	var out Settings
	raw := strings.TrimSpace(s.URL)
	if raw == "" {
		return out, errors.New("the Strata URL is empty: set it to Strata's base URL, e.g. http://strata:9201")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return out, fmt.Errorf("the Strata URL %q is invalid: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return out, fmt.Errorf("the Strata URL %q must be an absolute http:// or https:// URL", raw)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	out.URL = u

	var js jsonSettings
	if len(s.JSONData) > 0 {
		if err := json.Unmarshal(s.JSONData, &js); err != nil {
			return out, fmt.Errorf("invalid data source jsonData: %w", err)
		}
	}
	out.Tenant = strings.TrimSpace(js.Tenant)
	out.AuthType = js.AuthType
	if out.AuthType == "" {
		out.AuthType = AuthNone
	}
	out.BasicAuthUser = js.BasicAuthUser
	out.BasicAuthPassword = s.DecryptedSecureJSONData["basicAuthPassword"]
	out.BearerToken = s.DecryptedSecureJSONData["bearerToken"]
	switch out.AuthType {
	case AuthNone:
	case AuthBasic:
		if out.BasicAuthUser == "" {
			return out, errors.New("basic authentication needs a user")
		}
	case AuthBearer:
		if out.BearerToken == "" {
			return out, errors.New("bearer authentication needs a token")
		}
	default:
		return out, fmt.Errorf("unknown authType %q: use none, basic or bearer", out.AuthType)
	}
	out.Timeout = DefaultTimeout
	if js.TimeoutSeconds != nil {
		if *js.TimeoutSeconds < 0 {
			return out, fmt.Errorf("timeoutSeconds %v is negative", *js.TimeoutSeconds)
		}
		if *js.TimeoutSeconds > 0 {
			out.Timeout = time.Duration(*js.TimeoutSeconds * float64(time.Second))
		}
	}
	return out, nil
}
