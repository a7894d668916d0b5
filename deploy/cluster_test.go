package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	"gopkg.in/yaml.v3"

	"github.com/strata-tsdb/strata/cluster"
	"github.com/strata-tsdb/strata/internal/proctest"
	"github.com/strata-tsdb/strata/internal/testutil"
	"github.com/strata-tsdb/strata/server"
)

// clusterComposeFile is the compose file of the cluster.
const clusterComposeFile = "docker-compose.cluster.yml"

// strataService is a Strata process of the cluster's compose file.
type strataService struct {
	name   string
	role   string
	config string // the host path of its configuration file
	args   []string
}

// strataServices returns the cluster's Strata processes (the services
// running the strata image), by name.
func (s *stack) strataServices(t *testing.T) map[string]strataService {
	t.Helper()
	out := map[string]strataService{}
	for name, svc := range s.project.Services {
		if svc.Image != "strata:latest" {
			continue
		}
		out[name] = strataService{
			name:   name,
			role:   mustFlag(t, svc.Command, "-target"),
			config: s.hostPath(t, name, mustFlag(t, svc.Command, "-config.file")),
			args:   svc.Command,
		}
	}
	return out
}

// TestClusterComposeConsistency checks docker-compose.cluster.yml and the
// files it mounts against each other, as TestComposeConsistency does for
// the single process's stack: roles, names and addresses in the ring,
// memberlist, volumes, bucket and credentials, Prometheus writing to the
// distributor, Grafana reading from the querier, and the images the two
// stacks share.
func TestClusterComposeConsistency(t *testing.T) {
	s := loadComposeFile(t, clusterComposeFile, "strata-cluster")
	procs := s.strataServices(t)
	var cfgPath string
	for _, p := range procs {
		if cfgPath == "" {
			cfgPath = p.config
		}
		if p.config != cfgPath {
			t.Errorf("service %s reads %s, others %s: every Strata process shares one configuration file", p.name, p.config, cfgPath)
		}
	}
	cfg, err := server.LoadConfig([]string{"-config.file", cfgPath}, io.Discard)
	if err != nil {
		t.Fatalf("the cluster's configuration %s: %v", cfgPath, err)
	}
	httpPort := mustPort(t, cfg.HTTP.ListenAddress)
	mlPort := fmt.Sprint(cfg.Cluster.Memberlist.BindPort)

	t.Run("roles and ring", func(t *testing.T) {
		byRole := map[string][]string{}
		volumes := map[string]string{}
		for name, p := range procs {
			svc := s.service(t, name)
			if _, err := cluster.ParseTargets(strings.Split(p.role, ",")); err != nil || p.role == cluster.TargetAll {
				t.Errorf("service %s runs -target=%s, want roles of a cluster: %v", name, p.role, err)
			}
			for _, r := range strings.Split(p.role, ",") {
				byRole[r] = append(byRole[r], name)
			}
			if id := mustFlag(t, p.args, "-ring.instance-id"); id != name {
				t.Errorf("service %s is %q in the ring; want its service name", name, id)
			}
			addr := mustFlag(t, p.args, "-ring.instance-addr")
			if host, port, _ := net.SplitHostPort(addr); host != name || port != httpPort {
				t.Errorf("service %s is reached at %s, want %s:%s", name, addr, name, httpPort)
			}
			for _, port := range []string{httpPort, mlPort} {
				if !slices.Contains(s.ports(t, name), port) {
					t.Errorf("service %s does not declare port %s (HTTP %s, memberlist %s)", name, port, httpPort, mlPort)
				}
			}
			v := s.volumeAt(t, name, cfg.Storage.Path)
			if v == "" {
				t.Errorf("service %s keeps %s in no named volume", name, cfg.Storage.Path)
			} else if other, ok := volumes[v]; ok {
				t.Errorf("services %s and %s share volume %s", name, other, v)
			}
			volumes[v] = name
			if svc.Build == nil || svc.Build.Target != "strata" {
				t.Errorf("service %s is not built from the Dockerfile's strata stage", name)
			}
			if dep, ok := svc.DependsOn["minio-init"]; !ok || dep.Condition != types.ServiceConditionCompletedSuccessfully {
				t.Errorf("service %s must wait for minio-init to complete", name)
			}
			for _, key := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
				want := s.env(t, "minio", map[string]string{"AWS_ACCESS_KEY_ID": "MINIO_ROOT_USER", "AWS_SECRET_ACCESS_KEY": "MINIO_ROOT_PASSWORD"}[key])
				if got := s.env(t, name, key); got != want {
					t.Errorf("service %s: %s is %q, want MinIO's %q", name, key, got, want)
				}
			}
		}
		if n := len(byRole[cluster.TargetIngester]); n < 3 || n < cfg.Cluster.Ring.ReplicationFactor {
			t.Errorf("%d ingesters %v for a replication factor of %d; want at least 3", n, byRole[cluster.TargetIngester], cfg.Cluster.Ring.ReplicationFactor)
		}
		for _, r := range []string{cluster.TargetDistributor, cluster.TargetQuerier, cluster.TargetCompactor} {
			if len(byRole[r]) == 0 {
				t.Errorf("no service runs the %s role", r)
			}
		}
		// Every bind mount is a file of the repository (the host's root
		// for node exporter aside), mounted read-only.
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
		if len(cfg.Cluster.Memberlist.Join) == 0 {
			t.Errorf("memberlist.join is empty: the processes cannot find each other")
		}
		for _, j := range cfg.Cluster.Memberlist.Join {
			s.checkServiceAddr(t, "memberlist.join", j)
			if host, port, _ := net.SplitHostPort(j); procs[host].name == "" || port != mlPort {
				t.Errorf("memberlist.join %s is not a Strata process's memberlist port %s", j, mlPort)
			}
		}
		b := cfg.Bucket
		if b.Backend != "s3" || !strings.HasPrefix(b.S3.Endpoint, "minio:") || b.S3.AccessKey != "" {
			t.Errorf("bucket: backend %q endpoint %q (access key in the file: %v), want the minio service, credentials by environment", b.Backend, b.S3.Endpoint, b.S3.AccessKey != "")
		}
		s.checkServiceAddr(t, "bucket.s3.endpoint", b.S3.Endpoint)
		if bucket, _ := s.mcBucket(t); bucket != b.S3.Bucket {
			t.Errorf("minio-init creates bucket %q, Strata uses %q", bucket, b.S3.Bucket)
		}
	})

	t.Run("strata -config.check", func(t *testing.T) {
		requireStrata(t)
		for name, p := range procs {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			out, err := exec.CommandContext(ctx, strataBin, "-config.check", "-config.file", cfgPath, "-target", p.role).CombinedOutput()
			cancel()
			if err != nil || !strings.Contains(string(out), "configuration is valid") {
				t.Errorf("service %s: strata -config.check -config.file %s -target %s: %v\n%s", name, cfgPath, p.role, err, out)
			}
		}
	})

	t.Run("prometheus", func(t *testing.T) {
		cmd := s.service(t, "prometheus").Command
		path := s.hostPath(t, "prometheus", mustFlag(t, cmd, "--config.file"))
		pc, err := promconfig.LoadFile(path, false, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("Prometheus rejects %s: %v", path, err)
		}
		if len(pc.RemoteWriteConfigs) != 1 {
			t.Fatalf("want one remote_write, got %d", len(pc.RemoteWriteConfigs))
		}
		rw := pc.RemoteWriteConfigs[0]
		u := s.checkServiceURL(t, "remote_write", rw.URL.String())
		if host, _, _ := net.SplitHostPort(u.Host); !strings.Contains(procs[host].role, cluster.TargetDistributor) || u.Path != "/api/v1/write" {
			t.Errorf("remote_write goes to %s, want a distributor's /api/v1/write", rw.URL)
		}
		if string(rw.ProtobufMessage) != "io.prometheus.write.v2.Request" {
			t.Errorf("remote_write sends %q, want remote write 2.0", rw.ProtobufMessage)
		}
		if !slices.Contains(cmd, "--enable-feature=metadata-wal-records") {
			t.Errorf("Prometheus runs without --enable-feature=metadata-wal-records: remote write 2.0 would carry no metadata")
		}
		// Every Strata process is scraped.
		scraped := map[string]bool{}
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
						if strings.HasPrefix(addr, "localhost:") {
							continue // Prometheus itself
						}
						s.checkServiceAddr(t, "scrape job "+sc.JobName, addr)
						host, _, _ := net.SplitHostPort(addr)
						scraped[host] = true
					}
				}
			}
		}
		for name := range procs {
			if !scraped[name] {
				t.Errorf("Prometheus does not scrape Strata process %s", name)
			}
		}
	})

	t.Run("grafana", func(t *testing.T) {
		dir := s.hostPath(t, "grafana", "/etc/grafana/provisioning/datasources")
		var ds grafanaDataSources
		for _, f := range []string{"strata.yml"} {
			if err := yaml.Unmarshal(mustRead(t, dir+"/"+f), &ds); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
		}
		kinds := map[string]bool{}
		for _, d := range ds.DataSources {
			u := s.checkServiceURL(t, "data source "+d.Name, d.URL)
			host, _, _ := net.SplitHostPort(u.Host)
			if !strings.Contains(procs[host].role, cluster.TargetQuerier) {
				t.Errorf("data source %s points at %s, want a querier", d.Name, d.URL)
			}
			if d.Type == pluginID {
				checkPluginSettings(t, d.Name, d.JSONData)
			}
			kinds[d.Type] = true
		}
		for _, typ := range []string{"prometheus", pluginID} {
			if !kinds[typ] {
				t.Errorf("no data source of type %s is provisioned", typ)
			}
		}
		// The dashboards are the single-process stack's, which
		// TestComposeConsistency checks, under the same data source UIDs.
		single := loadStack(t)
		for _, path := range []string{"/etc/grafana/dashboards", "/etc/grafana/provisioning/dashboards"} {
			if got, want := s.hostPath(t, "grafana", path), single.hostPath(t, "grafana", path); got != want {
				t.Errorf("grafana mounts %s from %s, the single-process stack from %s", path, got, want)
			}
		}
		var singleDS grafanaDataSources
		if err := yaml.Unmarshal(mustRead(t, single.hostPath(t, "grafana", "/etc/grafana/provisioning/datasources")+"/strata.yml"), &singleDS); err != nil {
			t.Fatal(err)
		}
		for _, d := range singleDS.DataSources {
			if d.Type == "prometheus" || d.Type == pluginID {
				if !slices.ContainsFunc(ds.DataSources, func(c grafanaDataSource) bool { return c.UID == d.UID && c.Type == d.Type }) {
					t.Errorf("data source %s (uid %s) the dashboards may use is not provisioned", d.Name, d.UID)
				}
			}
		}
	})

	t.Run("images shared with the single-process stack", func(t *testing.T) {
		single := loadStack(t)
		for name, svc := range s.project.Services {
			if other, ok := single.project.Services[name]; ok && other.Image != svc.Image {
				t.Errorf("service %s runs %s here and %s in docker-compose.yml", name, svc.Image, other.Image)
			}
		}
	})
}

// TestClusterStackLive runs the cluster's compose file as local processes
// with its own files (MinIO, three ingesters, a distributor, a querier, a
// compactor and two rulers built from this tree, Prometheus 3, node
// exporter): the processes find each other through memberlist,
// Prometheus's samples reach the querier through the distributor and the
// ingesters, Grafana's kind of query answers (the second time from
// memcached), the rulers' recording rule output is queryable, and an ingester stopped as the README says
// (SIGTERM) ships its data to the MinIO bucket.
func TestClusterStackLive(t *testing.T) {
	requireStrata(t)
	minioBin := proctest.CachedProgram(t, "STRATA_MINIO", "minio")
	promBin := proctest.CachedProgram(t, "STRATA_PROMETHEUS3", "prometheus")
	nodeBin := proctest.RequireProgram(t, "prometheus-node-exporter")

	s := loadComposeFile(t, clusterComposeFile, "strata-cluster")
	ls := newLocalStack(t, s, proctest.FreeAddr(t))

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
	ctx, cancel := context.WithTimeout(context.Background(), liveTimeout)
	defer cancel()
	if err := mc.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("create bucket %s as minio-init does: %v", bucket, err)
	}

	// The results cache, as the memcached service runs it.
	mcHost, mcPort, _ := net.SplitHostPort(ls.addrs["memcached:11211"])
	mcArgs := append([]string{"-l", mcHost, "-p", mcPort, "-U", "0"}, s.service(t, "memcached").Command...)
	if os.Geteuid() == 0 {
		mcArgs = append(mcArgs, "-u", "root") // memcached refuses root without it
	}
	proctest.Start(t, "memcached", proctest.RequireProgram(t, "memcached"), mcArgs...)

	// The Strata processes, ingesters first (the others join them). Each
	// listens for memberlist on its own local port instead of the
	// containers' shared one.
	procs := s.strataServices(t)
	var names []string
	for name := range procs {
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int {
		ia, ib := procs[a].role == cluster.TargetIngester, procs[b].role == cluster.TargetIngester
		switch {
		case ia && !ib:
			return -1
		case ib && !ia:
			return 1
		}
		return strings.Compare(a, b)
	})
	running := map[string]*proctest.Process{}
	var ingesters []string
	for _, name := range names {
		_, port, _ := net.SplitHostPort(ls.addrs[name+":7946"])
		args := append(ls.args(t, name), "-memberlist.bind-addr=127.0.0.1", "-memberlist.bind-port="+port)
		p := proctest.StartEnv(t, name, strataBin, ls.environ(t, name), args...)
		running[name] = p
		if procs[name].role == cluster.TargetIngester {
			ingesters = append(ingesters, name)
		}
	}
	for _, name := range names {
		running[name].WaitHTTP(t, "http://"+ls.addrs[name+":9201"]+"/-/ready", time.Minute)
	}
	distURL, querierURL := "http://"+ls.addrs["distributor:9201"], "http://"+ls.addrs["querier:9201"]
	testutil.Await(t, time.Minute, "the distributor sees every ingester ACTIVE", func() (bool, string) {
		active, err := activeIngesters(distURL)
		if err != nil {
			return false, err.Error()
		}
		slices.Sort(active)
		return slices.Equal(active, ingesters), fmt.Sprint(active)
	})

	np := proctest.StartEnv(t, "node-exporter", nodeBin, nil, ls.args(t, "node-exporter")...)
	np.WaitHTTP(t, "http://"+ls.addrs["node-exporter:9100"]+"/metrics", time.Minute)
	pp := proctest.StartEnv(t, "prometheus", promBin, nil, ls.args(t, "prometheus")...)
	pp.WaitHTTP(t, "http://"+ls.addrs["prometheus:9090"]+"/-/ready", time.Minute)

	// Prometheus -> distributor -> ingesters -> querier: every scrape job,
	// every Strata process up.
	nonEmpty := func(query string, want int) func() (bool, string) {
		return func() (bool, string) {
			r, err := get(t, querierURL, "/api/v1/query", url.Values{"query": {query}})
			if err != nil {
				return false, err.Error()
			}
			return len(r.Data.Result) >= want, fmt.Sprintf("%d series", len(r.Data.Result))
		}
	}
	for _, job := range []string{"node", "prometheus"} {
		testutil.Await(t, liveTimeout, "the querier has up{job="+job+"} == 1", nonEmpty(`up{job="`+job+`"} == 1`, 1))
	}
	testutil.Await(t, liveTimeout, "the querier has every Strata process up", nonEmpty(`up{job="strata"} == 1`, len(procs)))
	// A query as Grafana's data source sends it (POST), over the querier.
	testutil.Await(t, liveTimeout, "a range query of node_load1 answers", func() (bool, string) {
		end := time.Now()
		r, err := post(t, querierURL, "/api/v1/query_range", url.Values{"query": {"node_load1"}, "step": {"15"},
			"start": {fmt.Sprint(end.Add(-10 * time.Minute).Unix())}, "end": {fmt.Sprint(end.Unix())}})
		if err != nil {
			return false, err.Error()
		}
		return len(r.Data.Result) > 0, fmt.Sprintf("%d series", len(r.Data.Result))
	})

	// The querier answers range queries through its front end, from
	// memcached the second time.
	hits := func() float64 {
		return testutil.Metric(t, testutil.Scrape(querierURL+"/metrics"), "strata_results_cache_lookups_total", "result", "hit") +
			testutil.Metric(t, testutil.Scrape(querierURL+"/metrics"), "strata_results_cache_lookups_total", "result", "partial")
	}
	before := hits()
	end := time.Now().Add(-20 * time.Minute)
	for range 2 {
		if _, err := post(t, querierURL, "/api/v1/query_range", url.Values{"query": {"up"}, "step": {"15"},
			"start": {fmt.Sprint(end.Add(-time.Hour).Unix())}, "end": {fmt.Sprint(end.Unix())}}); err != nil {
			t.Fatal(err)
		}
	}
	if hits() <= before {
		t.Errorf("the querier's second range query found nothing in memcached")
	}

	// The rulers evaluate the stack's rules (each tenant on one of them)
	// and write their results through the distributor.
	testutil.Await(t, liveTimeout, "the querier has the rulers' recording rule output", nonEmpty(`instance:node_cpu_busy:ratio`, 1))

	// Removing an ingester as the README says: SIGTERM; it ships its heads
	// to the bucket, leaves the ring and exits.
	leaving := ingesters[len(ingesters)-1]
	if err := running[leaving].Stop(2 * time.Minute); err != nil {
		t.Errorf("%s on SIGTERM: %v, want exit status 0", leaving, err)
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
	if len(metas) == 0 {
		t.Errorf("bucket %s holds no block after %s left", bucket, leaving)
	}
	testutil.Await(t, time.Minute, "the distributor sees the others ACTIVE, without "+leaving, func() (bool, string) {
		active, err := activeIngesters(distURL)
		if err != nil {
			return false, err.Error()
		}
		slices.Sort(active)
		return slices.Equal(active, ingesters[:len(ingesters)-1]), fmt.Sprint(active)
	})
	t.Logf("blocks in bucket %s after %s left: %v", bucket, leaving, metas)
}

// activeIngesters returns the ACTIVE members of the ingesters' ring as the
// process at base sees it.
func activeIngesters(base string) ([]string, error) {
	req, err := http.NewRequest(http.MethodGet, base+"/ring", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Shards []struct {
			ID    string `json:"id"`
			State string `json:"state"`
		} `json:"shards"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	var out []string
	for _, s := range r.Shards {
		if s.State == "ACTIVE" {
			out = append(out, s.ID)
		}
	}
	return out, nil
}
