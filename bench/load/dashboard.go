package load

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/strata-tsdb/strata/internal/gen"
)

// The dashboard-refresh benchmark: Grafana asks a dashboard's range queries
// again every refresh over a window that moves with the clock, while the
// data keeps arriving. Strata (its results cache on, as it ships) and
// VictoriaMetrics (its rollup result cache on, as it ships) get the same
// remote-write data: a history, then one scrape per refresh, sent just
// before the refresh's queries. The data's clock is the wall clock (a
// refresh waits for its scrape's time to come), so both systems see data
// as fresh as a dashboard does: each decides itself what of it is final.

// DashboardQueries are the queries of the dashboard: the load tool's
// first six.
var DashboardQueries = Queries[:6]

// DashboardConfig is a dashboard-refresh run.
type DashboardConfig struct {
	StrataBin, VictoriaBin string
	WorkDir                string
	Series                 int
	Interval               time.Duration // scrape and refresh interval
	History                time.Duration // data written before the first refresh
	Refreshes              int
	Windows                []time.Duration
	BatchSamples, Senders  int
	Progress               io.Writer
}

// DashboardWindow is what one window's queries took over every refresh.
type DashboardWindow struct {
	Window, Step             time.Duration
	Strata, Victoria         time.Duration // total over all refreshes
	StrataFirst, VictoriaFst time.Duration // the first refresh (caches cold)
}

// DashboardResults are the figures of a run.
type DashboardResults struct {
	Hosts, Series   int
	HistorySamples  int
	Refreshes       int
	Windows         []DashboardWindow
	StrataTotal     time.Duration
	VictoriaTotal   time.Duration
	StrataCPU       time.Duration // both servers' CPU over the refreshes (ingest included)
	VictoriaCPU     time.Duration
	CachedShare     float64 // of Strata's answer points, from its cache
	Checked, Differ int     // Strata's cached answers compared with uncached ones
	Diffs           []string
	Lag             time.Duration // most the data's clock fell behind the wall clock
	// Settle is how long the servers took to become idle after the
	// history write; Settled is false when settleMax ran out first.
	Settle  time.Duration
	Settled bool
	// Cold is a range query of every dashboard query over ColdWindow at
	// ColdStep, asked once after the refreshes at a step no refresh used:
	// Strata through its front end with nothing cached for it,
	// VictoriaMetrics with its cache off (nocache=1).
	ColdWindow, ColdStep     time.Duration
	ColdStrata, ColdVictoria time.Duration
	Duration                 time.Duration
}

// ColdWindow is the range of the cold query: 30 days.
const ColdWindow = 30 * 24 * time.Hour

func (c *DashboardConfig) logf(format string, args ...any) {
	if c.Progress != nil {
		fmt.Fprintf(c.Progress, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}
}

// settleMax bounds the wait for idle servers after the history write.
const settleMax = 3 * time.Minute

// settleQuiet is how long both servers must stay idle: longer than
// Strata's shipping interval (30s), so that blocks cut from the head and
// not yet shipped cannot be missed, and more than its head compaction's
// (10s).
const settleQuiet = 35

// settle waits until every server has used under a tenth of a core in each
// of settleQuiet consecutive seconds, at most limit. Right after the
// history write Strata is cutting and shipping the blocks of a day's head,
// and VictoriaMetrics merging its parts: a backlog a dashboard opened on a
// running server does not meet, and that would otherwise be measured as
// the first refresh's time.
func settle(ctx context.Context, servers []*Server, limit time.Duration) (time.Duration, bool, error) {
	start := time.Now()
	prev := make([]time.Duration, len(servers))
	for i, s := range servers {
		var err error
		if prev[i], err = CPUTime(s.Pid()); err != nil {
			return 0, false, err
		}
	}
	quiet := 0
	for time.Since(start) < limit {
		select {
		case <-ctx.Done():
			return 0, false, ctx.Err()
		case <-time.After(time.Second):
		}
		idle := true
		for i, s := range servers {
			cpu, err := CPUTime(s.Pid())
			if err != nil {
				return 0, false, err
			}
			if cpu-prev[i] > 100*time.Millisecond {
				idle = false
			}
			prev[i] = cpu
		}
		if !idle {
			quiet = 0
			continue
		}
		if quiet++; quiet == settleQuiet {
			return time.Since(start), true, nil
		}
	}
	return time.Since(start), false, nil
}

// dashboardStep is the step Grafana would ask for a window: about 720
// points, at least the scrape interval, a whole number of intervals.
func dashboardStep(w, interval time.Duration) time.Duration {
	s := w / 720
	return max(interval, s/interval*interval)
}

// RunDashboard runs the benchmark.
func RunDashboard(ctx context.Context, c DashboardConfig) (*DashboardResults, error) {
	t0 := time.Now()
	if err := os.RemoveAll(c.WorkDir); err != nil {
		return nil, err
	}
	vm, err := StartVictoriaMetrics(ctx, c.VictoriaBin, filepath.Join(c.WorkDir, "victoria-metrics"))
	if err != nil {
		return nil, err
	}
	defer vm.Stop()
	strata, err := StartStrata(ctx, c.StrataBin, filepath.Join(c.WorkDir, "strata"), "-query.split-interval=24h")
	if err != nil {
		return nil, err
	}
	defer strata.Stop()
	servers := []*Server{strata, vm}

	per := gen.SeriesPerHost()
	hosts := (c.Series + per - 1) / per
	series := gen.NodeExporterSeries(hosts)
	res := &DashboardResults{Hosts: hosts, Series: len(series), Refreshes: c.Refreshes}
	iv := c.Interval.Milliseconds()
	gen := gen.NewGenerator(series, iv, 1)
	enc := newEncoder(series)
	values := make([]float64, len(series))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c.Senders + 2, DisableCompression: true}}
	defer client.CloseIdleConnections()
	send := func(t int64) error {
		gen.Next(t, func(i int, v float64) { values[i] = v })
		var bodies [][]byte
		for lo := 0; lo < len(series); lo += c.BatchSamples {
			hi := min(lo+c.BatchSamples, len(series))
			b, err := enc.v1(lo, hi, t, values)
			if err != nil {
				return err
			}
			bodies = append(bodies, b)
		}
		for _, s := range servers {
			if err := sendBodies(ctx, client, s.URL, bodies, c.Senders); err != nil {
				return fmt.Errorf("%s: %w", s.Name, err)
			}
		}
		return nil
	}
	now := func() int64 { return time.Now().UnixMilli() / iv * iv }
	t := now() - c.History.Milliseconds()
	c.logf("dashboard: %d hosts, %d series; writing %v of history to both", hosts, len(series), c.History)
	// The history, then what the wall clock added meanwhile, until caught up.
	for ; t <= now(); t += iv {
		if err := send(t); err != nil {
			return nil, err
		}
		res.HistorySamples += len(series)
		if (t/iv)%480 == 0 {
			c.logf("dashboard: history at %s", time.UnixMilli(t).UTC().Format(time.DateTime))
		}
	}
	if res.Settle, res.Settled, err = settle(ctx, servers, settleMax); err != nil {
		return nil, err
	}
	c.logf("dashboard: both servers idle after %v (settled: %v)", res.Settle.Round(time.Second), res.Settled)
	// The scrapes the wait let pass.
	for ; t <= now(); t += iv {
		if err := send(t); err != nil {
			return nil, err
		}
		res.HistorySamples += len(series)
	}
	last := t - iv
	if err := forceFlush(ctx, vm); err != nil {
		return nil, err
	}
	c.logf("dashboard: %d history samples written; %d refreshes of %d queries × %d windows", res.HistorySamples, c.Refreshes, len(DashboardQueries), len(c.Windows))

	for _, w := range c.Windows {
		res.Windows = append(res.Windows, DashboardWindow{Window: w, Step: dashboardStep(w, c.Interval)})
	}
	cpu0 := map[*Server]time.Duration{}
	for _, s := range servers {
		if cpu0[s], err = CPUTime(s.Pid()); err != nil {
			return nil, err
		}
	}
	qc := &http.Client{}
	for r := range c.Refreshes {
		// The next scrape, once its time has come; scrapes the wall clock
		// passed meanwhile are written too.
		next := last + iv
		if wait := time.Until(time.UnixMilli(next)); wait > 0 {
			time.Sleep(wait)
		}
		res.Lag = max(res.Lag, time.Duration(now()-next)*time.Millisecond)
		for t := next; t <= max(next, now()); t += iv {
			if err := send(t); err != nil {
				return nil, err
			}
			last = t
		}
		order := servers
		if r%2 == 1 {
			order = []*Server{vm, strata}
		}
		for wi := range res.Windows {
			w := &res.Windows[wi]
			step := w.Step.Milliseconds()
			end := last / step * step
			start := end - w.Window.Milliseconds()
			for _, q := range DashboardQueries {
				for _, s := range order {
					_, took, err := rangeQueryStep(ctx, qc, s.URL, q, start, end, w.Step, nil)
					if err != nil {
						return nil, err
					}
					if s == strata {
						w.Strata += took
						res.StrataTotal += took
						if r == 0 {
							w.StrataFirst += took
						}
					} else {
						w.Victoria += took
						res.VictoriaTotal += took
						if r == 0 {
							w.VictoriaFst += took
						}
					}
				}
			}
		}
		c.logf("dashboard: refresh %d/%d at %s: Strata %v, VictoriaMetrics %v so far", r+1, c.Refreshes, time.UnixMilli(last).UTC().Format(time.TimeOnly), res.StrataTotal.Round(time.Millisecond), res.VictoriaTotal.Round(time.Millisecond))
	}
	for _, s := range servers {
		cpu, err := CPUTime(s.Pid())
		if err != nil {
			return nil, err
		}
		if s == strata {
			res.StrataCPU = cpu - cpu0[s]
		} else {
			res.VictoriaCPU = cpu - cpu0[s]
		}
	}
	cached, err := metricSum(ctx, strata.URL, `strata_results_cache_points_total{`, `source="cache"`)
	if err != nil {
		return nil, err
	}
	evaluated, err := metricSum(ctx, strata.URL, `strata_results_cache_points_total{`, `source="evaluated"`)
	if err != nil {
		return nil, err
	}
	if cached+evaluated > 0 {
		res.CachedShare = cached / (cached + evaluated)
	}
	// Untimed: the last refresh's answers, from the cache, against the same
	// queries answered without it.
	for _, w := range res.Windows {
		step := w.Step.Milliseconds()
		end := last / step * step
		start := end - w.Window.Milliseconds()
		for _, q := range DashboardQueries {
			a, _, err := rangeQueryStep(ctx, qc, strata.URL, q, start, end, w.Step, nil)
			if err != nil {
				return nil, err
			}
			b, _, err := rangeQueryStep(ctx, qc, strata.URL, q, start, end, w.Step, http.Header{"Cache-Control": {"no-cache"}})
			if err != nil {
				return nil, err
			}
			res.Checked++
			if !bytes.Equal(a, b) {
				res.Differ++
				res.Diffs = append(res.Diffs, fmt.Sprintf("%v window, %s: %s", w.Window, q, diffMatrix(dataOf(b), dataOf(a))))
			}
		}
	}
	// The cold range query, alternating which system goes first.
	res.ColdWindow, res.ColdStep = ColdWindow, dashboardStep(ColdWindow, c.Interval)
	coldEnd := last / res.ColdStep.Milliseconds() * res.ColdStep.Milliseconds()
	coldStart := coldEnd - ColdWindow.Milliseconds()
	for i, q := range DashboardQueries {
		order := servers
		if i%2 == 1 {
			order = []*Server{vm, strata}
		}
		for _, s := range order {
			if s == strata {
				_, took, err := rangeQueryStep(ctx, qc, s.URL, q, coldStart, coldEnd, res.ColdStep, nil)
				if err != nil {
					return nil, err
				}
				res.ColdStrata += took
			} else {
				_, took, err := rangeQueryForm(ctx, qc, s.URL, q, coldStart, coldEnd, res.ColdStep, nil, url.Values{"nocache": {"1"}})
				if err != nil {
					return nil, err
				}
				res.ColdVictoria += took
			}
		}
	}
	c.logf("dashboard: cold %v range at step %v: Strata %v, VictoriaMetrics %v", ColdWindow, res.ColdStep, res.ColdStrata.Round(time.Millisecond), res.ColdVictoria.Round(time.Millisecond))
	res.Duration = time.Since(t0)
	return res, nil
}

// sendBodies posts bodies (remote write 1.0) to url with senders connections.
func sendBodies(ctx context.Context, client *http.Client, base string, bodies [][]byte, senders int) error {
	work := make(chan []byte)
	errs := make(chan error, senders)
	var wg sync.WaitGroup
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				if err := post(ctx, client, base, RW1, b); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
feed:
	for _, b := range bodies {
		select {
		case work <- b:
		case err := <-errs:
			errs <- err
			break feed
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	return <-errs
}

// rangeQueryStep is rangeQuery with a step and extra headers.
func rangeQueryStep(ctx context.Context, client *http.Client, base, q string, start, end int64, step time.Duration, h http.Header) ([]byte, time.Duration, error) {
	return rangeQueryForm(ctx, client, base, q, start, end, step, h, nil)
}

// rangeQueryForm is rangeQueryStep with extra form values.
func rangeQueryForm(ctx context.Context, client *http.Client, base, q string, start, end int64, step time.Duration, h http.Header, extra url.Values) ([]byte, time.Duration, error) {
	v := url.Values{
		"query": {q},
		"start": {strconv.FormatFloat(float64(start)/1000, 'f', -1, 64)},
		"end":   {strconv.FormatFloat(float64(end)/1000, 'f', -1, 64)},
		"step":  {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)},
	}
	for k, vs := range extra {
		v[k] = vs
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/query_range", strings.NewReader(v.Encode()))
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, vs := range h {
		req.Header[k] = vs
	}
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("query %s: %w", q, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(t0)
	if err != nil {
		return nil, 0, fmt.Errorf("query %s: %w", q, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("query %s on %s: status %d: %.300s", q, base, resp.StatusCode, body)
	}
	return body, took, nil
}

// metricSum sums the samples of /metrics whose line starts with prefix and contains match.
func metricSum(ctx context.Context, base, prefix, match string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var sum float64
	for line := range strings.SplitSeq(string(b), "\n") {
		if !strings.HasPrefix(line, prefix) || !strings.Contains(line, match) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum += v
	}
	return sum, nil
}

// forceFlush makes VictoriaMetrics' recently written data searchable.
func forceFlush(ctx context.Context, s *Server) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/internal/force_flush", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("flush %s: %w", s.Name, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return nil
}

// WriteDashboard writes the Markdown report of a run.
func WriteDashboard(w io.Writer, c DashboardConfig, r *DashboardResults, machine, strataVersion, vmVersion string) {
	fmt.Fprintf(w, "# Dashboard refresh: Strata vs VictoriaMetrics\n\n")
	fmt.Fprintf(w, "Generated by `make bench-dashboard` (`strata-bench -dashboard`) on %s.\n\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "- Machine: %s\n- Strata: %s, results cache in memory (defaults: split by day, `-query.results-cache.max-freshness=10m`)\n- VictoriaMetrics: %s, defaults (rollup result cache on, `-search.cacheTimestampOffset=5m`)\n", machine, strataVersion, vmVersion)
	fmt.Fprintf(w, "- Data: %d node-exporter hosts, %d series, one scrape every %v; %v of history (%d samples) written first, then one scrape before each refresh, timestamped by the wall clock (at most %v behind it)\n",
		r.Hosts, r.Series, c.Interval, c.History, r.HistorySamples, r.Lag)
	settled := "both idle"
	if !r.Settled {
		settled = "not both idle yet, the wait's limit"
	}
	fmt.Fprintf(w, "- Before the first refresh, the wait for both servers to finish the history's background work (Strata cutting and shipping a day of blocks, VictoriaMetrics merging parts; idle: under a tenth of a core in each of %d consecutive seconds): %v, %s\n", settleQuiet, r.Settle.Round(time.Second), settled)
	fmt.Fprintf(w, "- Dashboard: %d refreshes, every %v, of %d queries over each window, both systems in the same refresh (alternating which goes first):\n\n", r.Refreshes, c.Interval, len(DashboardQueries))
	for _, q := range DashboardQueries {
		fmt.Fprintf(w, "  - `%s`\n", q)
	}
	fmt.Fprintf(w, "\n| window | step | Strata total | VictoriaMetrics total | ratio | Strata first refresh | VictoriaMetrics first refresh |\n|---|---|---|---|---|---|---|\n")
	for _, x := range r.Windows {
		fmt.Fprintf(w, "| %v | %v | %v | %v | %.2f | %v | %v |\n", x.Window, x.Step, x.Strata.Round(time.Millisecond), x.Victoria.Round(time.Millisecond),
			x.Strata.Seconds()/x.Victoria.Seconds(), x.StrataFirst.Round(time.Millisecond), x.VictoriaFst.Round(time.Millisecond))
	}
	fmt.Fprintf(w, "| **all** | | **%v** | **%v** | **%.2f** | | |\n\n", r.StrataTotal.Round(time.Millisecond), r.VictoriaTotal.Round(time.Millisecond), r.StrataTotal.Seconds()/r.VictoriaTotal.Seconds())
	fmt.Fprintf(w, "- Server CPU during the refreshes (queries and the refreshes' ingest): Strata %v, VictoriaMetrics %v.\n", r.StrataCPU.Round(time.Millisecond), r.VictoriaCPU.Round(time.Millisecond))
	fmt.Fprintf(w, "- Share of Strata's answer points served from its cache: %.1f%%.\n", 100*r.CachedShare)
	fmt.Fprintf(w, "- Strata's answers of the last refresh, from the cache, against the same queries without it (`Cache-Control: no-cache`): %d of %d identical byte for byte.\n", r.Checked-r.Differ, r.Checked)
	for _, d := range r.Diffs {
		fmt.Fprintf(w, "  - %s\n", d)
	}
	fmt.Fprintf(w, "\nCold range query: each of the %d queries once over the last %v at step %v (a step no refresh used), after the refreshes; the data holds the run's %v of history and refreshes, so the range is mostly empty before it. Strata answers through its front end with nothing cached for it (split by day, evaluated and stored), VictoriaMetrics with its cache off (`nocache=1`):\n\n", len(DashboardQueries), r.ColdWindow, r.ColdStep, c.History)
	fmt.Fprintf(w, "| range | step | Strata | VictoriaMetrics | ratio |\n|---|---|---|---|---|\n| %v | %v | %v | %v | %.2f |\n", r.ColdWindow, r.ColdStep, r.ColdStrata.Round(time.Millisecond), r.ColdVictoria.Round(time.Millisecond), r.ColdStrata.Seconds()/r.ColdVictoria.Seconds())
	fmt.Fprintf(w, "\nRun time %v.\n", r.Duration.Round(time.Second))
}

// dataOf is the data field of an API answer.
func dataOf(body []byte) json.RawMessage {
	var r struct {
		Data json.RawMessage `json:"data"`
	}
	_ = json.Unmarshal(body, &r)
	return r.Data
}
