import { useCallback, useEffect, useMemo, useRef, useState } from 'react';

import { call, Detector, Labels, MatrixSeries, QueryResult } from '../api';
import { Chart, ChartBand, ChartSeries } from '../components/Chart';
import { ErrorBox, useAsync } from '../components/common';
import { PromQLEditor } from '../components/PromQLEditor';
import { Range, RangeControls, rangeFromParams, rangeParams, resolveRange } from '../components/RangeControls';
import { formatValue, seriesName } from '../format';
import { alignMatrix } from '../series';
import { readParams, writeParams } from '../url';

// The series of one input series in an answer of
// /api/v1/anomaly/query_range, told apart by the "anomaly" label.
interface Scored {
  name: string;
  labels: Labels;
  value?: MatrixSeries;
  upper?: MatrixSeries;
  lower?: MatrixSeries;
  score?: MatrixSeries;
  peak: number; // highest score, -1 without any
}

function groupScored(result: MatrixSeries[]): Scored[] {
  const byName = new Map<string, Scored>();
  for (const s of result) {
    const { anomaly, ...labels } = s.metric;
    const name = seriesName(labels);
    let g = byName.get(name);
    if (!g) {
      g = { name, labels, peak: -1 };
      byName.set(name, g);
    }
    if (anomaly === 'value' || anomaly === 'upper' || anomaly === 'lower' || anomaly === 'score') {
      g[anomaly] = s;
    }
  }
  for (const g of byName.values()) {
    for (const [, v] of g.score?.values ?? []) {
      const f = parseFloat(v);
      if (Number.isFinite(f) && f > g.peak) {
        g.peak = f;
      }
    }
  }
  // Most anomalous first.
  return [...byName.values()].sort((a, b) => b.peak - a.peak || a.name.localeCompare(b.name));
}

const colors = { value: '#3274d9', band: 'rgba(55, 163, 92, 0.22)', edge: 'rgba(55, 163, 92, 0.7)', score: '#d44a3a', threshold: '#d44a3a' };

export function AnomalyPage({ tenant }: { tenant: string }) {
  const initial = useMemo(() => readParams(), []);
  const [expr, setExpr] = useState(initial.get('expr') ?? '');
  const [detector, setDetector] = useState(initial.get('detector') ?? '');
  const [params, setParams] = useState<Record<string, string>>(() => {
    const p: Record<string, string> = {};
    initial.forEach((v, k) => {
      if (k.startsWith('p.')) {
        p[k.slice(2)] = v;
      }
    });
    return p;
  });
  const [history, setHistory] = useState(initial.get('history') ?? '');
  const [range, setRange] = useState<Range>(rangeFromParams(initial, 6 * 3600 * 1000));
  const [result, setResult] = useState<{ groups: Scored[]; start: number; end: number; step: number } | null>(null);
  const [selected, setSelected] = useState(0);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(false);
  const ctrl = useRef<AbortController | null>(null);

  const detectors = useAsync((signal) => call<{ default: string; detectors: Detector[] }>('api/v1/anomaly/detectors', {}, { signal }).then((a) => a.data), []);
  const active = detector || detectors.data?.default || '';
  const kind = detectors.data?.detectors.find((d) => d.name === active);

  const run = useCallback(
    async (push: boolean, det = detector, ps = params, r = range) => {
      const given: Record<string, string> = {};
      for (const [k, v] of Object.entries(ps)) {
        if (v.trim() !== '') {
          given[k] = v.trim();
        }
      }
      const prefixed = Object.fromEntries(Object.entries(given).map(([k, v]) => [`p.${k}`, v]));
      writeParams({ expr, detector: det, ...prefixed, history, ...rangeParams(r), tenant: tenant || undefined }, push);
      ctrl.current?.abort();
      if (expr.trim() === '') {
        return;
      }
      const c = new AbortController();
      ctrl.current = c;
      setLoading(true);
      try {
        const { start, end, step } = resolveRange(r);
        const answer = await call<QueryResult>(
          'api/v1/anomaly/query_range',
          { query: expr, start: String(start), end: String(end), step: String(step), detector: det || undefined, history: history || undefined, ...given },
          { post: true, signal: c.signal },
        );
        if (c.signal.aborted) {
          return;
        }
        const data = answer.data;
        setResult({ groups: data.resultType === 'matrix' ? groupScored(data.result) : [], start, end, step });
        setSelected(0);
        setError(null);
      } catch (err) {
        if (!c.signal.aborted) {
          setError(err);
          setResult(null);
        }
      } finally {
        if (!c.signal.aborted) {
          setLoading(false);
        }
      }
    },
    [expr, detector, params, history, range, tenant],
  );

  useEffect(() => {
    if (expr.trim() !== '') {
      void run(false);
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [tenant]);

  const group = result?.groups[selected];
  return (
    <div className="page" data-testid="anomaly-page">
      <div className="query-bar">
        <PromQLEditor value={expr} onChange={setExpr} onExecute={() => void run(true)} tenant={tenant} placeholderText="Expression to score, e.g. rate(http_requests_total[5m])" />
        <button type="button" className="primary" onClick={() => void run(true)} disabled={loading} data-testid="execute">
          {loading ? 'Scoring…' : 'Score'}
        </button>
      </div>
      <div className="toolbar detector-bar">
        <label>
          Detector{' '}
          <select
            value={active}
            data-testid="detector"
            onChange={(e) => {
              setDetector(e.target.value);
              setParams({});
            }}
          >
            {detectors.data?.detectors.map((d) => (
              <option key={d.name} value={d.name}>
                {d.name}
                {d.name === detectors.data?.default ? ' (default)' : ''}
              </option>
            ))}
          </select>
        </label>
        {kind?.params.map((p) => (
          <label key={p.name} title={p.help}>
            {p.name}{' '}
            <input className="param" value={params[p.name] ?? ''} placeholder={p.default || '—'} onChange={(e) => setParams({ ...params, [p.name]: e.target.value })} onKeyDown={(e) => e.key === 'Enter' && void run(true)} />
          </label>
        ))}
        <label title="How far before the range the detector learns (default: what the detector needs)">
          history <input className="param" value={history} placeholder="auto" onChange={(e) => setHistory(e.target.value)} onKeyDown={(e) => e.key === 'Enter' && void run(true)} />
        </label>
      </div>
      {kind && <p className="hint detector-help">{kind.help}</p>}
      <div className="toolbar">
        <RangeControls
          value={range}
          onChange={(r) => {
            setRange(r);
            void run(true, detector, params, r);
          }}
        />
      </div>
      <ErrorBox error={error ?? detectors.error} />
      {result && result.groups.length === 0 && <p className="hint">The expression returned no series for this range.</p>}
      {result && group && (
        <div className="result" data-testid="anomaly-result" data-series-count={result.groups.length}>
          <div className="toolbar">
            <label>
              Series{' '}
              <select value={selected} onChange={(e) => setSelected(parseInt(e.target.value, 10))} data-testid="anomaly-series">
                {result.groups.map((g, i) => (
                  <option key={g.name} value={i}>
                    {g.name} — peak score {g.peak < 0 ? 'none' : formatValue(g.peak)}
                  </option>
                ))}
              </select>
            </label>
            <span className="result-stats">
              {result.groups.length} series, most anomalous first · step {result.step}s
            </span>
          </div>
          <ScoredCharts
            group={group}
            start={result.start}
            end={result.end}
            step={result.step}
            onZoom={(from, to) => {
              const r = { rangeMs: Math.max(Math.round(to - from), 1) * 1000, endMs: Math.round(to) * 1000, stepMs: null };
              setRange(r);
              void run(true, detector, params, r);
            }}
          />
        </div>
      )}
      {!result && !error && (
        <p className="hint">
          Scores an expression with one of Strata's anomaly detectors over the range, as an anomaly rule evaluated at every step would, and draws each series with its normal band and its score (above 1: outside the band).
        </p>
      )}
    </div>
  );
}

function ScoredCharts({ group, start, end, step, onZoom }: { group: Scored; start: number; end: number; step: number; onZoom: (from: number, to: number) => void }) {
  const { xs, valueSeries, bands, bandPoints, scoreSeries } = useMemo(() => {
    const parts = [group.value, group.upper, group.lower, group.score].map((s) => s ?? { metric: {}, values: [] });
    const aligned = alignMatrix(parts, start, end, step);
    const [value, upper, lower, score] = aligned.ys;
    const vs: ChartSeries[] = [
      { label: 'upper', values: upper, color: colors.edge, width: 1, quiet: true },
      { label: 'lower', values: lower, color: colors.edge, width: 1, quiet: true },
      { label: group.name, values: value, color: colors.value, width: 1.5 },
    ];
    const bp = upper.filter((v, i) => v !== null && lower[i] !== null).length;
    return {
      xs: aligned.xs,
      valueSeries: vs,
      bands: [{ upper: 0, lower: 1, fill: colors.band }] as ChartBand[],
      bandPoints: bp,
      scoreSeries: [{ label: 'score', values: score, color: colors.score, width: 1.25 }] as ChartSeries[],
    };
  }, [group, start, end, step]);
  const rules = useMemo(() => [{ value: 1, color: colors.threshold }], []);
  return (
    <div data-testid="anomaly-charts" data-band-points={bandPoints}>
      <h3 className="chart-title">
        Value and normal band <span className="hint">({bandPoints} points with a band)</span>
      </h3>
      <Chart xs={xs} series={valueSeries} bands={bands} onZoom={onZoom} testId="anomaly-value-chart" />
      <h3 className="chart-title">Anomaly score (dashed: 1, the band's edge)</h3>
      <Chart xs={xs} series={scoreSeries} height={160} rules={rules} onZoom={onZoom} testId="anomaly-score-chart" />
    </div>
  );
}
