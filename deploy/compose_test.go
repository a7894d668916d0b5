package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"

	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"

	"github.com/strata-tsdb/strata/server"
)

// The contract between the stack and the Grafana plugin (grafana-plugin/).
const (
	pluginID         = "strata-tsdb-datasource"
	pluginExecutable = "gpx_strata"
)

// mustRead returns a file's contents, failing t when it cannot be read.
func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return b
}

// strataConfig loads the Strata configuration the stack mounts.
func (s *stack) strataConfig(t *testing.T) (*server.Config, string) {
	t.Helper()
	cmd := s.service(t, "strata").Command
	file, ok := flagValue(cmd, "-config.file")
	if !ok {
		t.Fatalf("the strata service's command %v names no -config.file", cmd)
	}
	host := s.hostPath(t, "strata", file)
	c, err := server.LoadConfig([]string{"-config.file", host}, io.Discard)
	if err != nil {
		t.Fatalf("Strata's configuration %s: %v", host, err)
	}
	return c, host
}

// mcBucket returns the bucket minio-init creates and the alias URL it uses.
func (s *stack) mcBucket(t *testing.T) (bucket, endpoint string) {
	t.Helper()
	cmd := strings.Join(s.service(t, "minio-init").Command, " ")
	m := regexp.MustCompile(`mc alias set (\S+) (\S+) "\$\{MINIO_ROOT_USER\}" "\$\{MINIO_ROOT_PASSWORD\}"`).FindStringSubmatch(cmd)
	if m == nil {
		t.Fatalf("minio-init does not set an mc alias with MinIO's root credentials: %q", cmd)
	}
	b := regexp.MustCompile(`mc mb --ignore-existing ` + regexp.QuoteMeta(m[1]) + `/(\S+)`).FindStringSubmatch(cmd)
	if b == nil {
		t.Fatalf("minio-init creates no bucket with alias %s: %q", m[1], cmd)
	}
	return b[1], m[2]
}

// ruleFiles returns the repository paths of the rule files Strata loads.
func (s *stack) ruleFiles(t *testing.T, c *server.Config) []string {
	t.Helper()
	var out []string
	for _, glob := range c.Rules.Files {
		matches, err := filepath.Glob(s.hostPath(t, "strata", glob))
		if err != nil || len(matches) == 0 {
			t.Fatalf("rules.files %s matches no mounted file (%v)", glob, err)
		}
		out = append(out, matches...)
	}
	return out
}

// ruleFile is a rule file with Strata's anomaly entries.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert    string            `yaml:"alert"`
			Record   string            `yaml:"record"`
			Anomaly  string            `yaml:"anomaly"`
			Expr     string            `yaml:"expr"`
			Detector string            `yaml:"detector"`
			Params   map[string]string `yaml:"params"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// grafanaDataSources is Grafana's data source provisioning file.
type grafanaDataSources struct {
	APIVersion  int                 `yaml:"apiVersion"`
	DataSources []grafanaDataSource `yaml:"datasources"`
}

// grafanaDataSource is one provisioned data source.
type grafanaDataSource struct {
	Name     string         `yaml:"name"`
	UID      string         `yaml:"uid"`
	Type     string         `yaml:"type"`
	Access   string         `yaml:"access"`
	URL      string         `yaml:"url"`
	JSONData map[string]any `yaml:"jsonData"`
}

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	UID         string  `json:"uid"`
	Panels      []panel `json:"panels"`
	Annotations struct {
		List []struct {
			Name       string          `json:"name"`
			DataSource dsRef           `json:"datasource"`
			Target     json.RawMessage `json:"target"`
		} `json:"list"`
	} `json:"annotations"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			DataSource dsRef  `json:"datasource"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	Title      string            `json:"title"`
	Type       string            `json:"type"`
	DataSource dsRef             `json:"datasource"`
	Targets    []json.RawMessage `json:"targets"`
}

type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// target is a panel or annotation query: the union of Grafana's Prometheus
// query and the Strata plugin's query model (the contract).
type target struct {
	RefID        string         `json:"refId"`
	DataSource   dsRef          `json:"datasource"`
	QueryType    string         `json:"queryType"`
	Expr         string         `json:"expr"`
	LegendFormat string         `json:"legendFormat"`
	Instant      *bool          `json:"instant"`
	Range        *bool          `json:"range"`
	Interval     string         `json:"interval"`
	Detector     string         `json:"detector"`
	Params       map[string]any `json:"params"`
	AlertName    string         `json:"alertName"`
	Matchers     string         `json:"matchers"`
	States       []string       `json:"states"`
}

// strataTargetKeys are the keys of a Strata plugin query, by query type.
var strataTargetKeys = map[string][]string{
	"promql":  {"expr", "legendFormat", "instant", "range", "interval"},
	"anomaly": {"expr", "detector", "params", "legendFormat"},
	"alerts":  {"alertName", "matchers", "states"},
}

// grafanaVars replaces the Grafana variables the dashboard uses with
// values, so that its expressions parse and run as PromQL.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "$__interval", "15s", "$__range", "1h", `"$instance"`, `".*"`)

// loadDashboards returns the dashboards Grafana provisions, by file.
func (s *stack) loadDashboards(t *testing.T) map[string]dashboard {
	t.Helper()
	var prov struct {
		Providers []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	dir := s.hostPath(t, "grafana", "/etc/grafana/provisioning/dashboards")
	files, _ := filepath.Glob(filepath.Join(dir, "*.yml"))
	if len(files) == 0 {
		t.Fatalf("no dashboard provider in %s", dir)
	}
	out := map[string]dashboard{}
	for _, f := range files {
		if err := yaml.Unmarshal(mustRead(t, f), &prov); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, p := range prov.Providers {
			if p.Type != "file" {
				t.Errorf("%s: provider type %q, want file", f, p.Type)
				continue
			}
			jsons, _ := filepath.Glob(filepath.Join(s.hostPath(t, "grafana", p.Options.Path), "*.json"))
			if len(jsons) == 0 {
				t.Errorf("%s: the provider's path %s holds no dashboard", f, p.Options.Path)
			}
			for _, j := range jsons {
				var d dashboard
				if err := json.Unmarshal(mustRead(t, j), &d); err != nil {
					t.Fatalf("dashboard %s: %v", j, err)
				}
				out[j] = d
			}
		}
	}
	return out
}

// TestComposeConsistency checks docker-compose.yml, the Dockerfile and every
// file the stack mounts against each other (see the package comment).
func TestComposeConsistency(t *testing.T) {
	s := loadStack(t)
	strataCfg, strataCfgPath := s.strataConfig(t)
	strataPort := mustPort(t, strataCfg.HTTP.ListenAddress)

	t.Run("services and volumes", func(t *testing.T) {
		for _, name := range []string{"minio", "minio-init", "strata", "prometheus", "node-exporter", "alertmanager", "webhook", "grafana"} {
			s.service(t, name)
		}
		// Every stateful service keeps its data in a named volume, so that
		// `docker compose down` and `up` lose nothing.
		for svc, path := range map[string]string{
			"minio":        "/data",
			"strata":       strataCfg.Storage.Path,
			"prometheus":   mustFlag(t, s.service(t, "prometheus").Command, "--storage.tsdb.path"),
			"alertmanager": mustFlag(t, s.service(t, "alertmanager").Command, "--storage.path"),
			"grafana":      "/var/lib/grafana",
		} {
			v := s.volumeAt(t, svc, path)
			if v == "" {
				t.Errorf("service %s keeps %s in no named volume", svc, path)
				continue
			}
			if _, ok := s.project.Volumes[v]; !ok {
				t.Errorf("service %s mounts volume %s, which is not declared", svc, v)
			}
		}
		// Every bind mount is a file of the repository (the host's root
		// for node exporter aside).
		for name, svc := range s.project.Services {
			for _, v := range svc.Volumes {
				if v.Type != types.VolumeTypeBind || (name == "node-exporter" && v.Source == "/") {
					continue
				}
				if _, ok := under(v.Source, s.root); !ok {
					t.Errorf("service %s mounts %s from outside the repository", name, v.Source)
				} else if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("service %s mounts %s, which does not exist: %v", name, v.Source, err)
				}
				if !v.ReadOnly {
					t.Errorf("service %s mounts %s writable; configuration is mounted read-only", name, v.Source)
				}
			}
		}
		// Start order: the bucket exists before Strata starts.
		if dep, ok := s.service(t, "strata").DependsOn["minio-init"]; !ok || dep.Condition != types.ServiceConditionCompletedSuccessfully {
			t.Errorf("strata must wait for minio-init to complete (depends_on condition %q)", dep.Condition)
		}
	})

	t.Run("strata", func(t *testing.T) {
		if !slices.Contains(s.ports(t, "strata"), strataPort) {
			t.Errorf("strata listens on %s, and the service declares ports %v", strataPort, s.ports(t, "strata"))
		}
		b := strataCfg.Bucket
		if b.Backend != "s3" || !b.S3.Insecure || !b.S3.PathStyle {
			t.Errorf("bucket: backend %q insecure %v path_style %v, want s3 over http, path style (MinIO)", b.Backend, b.S3.Insecure, b.S3.PathStyle)
		}
		s.checkServiceAddr(t, "bucket.s3.endpoint", b.S3.Endpoint)
		if !strings.HasPrefix(b.S3.Endpoint, "minio:") {
			t.Errorf("bucket.s3.endpoint %s is not the minio service", b.S3.Endpoint)
		}
		bucket, alias := s.mcBucket(t)
		if bucket != b.S3.Bucket {
			t.Errorf("minio-init creates bucket %q, Strata uses %q", bucket, b.S3.Bucket)
		}
		if u := s.checkServiceURL(t, "minio-init's mc alias", alias); u.Host != b.S3.Endpoint {
			t.Errorf("minio-init talks to %s, Strata to %s", u.Host, b.S3.Endpoint)
		}
		// Credentials: Strata's (AWS credential chain), mc's and MinIO's agree.
		if b.S3.AccessKey != "" {
			t.Errorf("the configuration file holds an S3 access key; the stack passes credentials by environment")
		}
		user, pass := s.env(t, "minio", "MINIO_ROOT_USER"), s.env(t, "minio", "MINIO_ROOT_PASSWORD")
		if user == "" || pass == "" {
			t.Fatalf("MinIO's root credentials are empty")
		}
		for _, c := range []struct{ svc, key, want string }{
			{"strata", "AWS_ACCESS_KEY_ID", user},
			{"strata", "AWS_SECRET_ACCESS_KEY", pass},
			{"minio-init", "MINIO_ROOT_USER", user},
			{"minio-init", "MINIO_ROOT_PASSWORD", pass},
		} {
			if got := s.env(t, c.svc, c.key); got != c.want {
				t.Errorf("service %s: %s is %q, want MinIO's %q", c.svc, c.key, got, c.want)
			}
		}
		if v := s.volumeAt(t, "strata", strataCfg.Storage.Path); v == "" {
			t.Errorf("storage.path %s is not a named volume of the strata service", strataCfg.Storage.Path)
		}
		for _, u := range strataCfg.Alertmanager.URL {
			if got := s.checkServiceURL(t, "alertmanager.url", u); got.Host != "" && !strings.HasPrefix(got.Host, "alertmanager:") {
				t.Errorf("alertmanager.url %s is not the alertmanager service", u)
			}
		}
		if len(strataCfg.Alertmanager.URL) == 0 {
			t.Errorf("Strata sends alerts to no Alertmanager")
		}
		amPort := mustPort(t, mustFlag(t, s.service(t, "alertmanager").Command, "--web.listen-address"))
		if !slices.Contains(s.ports(t, "alertmanager"), amPort) {
			t.Errorf("Alertmanager listens on %s, and the service declares %v", amPort, s.ports(t, "alertmanager"))
		}
		for _, w := range strataCfg.Notifications.Webhooks {
			s.checkServiceURL(t, "notifications.webhooks "+w.Name, w.URL)
		}
	})

	t.Run("strata -config.check", func(t *testing.T) {
		requireStrata(t)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, strataBin, "-config.check", "-config.file", strataCfgPath).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "configuration is valid") {
			t.Errorf("strata -config.check -config.file %s: %v\n%s", strataCfgPath, err, out)
		}
	})

	t.Run("rule files", func(t *testing.T) {
		p := parser.NewParser(parser.Options{})
		anomalies := 0
		for _, f := range s.ruleFiles(t, strataCfg) {
			var rf ruleFile
			if err := yaml.Unmarshal(mustRead(t, f), &rf); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			for _, g := range rf.Groups {
				for _, r := range g.Rules {
					if _, err := p.ParseExpr(r.Expr); err != nil {
						t.Errorf("%s, group %s: expression %q: %v", f, g.Name, r.Expr, err)
					}
					if r.Anomaly != "" {
						anomalies++
						if !slices.Contains([]string{"adaptive", "seasonal", "iforest", "static"}, r.Detector) {
							t.Errorf("%s: anomaly rule %s has detector %q", f, r.Anomaly, r.Detector)
						}
					}
				}
			}
		}
		if anomalies == 0 {
			t.Errorf("the stack's rule files hold no anomaly rule")
		}
	})

	t.Run("prometheus", func(t *testing.T) {
		cmd := s.service(t, "prometheus").Command
		path := s.hostPath(t, "prometheus", mustFlag(t, cmd, "--config.file"))
		pc, err := promconfig.LoadFile(path, false, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("Prometheus rejects %s: %v", path, err)
		}
		// The image is the Prometheus release whose module Strata builds on
		// (and scripts/deps.sh builds for the tests): v0.3XX.Y is v3.XX.Y.
		if want := prometheusRelease(t); s.service(t, "prometheus").Image != "prom/prometheus:"+want {
			t.Errorf("the prometheus service runs %s, want prom/prometheus:%s, the release of Strata's Prometheus module", s.service(t, "prometheus").Image, want)
		}
		if !slices.Contains(cmd, "--enable-feature=metadata-wal-records") {
			t.Errorf("Prometheus runs without --enable-feature=metadata-wal-records: remote write 2.0 would carry no metadata")
		}
		promPort := mustPort(t, mustFlag(t, cmd, "--web.listen-address"))
		if !slices.Contains(s.ports(t, "prometheus"), promPort) {
			t.Errorf("Prometheus listens on %s, the service declares %v", promPort, s.ports(t, "prometheus"))
		}
		if len(pc.RemoteWriteConfigs) != 1 || len(pc.RemoteReadConfigs) != 1 {
			t.Fatalf("want one remote_write and one remote_read, got %d and %d", len(pc.RemoteWriteConfigs), len(pc.RemoteReadConfigs))
		}
		rw := pc.RemoteWriteConfigs[0]
		if u := s.checkServiceURL(t, "remote_write", rw.URL.String()); u.Host != "strata:"+strataPort || u.Path != "/api/v1/write" {
			t.Errorf("remote_write goes to %s, want http://strata:%s/api/v1/write", rw.URL, strataPort)
		}
		if string(rw.ProtobufMessage) != "io.prometheus.write.v2.Request" || !rw.SendNativeHistograms {
			t.Errorf("remote_write sends %q (native histograms %v), want remote write 2.0 with native histograms", rw.ProtobufMessage, rw.SendNativeHistograms)
		}
		rr := pc.RemoteReadConfigs[0]
		if u := s.checkServiceURL(t, "remote_read", rr.URL.String()); u.Host != "strata:"+strataPort || u.Path != "/api/v1/read" {
			t.Errorf("remote_read reads %s, want http://strata:%s/api/v1/read", rr.URL, strataPort)
		}
		jobs := map[string]bool{}
		for _, sc := range pc.ScrapeConfigs {
			for _, d := range sc.ServiceDiscoveryConfigs {
				static, ok := d.(discovery.StaticConfig)
				if !ok {
					t.Errorf("job %s uses service discovery %T; the stack uses static targets", sc.JobName, d)
					continue
				}
				for _, g := range static {
					for _, tg := range g.Targets {
						addr := string(tg["__address__"])
						jobs[sc.JobName] = true
						if addr == "localhost:"+promPort {
							continue // Prometheus itself
						}
						s.checkServiceAddr(t, "scrape job "+sc.JobName, addr)
					}
				}
			}
		}
		for _, j := range []string{"prometheus", "node", "strata"} {
			if !jobs[j] {
				t.Errorf("Prometheus has no scrape job %q", j)
			}
		}
	})

	t.Run("alertmanager", func(t *testing.T) {
		cmd := s.service(t, "alertmanager").Command
		path := s.hostPath(t, "alertmanager", mustFlag(t, cmd, "--config.file"))
		var am struct {
			Route struct {
				Receiver string `yaml:"receiver"`
			} `yaml:"route"`
			Receivers []struct {
				Name     string `yaml:"name"`
				Webhooks []struct {
					URL string `yaml:"url"`
				} `yaml:"webhook_configs"`
			} `yaml:"receivers"`
		}
		if err := yaml.Unmarshal(mustRead(t, path), &am); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		found := false
		for _, r := range am.Receivers {
			for _, w := range r.Webhooks {
				s.checkServiceURL(t, "Alertmanager receiver "+r.Name, w.URL)
				found = found || r.Name == am.Route.Receiver
			}
		}
		if !found {
			t.Errorf("Alertmanager's route does not lead to a webhook receiver")
		}
		if testing.Short() {
			return
		}
		// Alertmanager's own check of the file.
		amtool, err := exec.LookPath("amtool")
		if err != nil {
			t.Fatalf("amtool (Debian package prometheus-alertmanager) is needed to check %s: %v; run `make deps`", path, err)
		}
		if out, err := exec.Command(amtool, "check-config", path).CombinedOutput(); err != nil {
			t.Errorf("amtool check-config %s: %v\n%s", path, err, out)
		}
	})

	t.Run("grafana", func(t *testing.T) {
		g := s.service(t, "grafana")
		if allowed := strings.Split(s.env(t, "grafana", "GF_PLUGINS_ALLOW_LOADING_UNSIGNED_PLUGINS"), ","); !slices.Contains(allowed, pluginID) {
			t.Errorf("Grafana does not allow the unsigned plugin %s (allows %v)", pluginID, allowed)
		}
		if g.Build == nil || g.Build.Target != "grafana" {
			t.Errorf("the grafana service is not built from the Dockerfile's grafana stage")
		}
		home := s.env(t, "grafana", "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
		if _, err := os.Stat(s.hostPath(t, "grafana", home)); err != nil {
			t.Errorf("the home dashboard %s is not mounted: %v", home, err)
		}
		var ds grafanaDataSources
		dir := s.hostPath(t, "grafana", "/etc/grafana/provisioning/datasources")
		files, _ := filepath.Glob(filepath.Join(dir, "*.yml"))
		for _, f := range files {
			var one grafanaDataSources
			if err := yaml.Unmarshal(mustRead(t, f), &one); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			ds.DataSources = append(ds.DataSources, one.DataSources...)
		}
		byUID := map[string]string{}
		for _, d := range ds.DataSources {
			byUID[d.UID] = d.Type
			u := s.checkServiceURL(t, "data source "+d.Name, d.URL)
			switch d.Type {
			case "prometheus", pluginID:
				if u.Host != "strata:"+strataPort || (u.Path != "" && u.Path != "/") {
					t.Errorf("data source %s points at %s, want Strata's base URL http://strata:%s", d.Name, d.URL, strataPort)
				}
			}
			if d.Type == pluginID {
				checkPluginSettings(t, d.Name, d.JSONData)
			}
		}
		for _, typ := range []string{"prometheus", pluginID} {
			if !slices.Contains(mapValues(byUID), typ) {
				t.Errorf("no data source of type %s is provisioned", typ)
			}
		}
		dashboards := s.loadDashboards(t)
		if len(dashboards) == 0 {
			t.Fatal("no dashboard is provisioned")
		}
		for file, d := range dashboards {
			checkDashboard(t, file, d, byUID, s.anomalyRuleNames(t, strataCfg))
		}
	})

	t.Run("dockerfile", func(t *testing.T) {
		stages, err := parseDockerfile(filepath.Join(s.root, "Dockerfile"))
		if err != nil {
			t.Fatalf("Dockerfile: %v", err)
		}
		for _, svc := range []string{"strata", "grafana"} {
			b := s.service(t, svc).Build
			if b == nil {
				t.Errorf("service %s is not built", svc)
				continue
			}
			if _, ok := stageNamed(stages, b.Target); !ok {
				t.Errorf("service %s builds target %q, which the Dockerfile does not have", svc, b.Target)
			}
		}
		names := map[string]bool{}
		for _, st := range stages {
			for _, cp := range st.all("COPY") {
				if from := regexp.MustCompile(`--from=(\S+)`).FindStringSubmatch(cp); from != nil && !names[from[1]] {
					t.Errorf("stage %s copies from %q, which is not an earlier stage", st.name, from[1])
				}
			}
			names[st.name] = true
		}
		final := stages[len(stages)-1]
		if final.name != "strata" {
			t.Errorf("the last (default) stage is %q, want strata", final.name)
		}
		if !strings.Contains(final.base, "distroless") && final.base != "scratch" {
			t.Errorf("the strata image is based on %s, want distroless or scratch", final.base)
		}
		if u := final.all("USER"); len(u) == 0 || u[len(u)-1] == "root" || strings.HasPrefix(u[len(u)-1], "0") {
			t.Errorf("the strata image runs as %v, want a non-root user", u)
		}
		if v := strings.Join(final.all("VOLUME"), " "); !strings.Contains(v, `"`+strataCfg.Storage.Path+`"`) {
			t.Errorf("the strata image's volumes %s do not include storage.path %s", v, strataCfg.Storage.Path)
		}
		if e := final.all("EXPOSE"); !slices.Contains(e, strataPort) {
			t.Errorf("the strata image exposes %v, not Strata's port %s", e, strataPort)
		}
		hc := strings.Join(final.all("HEALTHCHECK"), " ")
		if !strings.Contains(hc, `"/usr/bin/strata", "tools", "healthcheck"`) || !strings.Contains(hc, ":"+strataPort+"/-/ready") {
			t.Errorf("the strata image's HEALTHCHECK %q does not run strata tools healthcheck against port %s", hc, strataPort)
		}
		gs, _ := stageNamed(stages, "grafana")
		plugins := s.env(t, "grafana", "GF_PATHS_PLUGINS")
		if env := strings.Join(gs.all("ENV"), " "); !strings.Contains(env, "GF_PATHS_PLUGINS="+plugins) || !strings.Contains(env, "GF_PLUGINS_ALLOW_LOADING_UNSIGNED_PLUGINS="+pluginID) {
			t.Errorf("the grafana stage's ENV %q disagrees with the compose file (plugins in %s, unsigned %s)", env, plugins, pluginID)
		}
		for _, cp := range gs.all("COPY") {
			if f := strings.Fields(cp); f[len(f)-1] != plugins+"/"+pluginID+"/" {
				t.Errorf("the grafana stage copies to %s, want the plugin's directory %s/%s/", f[len(f)-1], plugins, pluginID)
			}
		}
		checkDockerignore(t, s.root, stages)
		checkPluginManifest(t, s.root)
	})
}

// checkPluginSettings checks a Strata plugin data source's jsonData against
// the contract.
func checkPluginSettings(t *testing.T, name string, jd map[string]any) {
	t.Helper()
	for k, v := range jd {
		switch k {
		case "tenant", "basicAuthUser":
			if _, ok := v.(string); !ok {
				t.Errorf("data source %s: jsonData.%s is %T, want a string", name, k, v)
			}
		case "authType":
			if !slices.Contains([]any{"none", "basic", "bearer"}, v) {
				t.Errorf("data source %s: authType %v is not none, basic or bearer", name, v)
			}
		case "timeoutSeconds":
			if _, ok := v.(int); !ok {
				t.Errorf("data source %s: timeoutSeconds is %T, want a number", name, v)
			}
		default:
			t.Errorf("data source %s: jsonData.%s is not a setting of the Strata plugin", name, k)
		}
	}
}

// checkDashboard checks a dashboard's data source references, the Strata
// plugin queries against the contract, that its PromQL parses, and that the
// anomaly series it draws are written by the stack's anomaly rules.
func checkDashboard(t *testing.T, file string, d dashboard, dsTypes map[string]string, anomalyRules []string) {
	t.Helper()
	p := parser.NewParser(parser.Options{})
	seen := map[string]int{}
	checkRef := func(where string, ref dsRef) {
		if typ, ok := dsTypes[ref.UID]; !ok || typ != ref.Type {
			t.Errorf("%s: %s uses data source uid %q type %q, which is not provisioned", file, where, ref.UID, ref.Type)
		}
	}
	// A target without its own data source uses its panel's (or annotation's).
	checkTarget := func(where string, raw json.RawMessage, parent dsRef) {
		var tg target
		if err := json.Unmarshal(raw, &tg); err != nil {
			t.Errorf("%s: %s: %v", file, where, err)
			return
		}
		if tg.DataSource == (dsRef{}) {
			tg.DataSource = parent
		}
		checkRef(where, tg.DataSource)
		if tg.DataSource.Type == pluginID {
			var keys map[string]any
			_ = json.Unmarshal(raw, &keys)
			allowed, ok := strataTargetKeys[tg.QueryType]
			if !ok {
				t.Errorf("%s: %s: queryType %q is not promql, anomaly or alerts", file, where, tg.QueryType)
				return
			}
			for k := range keys {
				if k != "refId" && k != "datasource" && k != "queryType" && k != "hide" && !slices.Contains(allowed, k) {
					t.Errorf("%s: %s: %q is not a field of a %s query", file, where, k, tg.QueryType)
				}
			}
			seen[tg.QueryType]++
			switch tg.QueryType {
			case "anomaly":
				if !slices.Contains([]string{"adaptive", "seasonal", "iforest", "static"}, tg.Detector) {
					t.Errorf("%s: %s: detector %q", file, where, tg.Detector)
				}
			case "alerts":
				for _, st := range tg.States {
					if !slices.Contains([]string{"firing", "pending", "resolved"}, st) {
						t.Errorf("%s: %s: state %q", file, where, st)
					}
				}
				if tg.AlertName != "" {
					if _, err := regexp.Compile(tg.AlertName); err != nil {
						t.Errorf("%s: %s: alertName %q: %v", file, where, tg.AlertName, err)
					}
				}
				return
			}
		} else {
			seen["prometheus"]++
		}
		expr, err := p.ParseExpr(grafanaVars.Replace(tg.Expr))
		if err != nil {
			t.Errorf("%s: %s: expression %q: %v", file, where, tg.Expr, err)
			return
		}
		for _, sel := range parser.ExtractSelectors(expr) {
			for _, m := range sel {
				if m.Name != "__name__" {
					continue
				}
				for _, suffix := range []string{":anomaly_score", ":upper", ":lower"} {
					if rule, ok := strings.CutSuffix(m.Value, suffix); ok && !slices.Contains(anomalyRules, rule) {
						t.Errorf("%s: %s reads %s, but no anomaly rule %s is loaded", file, where, m.Value, rule)
					}
				}
			}
		}
	}
	for _, pn := range d.Panels {
		if pn.Type == "row" {
			continue
		}
		checkRef("panel "+pn.Title, pn.DataSource)
		for i, raw := range pn.Targets {
			checkTarget(fmt.Sprintf("panel %q target %d", pn.Title, i), raw, pn.DataSource)
		}
	}
	for _, a := range d.Annotations.List {
		if a.DataSource.Type == "grafana" {
			continue
		}
		checkRef("annotation "+a.Name, a.DataSource)
		checkTarget("annotation "+a.Name, a.Target, a.DataSource)
	}
	for _, v := range d.Templating.List {
		checkRef("variable "+v.Name, v.DataSource)
	}
	for _, q := range []string{"prometheus", "anomaly", "alerts"} {
		if seen[q] == 0 {
			t.Errorf("%s: no %s query (host metrics, anomaly bands and alert annotations are all expected)", file, q)
		}
	}
}

// anomalyRuleNames returns the names of the anomaly rules Strata loads.
func (s *stack) anomalyRuleNames(t *testing.T, c *server.Config) []string {
	t.Helper()
	var out []string
	for _, f := range s.ruleFiles(t, c) {
		var rf ruleFile
		if err := yaml.Unmarshal(mustRead(t, f), &rf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Anomaly != "" {
					out = append(out, r.Anomaly)
				}
			}
		}
	}
	return out
}

// checkDockerignore checks that no file the Dockerfile copies from the build
// context is excluded by .dockerignore.
func checkDockerignore(t *testing.T, root string, stages []dockerStage) {
	t.Helper()
	var ignored []string
	for _, l := range strings.Split(string(mustRead(t, filepath.Join(root, ".dockerignore"))), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			ignored = append(ignored, strings.TrimSuffix(l, "/"))
		}
	}
	for _, st := range stages {
		for _, cp := range st.all("COPY") {
			f := strings.Fields(cp)
			if strings.HasPrefix(f[0], "--from=") {
				continue
			}
			for _, src := range f[:len(f)-1] {
				if strings.HasPrefix(src, "--") || src == "." {
					continue
				}
				for _, ig := range ignored {
					if _, ok := under(src, ig); ok {
						t.Errorf(".dockerignore excludes %s, which the Dockerfile copies", src)
					}
				}
			}
		}
	}
}

// checkPluginManifest checks the Grafana plugin's manifest against the
// contract once the plugin is in the tree (grafana-plugin/src/plugin.json).
func checkPluginManifest(t *testing.T, root string) {
	t.Helper()
	path := filepath.Join(root, "grafana-plugin", "src", "plugin.json")
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		t.Logf("%s is not in this tree: the plugin manifest is not checked", path)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		ID         string `json:"id"`
		Type       string `json:"type"`
		Backend    bool   `json:"backend"`
		Executable string `json:"executable"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if m.ID != pluginID || m.Type != "datasource" || !m.Backend || m.Executable != pluginExecutable {
		t.Errorf("%s: id %q type %q backend %v executable %q, want %s, datasource, true, %s", path, m.ID, m.Type, m.Backend, m.Executable, pluginID, pluginExecutable)
	}
	for _, f := range []string{"package.json", "package-lock.json", "pkg/go.mod", "pkg/go.sum", "pkg/main.go"} {
		if _, err := os.Stat(filepath.Join(root, "grafana-plugin", f)); err != nil {
			t.Errorf("the Dockerfile builds the plugin from grafana-plugin/%s: %v", f, err)
		}
	}
}

// prometheusRelease returns the Prometheus release of the
// github.com/prometheus/prometheus module go.mod requires.
func prometheusRelease(t *testing.T) string {
	t.Helper()
	gomod := mustRead(t, filepath.Join("..", "go.mod"))
	m := regexp.MustCompile(`(?m)^\s*github\.com/prometheus/prometheus v0\.3(\d\d)\.(\d+)\s*$`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod requires no github.com/prometheus/prometheus v0.3XX.Y")
	}
	return fmt.Sprintf("v3.%s.%s", strings.TrimPrefix(string(m[1]), "0"), m[2])
}

func mustFlag(t *testing.T, args []string, name string) string {
	t.Helper()
	v, ok := flagValue(args, name)
	if !ok {
		t.Fatalf("command %v has no %s", args, name)
	}
	return v
}

func mustPort(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return port
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
