import { useEffect, useMemo, useRef, useState } from 'react';

import { BlockMeta, BuildInfo, call, CompactorStatus, mergeGroups, RuleGroup, RuntimeInfo, TenantInfo, TenantsAnswer } from '../api';
import { ErrorBox, Section, useAsync } from '../components/common';
import { formatBytes, formatSI } from '../format';
import { ago, formatDuration, formatTime } from '../time';

// Counters of one tenant at one answer, for rates.
interface Reading {
  time: number;
  ingested: number;
  rejected: number;
}

// Rates are taken over the answers of the last minute.
const rateWindow = 60;
const pollSeconds = 5;

function sum(m: Record<string, number>): number {
  return Object.values(m).reduce((a, b) => a + b, 0);
}

function resolutionName(ms: number): string {
  return ms === 0 ? 'raw' : formatDuration(ms);
}

export function StatusPage({ tenant, onTenant }: { tenant: string; onTenant: (t: string) => void }) {
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const t = setInterval(() => setTick((x) => x + 1), pollSeconds * 1000);
    return () => clearInterval(t);
  }, []);
  const slow = Math.floor(tick / 6); // every 30s

  const build = useAsync((signal) => call<BuildInfo>('api/v1/status/buildinfo', {}, { signal }).then((a) => a.data), []);
  const runtime = useAsync((signal) => call<RuntimeInfo>('api/v1/status/runtimeinfo', {}, { signal }).then((a) => a.data), [tenant, slow]);
  const wal = useAsync((signal) => call<{ min: number; max: number; current: number }>('api/v1/status/walreplay', {}, { signal }).then((a) => a.data), [tenant, slow]);
  const tenants = useAsync((signal) => call<TenantsAnswer>('api/v1/status/tenants', {}, { signal }).then((a) => a.data), [tick]);
  const blocks = useAsync((signal) => call<{ blocks: BlockMeta[] }>('api/v1/status/tsdb/blocks', {}, { signal }).then((a) => a.data.blocks), [tenant, slow]);
  const compactor = useAsync((signal) => call<CompactorStatus>('api/v1/status/compactor', {}, { signal }).then((a) => a.data), [tenant, slow]);
  const rules = useAsync(
    async (signal) => {
      const [r, a] = await Promise.all([
        call<{ groups: RuleGroup[] }>('api/v1/rules', {}, { signal }),
        call<{ groups: RuleGroup[] }>('api/v1/anomaly/rules', {}, { signal }).catch(() => ({ data: { groups: [] as RuleGroup[] } })),
      ]);
      return mergeGroups(r.data.groups, a.data.groups);
    },
    [tenant, slow],
  );
  const flags = useAsync((signal) => call<Record<string, string>>('api/v1/status/flags', {}, { signal }).then((a) => a.data), []);

  // Readings of each tenant's counters, for rates over the last minute.
  const readings = useRef(new Map<string, Reading[]>());
  const rates = useMemo(() => {
    const out = new Map<string, { ingest: number; reject: number; over: number }>();
    const a = tenants.data;
    if (!a) {
      return out;
    }
    for (const t of a.tenants) {
      const list = readings.current.get(t.tenant) ?? [];
      if (list.length === 0 || list[list.length - 1].time < a.time) {
        list.push({ time: a.time, ingested: sum(t.ingested), rejected: sum(t.rejected) });
      }
      while (list.length > 2 && a.time - list[0].time > rateWindow) {
        list.shift();
      }
      readings.current.set(t.tenant, list);
      const first = list[0];
      const last = list[list.length - 1];
      const dt = last.time - first.time;
      // A counter going down is a restart of the process: no rate across it.
      if (dt > 0 && last.ingested >= first.ingested && last.rejected >= first.rejected) {
        out.set(t.tenant, { ingest: (last.ingested - first.ingested) / dt, reject: (last.rejected - first.rejected) / dt, over: dt });
      }
    }
    return out;
  }, [tenants.data]);

  return (
    <div className="page status" data-testid="status-page">
      <div className="status-grid">
        <Section title="Strata" testId="status-build">
          <ErrorBox error={build.error ?? runtime.error} />
          <dl className="facts">
            <dt>Version</dt>
            <dd data-testid="version">{build.data?.version ?? '…'}</dd>
            <dt>Revision</dt>
            <dd>
              {build.data?.revision || '—'} {build.data?.branch ? `(${build.data.branch})` : ''}
            </dd>
            <dt>Built</dt>
            <dd>
              {build.data?.buildDate || '—'} {build.data?.goVersion ? `with ${build.data.goVersion}` : ''}
            </dd>
            <dt>Started</dt>
            <dd>{runtime.data?.startTime ? `${formatTime(Date.parse(runtime.data.startTime))} (${ago(Date.parse(runtime.data.startTime))})` : '…'}</dd>
            <dt>Host</dt>
            <dd>{runtime.data?.hostname}</dd>
            <dt>Goroutines</dt>
            <dd>{runtime.data?.goroutineCount}</dd>
            <dt>GOMAXPROCS, GOGC, GOMEMLIMIT</dt>
            <dd>
              {runtime.data ? `${runtime.data.GOMAXPROCS}, ${runtime.data.GOGC || 'default'}, ${runtime.data.GOMEMLIMIT >= 2 ** 62 ? 'none' : formatBytes(runtime.data.GOMEMLIMIT)}` : ''}
            </dd>
            <dt>Retention ({tenant || 'default tenant'})</dt>
            <dd>{runtime.data?.storageRetention}</dd>
            <dt>Rules and overrides loaded</dt>
            <dd>
              {runtime.data ? (
                <>
                  <span className={`badge ${runtime.data.reloadConfigSuccess ? 'state-ok' : 'state-error'}`}>{runtime.data.reloadConfigSuccess ? 'ok' : 'last reload failed'}</span>
                  {runtime.data.lastConfigTime && !runtime.data.lastConfigTime.startsWith('0001') ? ` ${ago(Date.parse(runtime.data.lastConfigTime))}` : ''}
                </>
              ) : null}
            </dd>
            <dt>WAL replay ({tenant || 'default tenant'})</dt>
            <dd>{wal.data ? (wal.data.max === 0 && wal.data.current === 0 ? 'no WAL segment replayed since start' : `segments ${wal.data.min}–${wal.data.max}, at ${wal.data.current}${wal.data.current >= wal.data.max ? ' (done)' : ''}`) : ''}</dd>
            <dt>WAL corruptions</dt>
            <dd>{runtime.data?.corruptionCount}</dd>
          </dl>
        </Section>
        <CompactorSection status={compactor.data} error={compactor.error} tenant={tenant} />
        <RulesSection groups={rules.data} error={rules.error} />
      </div>
      <Section title="Tenants" testId="status-tenants" aside={<span className="hint">rates over the last {rateWindow}s of this page, refreshed every {pollSeconds}s</span>}>
        <ErrorBox error={tenants.error} />
        <TenantsTable tenants={tenants.data?.tenants ?? []} rates={rates} selected={tenant} onTenant={onTenant} />
      </Section>
      <BlocksSection blocks={blocks.data} error={blocks.error} tenant={tenant} />
      <FlagsSection flags={flags.data} error={flags.error} />
    </div>
  );
}

function TenantsTable({ tenants, rates, selected, onTenant }: { tenants: TenantInfo[]; rates: Map<string, { ingest: number; reject: number; over: number }>; selected: string; onTenant: (t: string) => void }) {
  if (tenants.length === 0) {
    return <p className="hint">No tenant yet: nothing has been written.</p>;
  }
  return (
    <table className="data" data-testid="tenants-table">
      <thead>
        <tr>
          <th>Tenant</th>
          <th className="num">Active series</th>
          <th className="num">Ingest (samples/s)</th>
          <th className="num">Rejected (/s)</th>
          <th>Rejections since start</th>
          <th className="num">Shipping backlog</th>
          <th className="num">Bucket blocks</th>
          <th>Head</th>
        </tr>
      </thead>
      <tbody>
        {tenants.map((t) => {
          const r = rates.get(t.tenant);
          return (
            <tr key={t.tenant} className={t.tenant === selected ? 'selected' : ''} data-tenant={t.tenant}>
              <td>
                <button type="button" className="link" onClick={() => onTenant(t.tenant)} title="Use this tenant in every page">
                  {t.tenant}
                </button>
                {t.bucketOnly ? (
                  <span className="badge state-unknown" title="Blocks in the bucket, nothing on this Strata's disk: written through another Strata">bucket only</span>
                ) : (
                  !t.open && <span className="badge state-inactive" title="Its TSDB is closed while idle; it opens on the next write or query">idle</span>
                )}
                {t.openError && <div className="error-text">{t.openError}</div>}
              </td>
              <td className="num">
                {t.open ? formatSI(t.headSeries) : '—'}
                {t.maxActiveSeries > 0 && <span className="hint"> / {formatSI(t.maxActiveSeries)}</span>}
              </td>
              <td className="num" data-testid="ingest-rate">
                {r ? formatSI(r.ingest) : <span className="hint">measuring…</span>}
              </td>
              <td className={`num ${r && r.reject > 0 ? 'error-text' : ''}`}>{r ? formatSI(r.reject) : ''}</td>
              <td>
                {Object.entries(t.rejected)
                  .filter(([, n]) => n > 0)
                  .map(([reason, n]) => `${reason}: ${formatSI(n)}`)
                  .join(', ') || <span className="hint">none</span>}
              </td>
              <td className={`num ${t.pendingBlocks > 0 ? 'warn-text' : ''}`}>{t.open ? t.pendingBlocks : '—'}</td>
              <td className="num">{t.bucketBlocks}</td>
              <td className="when">{t.open && t.headMaxTime > 0 ? `${formatTime(t.headMinTime)} – ${formatTime(t.headMaxTime)}` : ''}</td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

function BlocksSection({ blocks, error, tenant }: { blocks?: BlockMeta[]; error: unknown; tenant: string }) {
  const [showAll, setShowAll] = useState(false);
  const byRes = useMemo(() => {
    const m = new Map<number, BlockMeta[]>();
    for (const b of blocks ?? []) {
      const r = b.strata?.resolution ?? 0;
      m.set(r, [...(m.get(r) ?? []), b]);
    }
    return [...m.entries()].sort((a, b) => a[0] - b[0]);
  }, [blocks]);
  const list = blocks ?? [];
  const shown = showAll ? list : list.slice(0, 200);
  const span = list.reduce((s, b) => [Math.min(s[0], b.minTime), Math.max(s[1], b.maxTime)], [Infinity, -Infinity]);
  return (
    <Section title={`Blocks in the bucket (${tenant || 'default tenant'})`} testId="status-blocks" aside={<span className="hint">as the store reads them: shipped by this Strata or found at the last bucket sync</span>}>
      <ErrorBox error={error} />
      {list.length === 0 ? (
        <p className="hint">No block in the bucket yet. The head is cut into blocks every block duration (2h by default), or at once by POST /api/v1/admin/flush.</p>
      ) : (
        <>
          <table className="data" data-testid="blocks-summary">
            <thead>
              <tr>
                <th>Resolution</th>
                <th className="num">Blocks</th>
                <th>From</th>
                <th>To</th>
                <th className="num">Samples</th>
                <th>Timeline</th>
              </tr>
            </thead>
            <tbody>
              {byRes.map(([res, bs]) => (
                <tr key={res}>
                  <td>{resolutionName(res)}</td>
                  <td className="num">{bs.length}</td>
                  <td className="when">{formatTime(bs.reduce((m, b) => Math.min(m, b.minTime), Infinity))}</td>
                  <td className="when">{formatTime(bs.reduce((m, b) => Math.max(m, b.maxTime), -Infinity))}</td>
                  <td className="num">{formatSI(bs.reduce((a, b) => a + (b.stats?.numSamples ?? 0), 0))}</td>
                  <td className="timeline-cell">
                    <svg className="timeline" viewBox="0 0 1000 12" preserveAspectRatio="none" role="img" aria-label={`${bs.length} ${resolutionName(res)} blocks`}>
                      {bs.map((b) => (
                        <rect key={b.ulid} x={((b.minTime - span[0]) / (span[1] - span[0])) * 1000} width={Math.max(((b.maxTime - b.minTime) / (span[1] - span[0])) * 1000 - 1, 1)} y={1} height={10} />
                      ))}
                    </svg>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <table className="data blocks" data-testid="blocks-table">
            <thead>
              <tr>
                <th>Block</th>
                <th>Resolution</th>
                <th>From</th>
                <th>Span</th>
                <th className="num">Series</th>
                <th className="num">Samples</th>
                <th className="num">Chunks</th>
                <th className="num">Level</th>
                <th>Source</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((b) => (
                <tr key={b.ulid} data-ulid={b.ulid}>
                  <td className="ulid">{b.ulid}</td>
                  <td>{resolutionName(b.strata?.resolution ?? 0)}</td>
                  <td className="when">{formatTime(b.minTime)}</td>
                  <td>{formatDuration(b.maxTime - b.minTime)}</td>
                  <td className="num">{formatSI(b.stats?.numSeries ?? 0)}</td>
                  <td className="num">{formatSI(b.stats?.numSamples ?? 0)}</td>
                  <td className="num">{formatSI(b.stats?.numChunks ?? 0)}</td>
                  <td className="num">{b.compaction.level}</td>
                  <td>{b.strata?.source ?? ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {list.length > shown.length && (
            <button type="button" onClick={() => setShowAll(true)}>
              Show all {list.length} blocks
            </button>
          )}
        </>
      )}
    </Section>
  );
}

function CompactorSection({ status, error, tenant }: { status?: CompactorStatus; error: unknown; tenant: string }) {
  const run = (r: { start: string; end: string; error?: string; skipped?: boolean }) => (
    <>
      <span className={`badge ${r.error ? 'state-error' : 'state-ok'}`}>{r.error ? 'failed' : r.skipped ? 'skipped (locked elsewhere)' : 'succeeded'}</span> {ago(Date.parse(r.end))}, took {formatDuration(Date.parse(r.end) - Date.parse(r.start)) || '0s'}
      {r.error && <div className="error-text">{r.error}</div>}
    </>
  );
  return (
    <Section title="Compactor" testId="status-compactor">
      <ErrorBox error={error} />
      {status && !status.enabled && <p className="hint">Compaction is off in this Strata (-compactor.enabled=false): another Strata may compact the bucket.</p>}
      {status?.enabled && (
        <dl className="facts">
          <dt>Last pass</dt>
          <dd data-testid="compactor-last-pass">{status.lastPass ? run(status.lastPass) : 'none yet (the first runs at start, then every -compactor.interval)'}</dd>
          <dt>Passes since start</dt>
          <dd>
            {status.passes}
            {status.failedPasses > 0 && <span className="error-text"> ({status.failedPasses} failed)</span>}
          </dd>
          <dt>Last run of {tenant || 'the default tenant'}</dt>
          <dd>{status.tenant ? run(status.tenant) : 'none yet'}</dd>
        </dl>
      )}
    </Section>
  );
}

function RulesSection({ groups, error }: { groups?: RuleGroup[]; error: unknown }) {
  const rules = (groups ?? []).flatMap((g) => g.rules.map((r) => ({ ...r, group: g.name })));
  const failing = rules.filter((r) => r.health === 'err');
  return (
    <Section title="Rule evaluation" testId="status-rules">
      <ErrorBox error={error} />
      <dl className="facts">
        <dt>Groups, rules</dt>
        <dd data-testid="rule-counts">
          {groups?.length ?? 0}, {rules.length}
        </dd>
        <dt>Failing now</dt>
        <dd>
          <span className={`badge ${failing.length ? 'state-error' : 'state-ok'}`} data-testid="failing-rules">
            {failing.length}
          </span>
        </dd>
      </dl>
      {failing.length > 0 && (
        <ul className="failures">
          {failing.map((r) => (
            <li key={`${r.group}/${r.name}`}>
              <strong>{r.group}</strong> / {r.name}: <span className="error-text">{r.lastError}</span>
            </li>
          ))}
        </ul>
      )}
    </Section>
  );
}

function FlagsSection({ flags, error }: { flags?: Record<string, string>; error: unknown }) {
  const [filter, setFilter] = useState('');
  const entries = Object.entries(flags ?? {})
    .filter(([k, v]) => `${k} ${v}`.toLowerCase().includes(filter.toLowerCase()))
    .sort((a, b) => a[0].localeCompare(b[0]));
  return (
    <Section title="Flags" testId="status-flags" aside={<input className="filter" placeholder="Filter flags" value={filter} onChange={(e) => setFilter(e.target.value)} aria-label="Filter flags" />}>
      <ErrorBox error={error} />
      <table className="data flags">
        <tbody>
          {entries.map(([k, v]) => (
            <tr key={k}>
              <td className="flag">-{k}</td>
              <td className="flag-value">{v}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </Section>
  );
}
