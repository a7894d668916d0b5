package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/strata-tsdb/strata/internal/proctest"
	"github.com/strata-tsdb/strata/internal/testutil"
)

// liveTimeout bounds how long the live test waits for each thing to happen.
// The slowest is the anomaly rules' warm-up: a few evaluations at 15s.
const liveTimeout = 4 * time.Minute

// localStack runs the stack's services as local processes: each service's
// container ports are given free local addresses, each named volume a
// temporary directory, and each file mounted from the repository is copied
// with the services' host names and ports rewritten to those addresses.
type localStack struct {
	*stack
	addrs   map[string]string // "service:port" -> 127.0.0.1:port
	self    map[string]string // per service, its own ":port" -> 127.0.0.1:port
	dir     string
	mounts  map[string][][2]string // per service: container path -> local path, longest first
	replace *strings.Replacer      // host names and ports
}

func newLocalStack(t *testing.T, s *stack, hookAddr string) *localStack {
	t.Helper()
	ls := &localStack{stack: s, addrs: map[string]string{}, self: map[string]string{}, dir: t.TempDir(), mounts: map[string][][2]string{}}
	var pairs []string
	for name := range s.project.Services {
		for _, p := range s.ports(t, name) {
			key := name + ":" + p
			if _, ok := ls.addrs[key]; ok {
				continue
			}
			a := proctest.FreeAddr(t)
			if name == "webhook" {
				a = hookAddr
			}
			ls.addrs[key] = a
			pairs = append(pairs, key, a)
		}
	}
	// Prometheus scrapes itself as localhost:<its port>.
	for _, p := range s.ports(t, "prometheus") {
		pairs = append(pairs, "localhost:"+p, ls.addrs["prometheus:"+p])
	}
	ls.replace = strings.NewReplacer(pairs...)
	for name := range s.project.Services {
		ls.mountService(t, name)
	}
	return ls
}

// mountService prepares the local counterparts of service name's mounts.
func (ls *localStack) mountService(t *testing.T, name string) {
	t.Helper()
	svc := ls.service(t, name)
	var m [][2]string
	for i, v := range svc.Volumes {
		switch {
		case v.Type == types.VolumeTypeVolume:
			d := filepath.Join(ls.dir, name, "volume-"+v.Source)
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
			m = append(m, [2]string{v.Target, d})
		case v.Type == types.VolumeTypeBind:
			if _, inRepo := under(v.Source, ls.root); !inRepo {
				m = append(m, [2]string{v.Target, v.Source}) // the host's root for node exporter
				continue
			}
			m = append(m, [2]string{v.Target, filepath.Join(ls.dir, name, fmt.Sprintf("mount-%d", i), filepath.Base(v.Source))})
		}
	}
	sort.Slice(m, func(i, j int) bool { return len(m[i][0]) > len(m[j][0]) })
	ls.mounts[name] = m
	for _, p := range ls.ports(t, name) {
		ls.self[name+"|:"+p] = ls.addrs[name+":"+p]
	}
	// Copy the repository's files, rewritten, now that every path is known.
	for i, v := range svc.Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		if _, inRepo := under(v.Source, ls.root); !inRepo {
			continue
		}
		dst := filepath.Join(ls.dir, name, fmt.Sprintf("mount-%d", i), filepath.Base(v.Source))
		err := filepath.WalkDir(v.Source, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(v.Source, path)
			out := filepath.Join(dst, rel)
			if d.IsDir() {
				return os.MkdirAll(out, 0o755)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
				return err
			}
			return os.WriteFile(out, []byte(ls.rewrite(t, name, string(b))), 0o644)
		})
		if err != nil {
			t.Fatalf("copy %s for service %s: %v", v.Source, name, err)
		}
	}
}

// rewrite turns text seen by service name into its local equivalent: other
// services' host:port into local addresses, the service's own listen
// address (":port", quoted) into its local address, container paths into
// local paths.
func (ls *localStack) rewrite(t *testing.T, name, text string) string {
	t.Helper()
	text = ls.replace.Replace(text)
	for _, p := range ls.ports(t, name) {
		if a, ok := ls.addrs[name+":"+p]; ok {
			text = strings.ReplaceAll(text, `":`+p+`"`, `"`+a+`"`)
		}
	}
	return ls.paths(name, text)
}

// paths replaces container paths of service name with local paths, in one
// pass (a local path is never rewritten again), where a path starts: at the
// start of text or after a character that cannot be part of a path.
func (ls *localStack) paths(name, text string) string {
	m := ls.mounts[name]
	if len(m) == 0 {
		return text
	}
	local := map[string]string{}
	var alts []string
	for _, p := range m { // longest first
		local[p[0]] = p[1]
		alts = append(alts, regexp.QuoteMeta(p[0]))
	}
	re := regexp.MustCompile(`(^|[^\w./-])(` + strings.Join(alts, "|") + `)(/|$|[^\w.-])`)
	return re.ReplaceAllStringFunc(text, func(match string) string {
		sub := re.FindStringSubmatch(match)
		return sub[1] + local[sub[2]] + sub[3]
	})
}

// args rewrites a service's command for a local run.
func (ls *localStack) args(t *testing.T, name string, drop ...string) []string {
	t.Helper()
	var out []string
	for _, a := range ls.service(t, name).Command {
		flagName, _, _ := strings.Cut(a, "=")
		if slices.Contains(drop, flagName) {
			continue
		}
		// A listen address ":port", alone or as a flag's value.
		if k, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(v, ":") {
			if addr, ok := ls.self[name+"|"+v]; ok {
				out = append(out, k+"="+addr)
				continue
			}
		}
		if addr, ok := ls.self[name+"|"+a]; ok {
			out = append(out, addr)
			continue
		}
		out = append(out, ls.paths(name, ls.replace.Replace(a)))
	}
	return out
}

// env returns a service's environment as KEY=value pairs.
func (ls *localStack) environ(t *testing.T, name string) []string {
	t.Helper()
	var out []string
	for k, v := range ls.service(t, name).Environment {
		if v != nil {
			out = append(out, k+"="+*v)
		}
	}
	return out
}

// webhookReceiver records the alert names each path received.
type webhookReceiver struct {
	mu     sync.Mutex
	alerts map[string][]string // path -> alert names
}

func (h *webhookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var msg struct {
		Alerts []struct {
			Status string            `json:"status"`
			Labels map[string]string `json:"labels"`
		} `json:"alerts"`
	}
	if err := json.NewDecoder(r.Body).Decode(&msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, a := range msg.Alerts {
		h.alerts[r.URL.Path] = append(h.alerts[r.URL.Path], a.Labels["alertname"]+"/"+a.Status)
	}
}

func (h *webhookReceiver) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return fmt.Sprint(h.alerts)
}

func (h *webhookReceiver) received(path, alert string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Contains(h.alerts[path], alert)
}

// apiResult is the Prometheus API's response envelope with a vector or matrix.
type apiResult struct {
	Status string `json:"status"`
	Error  string `json:"error"`
	Data   struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
		} `json:"result"`
	} `json:"data"`
}

// get GETs base+path with params and decodes the API envelope.
func get(t *testing.T, base, path string, params url.Values) (apiResult, error) {
	t.Helper()
	hc := &http.Client{Timeout: 30 * time.Second}
	return decodeAPI(hc.Get(base + path + "?" + params.Encode()))
}

// post POSTs params as a form, as Grafana's Prometheus data source does
// with httpMethod POST, and decodes the API envelope.
func post(t *testing.T, base, path string, params url.Values) (apiResult, error) {
	t.Helper()
	hc := &http.Client{Timeout: 30 * time.Second}
	return decodeAPI(hc.PostForm(base+path, params))
}

func decodeAPI(resp *http.Response, err error) (apiResult, error) {
	var r apiResult
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("HTTP %d %s: %w", resp.StatusCode, b, err)
	}
	if resp.StatusCode != http.StatusOK || r.Status != "success" {
		return r, fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
	}
	return r, nil
}

// getStrings GETs an API endpoint whose data is a list of strings.
func getStrings(u string, params url.Values) ([]string, error) {
	resp, err := http.Get(u + "?" + params.Encode())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string   `json:"status"`
		Data   []string `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Status != "success" {
		return nil, fmt.Errorf("HTTP %d: %v", resp.StatusCode, err)
	}
	return r.Data, nil
}

// TestStackLive runs the compose stack's programs as local processes with
// the stack's own files (see the package comment).
func TestStackLive(t *testing.T) {
	requireStrata(t)
	minioBin := proctest.CachedProgram(t, "STRATA_MINIO", "minio")
	promBin := proctest.CachedProgram(t, "STRATA_PROMETHEUS3", "prometheus")
	nodeBin := proctest.RequireProgram(t, "prometheus-node-exporter")
	amBin := proctest.RequireProgram(t, "prometheus-alertmanager")

	hook := &webhookReceiver{alerts: map[string][]string{}}
	hookSrv := httptest.NewServer(hook)
	defer hookSrv.Close()
	s := loadStack(t)
	ls := newLocalStack(t, s, strings.TrimPrefix(hookSrv.URL, "http://"))

	// MinIO, then its bucket as minio-init creates it.
	minioAddr := ls.addrs["minio:9000"]
	mp := proctest.StartEnv(t, "minio", minioBin, ls.environ(t, "minio"), ls.args(t, "minio")...)
	mp.WaitHTTP(t, "http://"+minioAddr+"/minio/health/live", time.Minute)
	bucket, _ := s.mcBucket(t)
	mc, err := minio.New(minioAddr, &minio.Options{
		Creds: credentials.NewStaticV4(s.env(t, "minio-init", "MINIO_ROOT_USER"), s.env(t, "minio-init", "MINIO_ROOT_PASSWORD"), ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), liveTimeout+2*time.Minute)
	defer cancel()
	if err := mc.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("create bucket %s as minio-init does: %v", bucket, err)
	}

	// Strata, and the image's health check against it.
	strataURL := "http://" + ls.addrs["strata:9201"]
	sp := proctest.StartEnv(t, "strata", strataBin, ls.environ(t, "strata"), ls.args(t, "strata")...)
	sp.WaitHTTP(t, strataURL+"/-/ready", time.Minute)
	t.Run("image health check", func(t *testing.T) {
		stages, err := parseDockerfile(filepath.Join(s.root, "Dockerfile"))
		if err != nil {
			t.Fatal(err)
		}
		hc := stages[len(stages)-1].all("HEALTHCHECK")
		m := regexp.MustCompile(`CMD \["/usr/bin/strata", (.*)\]`).FindStringSubmatch(strings.Join(hc, " "))
		if m == nil {
			t.Fatalf("no exec-form HEALTHCHECK of /usr/bin/strata in %q", hc)
		}
		var args []string
		if err := json.Unmarshal([]byte("["+m[1]+"]"), &args); err != nil {
			t.Fatalf("HEALTHCHECK arguments %s: %v", m[1], err)
		}
		for i, a := range args {
			args[i] = strings.ReplaceAll(a, "127.0.0.1:9201", ls.addrs["strata:9201"])
		}
		if out, err := exec.Command(strataBin, args...).CombinedOutput(); err != nil {
			t.Errorf("the health check strata %v fails against a ready Strata: %v\n%s", args, err, out)
		}
		args[len(args)-1] = "http://" + proctest.FreeAddr(t) + "/-/ready"
		if err := exec.Command(strataBin, args...).Run(); err == nil {
			t.Errorf("the health check passes against an address where nothing listens")
		}
	})

	np := proctest.StartEnv(t, "node-exporter", nodeBin, nil, ls.args(t, "node-exporter")...)
	np.WaitHTTP(t, "http://"+ls.addrs["node-exporter:9100"]+"/metrics", time.Minute)
	ap := proctest.StartEnv(t, "alertmanager", amBin, nil, ls.args(t, "alertmanager")...)
	ap.WaitHTTP(t, "http://"+ls.addrs["alertmanager:9093"]+"/-/ready", time.Minute)
	promURL := "http://" + ls.addrs["prometheus:9090"]
	pp := proctest.StartEnv(t, "prometheus", promBin, nil, ls.args(t, "prometheus")...)
	pp.WaitHTTP(t, promURL+"/-/ready", time.Minute)

	deadline := time.Now().Add(liveTimeout)
	nonEmpty := func(base, query string) func() (bool, string) {
		return func() (bool, string) {
			r, err := get(t, base, "/api/v1/query", url.Values{"query": {query}})
			if err != nil {
				return false, err.Error()
			}
			return len(r.Data.Result) > 0, fmt.Sprintf("%d series", len(r.Data.Result))
		}
	}
	// node exporter -> Prometheus -> Strata (remote write 2.0).
	for _, job := range []string{"node", "prometheus", "strata"} {
		testutil.Await(t, time.Until(deadline), "Strata has up{job="+job+"} == 1", nonEmpty(strataURL, `up{job="`+job+`"} == 1`))
	}
	testutil.Await(t, time.Until(deadline), "Strata has node_cpu_seconds_total", nonEmpty(strataURL, `node_cpu_seconds_total`))
	testutil.Await(t, time.Until(deadline), "Strata has metadata of node_cpu_seconds_total", func() (bool, string) {
		resp, err := http.Get(strataURL + "/api/v1/metadata?metric=node_cpu_seconds_total")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), `"type":"counter"`), string(b)
	})

	// The rule files: loaded, anomaly rules writing their series.
	testutil.Await(t, time.Until(deadline), "Strata loaded the stack's rule groups", func() (bool, string) {
		resp, err := http.Get(strataURL + "/api/v1/rules")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, g := range []string{"node-anomalies", "node", "meta"} {
			if !strings.Contains(string(b), `"name":"`+g+`"`) {
				return false, string(b)
			}
		}
		return true, ""
	})
	strataCfg, _ := s.strataConfig(t)
	for _, rule := range s.anomalyRuleNames(t, strataCfg) {
		for _, suffix := range []string{":anomaly_score", ":upper", ":lower"} {
			testutil.Await(t, time.Until(deadline), "anomaly rule writes "+rule+suffix, nonEmpty(strataURL, rule+suffix))
		}
	}
	// Remote read: Prometheus answers with a series only Strata has.
	testutil.Await(t, time.Until(deadline), "Prometheus reads node:cpu_busy:upper from Strata (remote read)", nonEmpty(promURL, "node:cpu_busy:upper"))

	// Alerts: Strata -> Alertmanager -> webhook, and Strata -> webhook.
	for _, w := range []string{"/alertmanager", "/strata"} {
		testutil.Await(t, time.Until(deadline), "the webhook receives Watchdog at "+w, func() (bool, string) {
			return hook.received(w, "Watchdog/firing"), hook.String()
		})
	}
	testutil.Await(t, time.Until(deadline), "Strata stores ALERTS of Watchdog", nonEmpty(strataURL, `ALERTS{alertname="Watchdog",alertstate="firing"}`))
	testutil.Await(t, time.Until(deadline), "Strata's /api/v1/alerts lists Watchdog firing", func() (bool, string) {
		resp, err := http.Get(strataURL + "/api/v1/alerts")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var r struct {
			Data struct {
				Alerts []struct {
					Labels map[string]string `json:"labels"`
					State  string            `json:"state"`
				} `json:"alerts"`
			} `json:"data"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			return false, fmt.Sprintf("%v: %s", err, b)
		}
		for _, a := range r.Data.Alerts {
			if a.Labels["alertname"] == "Watchdog" && a.State == "firing" {
				return true, ""
			}
		}
		return false, string(b)
	})

	t.Run("dashboard queries", func(t *testing.T) { checkDashboardLive(t, s, strataURL) })

	// Strata -> MinIO: cut the heads into blocks and find them in the bucket.
	t.Run("flush to the bucket", func(t *testing.T) {
		resp, err := http.Post(strataURL+"/api/v1/admin/flush", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("flush: HTTP %d %s", resp.StatusCode, b)
		}
		var metas []string
		for obj := range mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
			if obj.Err != nil {
				t.Fatalf("list bucket %s: %v", bucket, obj.Err)
			}
			if strings.HasSuffix(obj.Key, "/meta.json") {
				metas = append(metas, obj.Key)
			}
		}
		tenant := strataCfg.Tenant.Default
		if len(metas) == 0 || !strings.HasPrefix(metas[0], tenant+"/") {
			t.Fatalf("bucket %s holds no block of tenant %s after a flush: %v", bucket, tenant, metas)
		}
		t.Logf("blocks in bucket %s: %v", bucket, metas)
	})
}

// checkDashboardLive runs every query of the provisioned dashboards against
// Strata as Grafana would send it, and requires data for the host and
// anomaly panels.
func checkDashboardLive(t *testing.T, s *stack, strataURL string) {
	rng := url.Values{"step": {"15"}}
	for file, d := range s.loadDashboards(t) {
		// Template variables: label_values(metric, label), as Grafana asks.
		for _, v := range d.Templating.List {
			m := regexp.MustCompile(`^label_values\((\w+), *(\w+)\)$`).FindStringSubmatch(v.Definition)
			if m == nil {
				t.Errorf("%s: variable %s: query %q is not label_values(metric, label)", filepath.Base(file), v.Name, v.Definition)
				continue
			}
			r, err := getStrings(strataURL+"/api/v1/label/"+m[2]+"/values", url.Values{"match[]": {m[1]}})
			if err != nil || len(r) == 0 {
				t.Errorf("%s: variable %s: values of %s: %v %v", filepath.Base(file), v.Name, m[2], r, err)
			}
		}
		for _, pn := range d.Panels {
			for i, raw := range pn.Targets {
				var tg target
				if err := json.Unmarshal(raw, &tg); err != nil {
					t.Fatal(err)
				}
				where := fmt.Sprintf("%s: panel %q target %d", filepath.Base(file), pn.Title, i)
				q := url.Values{"query": {grafanaVars.Replace(tg.Expr)}}
				for k, v := range rng {
					q[k] = v
				}
				path, call := "/api/v1/query_range", post
				if tg.QueryType == "anomaly" {
					call = get
					// What the plugin sends: the detector and its parameters by name.
					path = "/api/v1/anomaly/query_range"
					q.Set("detector", tg.Detector)
					for k, v := range tg.Params {
						q.Set(k, fmt.Sprint(v))
					}
				}
				// Panels of host metrics and anomaly series must show data;
				// a filesystem or network panel may be empty in a sandbox.
				mustHaveData := !strings.Contains(pn.Title, "Filesystem") && !strings.Contains(pn.Title, "Network") && !strings.Contains(pn.Title, "Blocks waiting")
				// An empty answer is asked again for up to a minute, as a
				// refreshing dashboard would (the checks below report what
				// the last answer lacked): on a loaded machine a rule's
				// series has been seen missing from a range query for a
				// moment after an instant query found it.
				var r apiResult
				var err error
				testutil.Wait(time.Minute, func() bool {
					end := time.Now()
					q.Set("start", fmt.Sprint(end.Add(-10*time.Minute).Unix()))
					q.Set("end", fmt.Sprint(end.Unix()))
					r, err = call(t, strataURL, path, q)
					return err != nil || !mustHaveData || len(r.Data.Result) > 0
				})
				if err != nil {
					t.Errorf("%s: %s: %v", where, path, err)
					continue
				}
				if mustHaveData && len(r.Data.Result) == 0 {
					raw, _ := http.Get(strataURL + "/api/v1/query?" + url.Values{"query": {grafanaVars.Replace(tg.Expr) + "[15m]"}}.Encode())
					var body []byte
					if raw != nil {
						body, _ = io.ReadAll(raw.Body)
						raw.Body.Close()
					}
					t.Errorf("%s: %s answers no series over the last 10m (its raw samples: %s)", where, tg.Expr, body)
				}
				if tg.QueryType == "anomaly" {
					// The series it draws: the value always; the band once
					// the detector has warmed up, which on a minutes-old
					// stack only the adaptive detector with a short warm-up has.
					roles := map[string]int{}
					for _, res := range r.Data.Result {
						roles[res.Metric["anomaly"]]++
					}
					if roles["value"] == 0 || (tg.Detector == "adaptive" && (roles["upper"] == 0 || roles["lower"] == 0 || roles["score"] == 0)) {
						t.Errorf("%s: the anomaly query answers series %v", where, roles)
					}
				}
			}
		}
	}
}
