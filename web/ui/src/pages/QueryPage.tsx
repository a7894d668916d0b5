import { useCallback, useEffect, useMemo, useRef, useState } from 'react';

import { Answer, call, MatrixSeries, QueryResult, VectorSample } from '../api';
import { Chart, ChartSeries } from '../components/Chart';
import { ErrorBox, Notes } from '../components/common';
import { PromQLEditor } from '../components/PromQLEditor';
import { Range, RangeControls, rangeFromParams, rangeParams, resolveRange } from '../components/RangeControls';
import { formatValue, seriesName } from '../format';
import { alignMatrix, sampleValue, seriesColor } from '../series';
import { formatTime } from '../time';
import { readParams, writeParams } from '../url';

type Tab = 'graph' | 'table';

// Rows and legend entries drawn at most: a larger answer is counted, and
// drawn in the chart whole, but not listed.
const maxRows = 1000;
const maxLegend = 200;

interface Result {
  tab: Tab;
  answer: Answer<QueryResult>;
  tookMs: number;
  start: number;
  end: number;
  step: number;
}

export function QueryPage({ tenant }: { tenant: string }) {
  const initial = useMemo(() => readParams(), []);
  const [expr, setExpr] = useState(initial.get('expr') ?? '');
  const [tab, setTab] = useState<Tab>(initial.get('tab') === 'table' ? 'table' : 'graph');
  const [range, setRange] = useState<Range>(rangeFromParams(initial));
  const [result, setResult] = useState<Result | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(false);
  const ctrl = useRef<AbortController | null>(null);

  const run = useCallback(
    async (e: string, t: Tab, r: Range, push: boolean) => {
      writeParams({ expr: e, tab: t, ...rangeParams(r), tenant: tenant || undefined }, push);
      ctrl.current?.abort();
      if (e.trim() === '') {
        setResult(null);
        setError(null);
        return;
      }
      const c = new AbortController();
      ctrl.current = c;
      setLoading(true);
      const began = performance.now();
      try {
        const { start, end, step } = resolveRange(r);
        const answer =
          t === 'graph'
            ? await call<QueryResult>('api/v1/query_range', { query: e, start: String(start), end: String(end), step: String(step) }, { post: true, signal: c.signal })
            : await call<QueryResult>('api/v1/query', { query: e, time: String(r.endMs === null ? Date.now() / 1000 : r.endMs / 1000) }, { post: true, signal: c.signal });
        if (!c.signal.aborted) {
          setResult({ tab: t, answer, tookMs: performance.now() - began, start, end, step });
          setError(null);
        }
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
    [tenant],
  );

  // A shared link runs its query when opened, and again when the tenant changes.
  useEffect(() => {
    if (expr.trim() !== '') {
      void run(expr, tab, range, false);
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [tenant]);

  const execute = () => void run(expr, tab, range, true);

  return (
    <div className="page" data-testid="query-page">
      <div className="query-bar">
        <PromQLEditor value={expr} onChange={setExpr} onExecute={execute} tenant={tenant} />
        <button type="button" className="primary" onClick={execute} disabled={loading} data-testid="execute">
          {loading ? 'Running…' : 'Execute'}
        </button>
      </div>
      <div className="toolbar">
        <div className="tabs" role="tablist">
          {(['graph', 'table'] as Tab[]).map((t) => (
            <button
              key={t}
              role="tab"
              type="button"
              aria-selected={tab === t}
              className={tab === t ? 'tab active' : 'tab'}
              onClick={() => {
                setTab(t);
                void run(expr, t, range, true);
              }}
            >
              {t === 'graph' ? 'Graph' : 'Table'}
            </button>
          ))}
        </div>
        <RangeControls
          value={range}
          showStep={tab === 'graph'}
          onChange={(r) => {
            setRange(r);
            void run(expr, tab, r, true);
          }}
        />
      </div>
      <ErrorBox error={error} />
      {result && <Notes warnings={result.answer.warnings} infos={result.answer.infos} />}
      {result && (
        <ResultView
          result={result}
          onZoom={(from, to) => {
            const r = { rangeMs: Math.max(Math.round(to - from), 1) * 1000, endMs: Math.round(to) * 1000, stepMs: null };
            setRange(r);
            void run(expr, tab, r, true);
          }}
        />
      )}
      {!result && !error && <p className="hint">Enter a PromQL expression, such as <code>up</code> or <code>rate(http_requests_total[5m])</code>, and press Enter. Metric names, labels and values complete as you type.</p>}
    </div>
  );
}

function ResultView({ result, onZoom }: { result: Result; onZoom: (from: number, to: number) => void }) {
  const data = result.answer.data;
  const count = data.resultType === 'matrix' || data.resultType === 'vector' ? data.result.length : 1;
  return (
    <div className="result" data-testid="result" data-result-type={data.resultType} data-result-count={count}>
      <div className="result-stats">
        {count} {count === 1 ? 'result' : 'results'} · {Math.round(result.tookMs)} ms
        {result.tab === 'graph' && ` · step ${result.step}s`}
      </div>
      {result.tab === 'graph' && data.resultType === 'matrix' ? (
        <Graph series={data.result} start={result.start} end={result.end} step={result.step} onZoom={onZoom} />
      ) : (
        <Table data={data} />
      )}
    </div>
  );
}

function Graph({ series, start, end, step, onZoom }: { series: MatrixSeries[]; start: number; end: number; step: number; onZoom: (from: number, to: number) => void }) {
  const { xs, chartSeries } = useMemo(() => {
    const aligned = alignMatrix(series, start, end, step);
    const cs: ChartSeries[] = series.map((s, i) => ({ label: seriesName(s.metric), values: aligned.ys[i], color: seriesColor(i) }));
    return { xs: aligned.xs, chartSeries: cs };
  }, [series, start, end, step]);
  const histograms = series.filter((s) => s.histograms?.length).length;
  if (series.length === 0) {
    return <p className="hint">The query returned no series for this range.</p>;
  }
  return (
    <>
      {histograms > 0 && <div className="info-box">{histograms} series hold native histograms, which the graph does not draw: see the table.</div>}
      <Chart xs={xs} series={chartSeries} onZoom={onZoom} testId="query-chart" />
      <ul className="legend" data-testid="legend">
        {chartSeries.slice(0, maxLegend).map((s, i) => (
          <li key={i}>
            <span className="swatch" style={{ background: s.color }} />
            {s.label}
          </li>
        ))}
        {chartSeries.length > maxLegend && <li className="more">… and {chartSeries.length - maxLegend} more series</li>}
      </ul>
    </>
  );
}

function Table({ data }: { data: QueryResult }) {
  switch (data.resultType) {
    case 'scalar':
    case 'string':
      return (
        <table className="data">
          <tbody>
            <tr>
              <td>{data.resultType}</td>
              <td className="num">{data.resultType === 'scalar' ? formatValue(sampleValue(data.result[1]) ?? NaN) : data.result[1]}</td>
            </tr>
          </tbody>
        </table>
      );
    case 'vector':
      return <VectorTable rows={data.result} />;
    case 'matrix':
      return <MatrixTable rows={data.result} />;
  }
}

function VectorTable({ rows }: { rows: VectorSample[] }) {
  if (rows.length === 0) {
    return <p className="hint">Empty result: no series matched at this time.</p>;
  }
  return (
    <>
      <table className="data" data-testid="result-table">
        <thead>
          <tr>
            <th>Series</th>
            <th className="num">Value</th>
          </tr>
        </thead>
        <tbody>
          {rows.slice(0, maxRows).map((r, i) => (
            <tr key={i}>
              <td className="series">{seriesName(r.metric)}</td>
              <td className="num">{r.value ? r.value[1] : r.histogram ? `histogram: count ${r.histogram[1].count}, sum ${r.histogram[1].sum}` : ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {rows.length > maxRows && <p className="hint">Showing {maxRows} of {rows.length} series.</p>}
    </>
  );
}

function MatrixTable({ rows }: { rows: MatrixSeries[] }) {
  return (
    <>
      <table className="data" data-testid="result-table">
        <thead>
          <tr>
            <th>Series</th>
            <th>Samples</th>
          </tr>
        </thead>
        <tbody>
          {rows.slice(0, maxRows).map((r, i) => (
            <tr key={i}>
              <td className="series">{seriesName(r.metric)}</td>
              <td className="samples">
                {(r.values ?? []).slice(-10).map(([t, v]) => (
                  <div key={t}>
                    {v} @ {formatTime(t * 1000)}
                  </div>
                ))}
                {(r.values?.length ?? 0) > 10 && <div className="more">({r.values!.length - 10} earlier samples)</div>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {rows.length > maxRows && <p className="hint">Showing {maxRows} of {rows.length} series.</p>}
    </>
  );
}
