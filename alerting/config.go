package alerting

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/prometheus/common/model"

	"github.com/strata-tsdb/strata/alerting/notify"
	"github.com/strata-tsdb/strata/tenant"

	"github.com/strata-tsdb/strata/internal/flagext"
)

// RulesConfig says where each tenant's rule files are and how they are evaluated.
//
// A tenant's rule files come from any of:
//   - files: globs whose files belong to the default tenant (-tenant.default);
//   - tenant_files: a map from tenant to globs (YAML only);
//   - tenants_dir: a directory with one subdirectory per tenant, named by
//     the tenant's ID; every *.yml and *.yaml file in it is that tenant's.
//
// The globs are expanded again at every reload (SIGHUP, POST /-/reload).
type RulesConfig struct {
	Files              notify.StringList            `yaml:"files"`
	TenantFiles        map[string]notify.StringList `yaml:"tenant_files" help:"Globs of the rule files of the tenant named by the key."`
	TenantsDir         string                       `yaml:"tenants_dir"`
	EvaluationInterval model.Duration               `yaml:"evaluation_interval"`
	ResendDelay        model.Duration               `yaml:"resend_delay"`
	OutageTolerance    model.Duration               `yaml:"outage_tolerance"`
	ForGracePeriod     model.Duration               `yaml:"for_grace_period"`
	ExternalURL        string                       `yaml:"external_url"`
}

// RegisterFlags registers the rules flags, setting their defaults.
func (c *RulesConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.Var(&c.Files, "rules.files", "Comma-separated globs of rule files (Prometheus format, plus anomaly rules) of the default tenant.")
	fs.StringVar(&c.TenantsDir, "rules.tenants-dir", "", "Directory with one subdirectory of rule files (*.yml, *.yaml) per tenant, named by the tenant ID.")
	flagext.DurationVar(fs, &c.EvaluationInterval, "rules.evaluation-interval", time.Minute, "Evaluation interval of rule groups that set none.")
	flagext.DurationVar(fs, &c.ResendDelay, "rules.resend-delay", time.Minute, "How often firing alerts are sent to Alertmanager again (as Prometheus's --rules.alert.resend-delay).")
	flagext.DurationVar(fs, &c.OutageTolerance, "rules.outage-tolerance", time.Hour, "Longest outage after which the 'for' state of alerts is still restored from ALERTS_FOR_STATE.")
	flagext.DurationVar(fs, &c.ForGracePeriod, "rules.for-grace-period", 10*time.Minute, "Least time left of an alert's 'for' after a restart.")
	fs.StringVar(&c.ExternalURL, "rules.external-url", "", "URL under which users reach Strata (or the Grafana in front of it): alerts' generator URLs and $externalURL in templates.")
}

// Validate reports the first setting that cannot work.
func (c *RulesConfig) Validate() error {
	if c.EvaluationInterval <= 0 || c.ResendDelay <= 0 {
		return errors.New("rules.evaluation-interval and rules.resend-delay must be positive")
	}
	for id := range c.TenantFiles {
		if err := tenant.ValidateID(id); err != nil {
			return fmt.Errorf("rules.tenant_files: %w", err)
		}
	}
	if c.ExternalURL != "" {
		if _, err := url.Parse(c.ExternalURL); err != nil {
			return fmt.Errorf("rules.external-url: %w", err)
		}
	}
	return nil
}

// Enabled reports whether any rule files are configured.
func (c *RulesConfig) Enabled() bool {
	return len(c.Files) > 0 || len(c.TenantFiles) > 0 || c.TenantsDir != ""
}

// resolve expands the configuration into the rule files of each tenant.
func (c *RulesConfig) resolve(defaultTenant string) (map[string][]string, error) {
	out := map[string][]string{}
	add := func(id string, globs []string) error {
		for _, g := range globs {
			matches, err := filepath.Glob(g)
			if err != nil {
				return fmt.Errorf("rule file glob %q: %w", g, err)
			}
			out[id] = append(out[id], matches...)
		}
		return nil
	}
	if len(c.Files) > 0 {
		if defaultTenant == "" {
			return nil, errors.New("rules.files needs a default tenant (-tenant.default); use rules.tenant_files or rules.tenants-dir")
		}
		if err := add(defaultTenant, c.Files); err != nil {
			return nil, err
		}
	}
	for id, globs := range c.TenantFiles {
		if err := add(id, globs); err != nil {
			return nil, err
		}
	}
	if c.TenantsDir != "" {
		entries, err := os.ReadDir(c.TenantsDir)
		if err != nil {
			return nil, fmt.Errorf("rules.tenants-dir: %w", err)
		}
		for _, e := range entries {
			if !e.IsDir() || tenant.ValidateID(e.Name()) != nil {
				continue
			}
			dir := filepath.Join(c.TenantsDir, e.Name())
			if err := add(e.Name(), []string{filepath.Join(dir, "*.yml"), filepath.Join(dir, "*.yaml")}); err != nil {
				return nil, err
			}
		}
	}
	for id, fs := range out {
		sort.Strings(fs)
		uniq := fs[:0]
		for i, f := range fs {
			if i == 0 || f != fs[i-1] {
				uniq = append(uniq, f)
			}
		}
		if len(uniq) == 0 {
			delete(out, id)
			continue
		}
		out[id] = uniq
	}
	return out, nil
}
