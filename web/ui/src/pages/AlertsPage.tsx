import { useEffect, useMemo, useState } from 'react';

import { Alert, call, mergeGroups, Rule, RuleGroup } from '../api';
import { ErrorBox, Section, useAsync } from '../components/common';
import { formatValue, seriesName } from '../format';
import { ago, formatDuration } from '../time';
import { pageURL } from '../url';

interface Loaded {
  groups: RuleGroup[];
  alerts: Alert[];
}

function stateOf(r: Rule): string {
  if (r.type === 'alerting') {
    return r.state ?? 'inactive';
  }
  return r.health === 'err' ? 'error' : r.health;
}

export function AlertsPage({ tenant }: { tenant: string }) {
  const [filter, setFilter] = useState('');
  const [states, setStates] = useState<Record<string, boolean>>({ firing: true, pending: true, inactive: true });
  const loaded = useAsync<Loaded>(
    async (signal) => {
      const [rules, alerts, anomaly] = await Promise.all([
        call<{ groups: RuleGroup[] }>('api/v1/rules', {}, { signal }),
        call<{ alerts: Alert[] }>('api/v1/alerts', {}, { signal }),
        call<{ groups: RuleGroup[] }>('api/v1/anomaly/rules', {}, { signal }).catch(() => ({ data: { groups: [] as RuleGroup[] } })),
      ]);
      return { groups: mergeGroups(rules.data.groups, anomaly.data.groups), alerts: alerts.data.alerts };
    },
    [tenant],
  );
  useEffect(() => {
    const t = setInterval(loaded.refresh, 15000);
    return () => clearInterval(t);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  const f = filter.trim().toLowerCase();
  const matches = (text: string) => f === '' || text.toLowerCase().includes(f);
  const alerts = useMemo(
    () => (loaded.data?.alerts ?? []).filter((a) => states[a.state] && matches(seriesName(a.labels) + ' ' + Object.values(a.annotations ?? {}).join(' '))),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [loaded.data, states, f],
  );
  const groups = loaded.data?.groups ?? [];
  const counts = { firing: 0, pending: 0, inactive: 0 };
  for (const g of groups) {
    for (const r of g.rules) {
      if (r.type === 'alerting') {
        counts[(r.state ?? 'inactive') as keyof typeof counts]++;
      }
    }
  }
  const failing = groups.flatMap((g) => g.rules).filter((r) => r.health === 'err').length;

  return (
    <div className="page" data-testid="alerts-page">
      <div className="toolbar">
        <input className="filter" placeholder="Filter by name, label or expression" value={filter} onChange={(e) => setFilter(e.target.value)} aria-label="Filter" />
        {(['firing', 'pending', 'inactive'] as const).map((s) => (
          <label key={s} className={`state-toggle state-${s}`}>
            <input type="checkbox" checked={states[s]} onChange={(e) => setStates({ ...states, [s]: e.target.checked })} /> {s} ({counts[s]})
          </label>
        ))}
        {failing > 0 && <span className="badge state-error">{failing} failing rules</span>}
        <button type="button" onClick={loaded.refresh}>
          Refresh
        </button>
      </div>
      <ErrorBox error={loaded.error} />
      <Section title={`Active alerts (${alerts.length})`} testId="active-alerts">
        {alerts.length === 0 ? (
          <p className="hint">No alert is pending or firing{f !== '' ? ' that matches the filter' : ''}.</p>
        ) : (
          <table className="data">
            <thead>
              <tr>
                <th>State</th>
                <th>Alert</th>
                <th>Active since</th>
                <th className="num">Value</th>
              </tr>
            </thead>
            <tbody>
              {alerts.map((a, i) => (
                <tr key={i}>
                  <td>
                    <span className={`badge state-${a.state}`}>{a.state}</span>
                  </td>
                  <td>
                    <div className="series">{seriesName(a.labels)}</div>
                    {a.annotations?.summary && <div className="hint">{a.annotations.summary}</div>}
                  </td>
                  <td>{a.activeAt ? ago(Date.parse(a.activeAt)) : ''}</td>
                  <td className="num">{formatValue(parseFloat(a.value))}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Section>
      {groups.length === 0 && !loaded.loading && (
        <Section title="Rules">
          <p className="hint">
            This tenant has no rules. Rule files are Prometheus's format (with Strata's <code>anomaly</code> rules) under <code>-rules.tenants-dir</code> or <code>-rules.files</code>; <code>POST /-/reload</code> reloads them.
          </p>
        </Section>
      )}
      {groups.map((g) => {
        const rules = g.rules.filter((r) => (r.type !== 'alerting' || states[r.state ?? 'inactive']) && matches(`${r.name} ${r.query}`));
        if (rules.length === 0) {
          return null;
        }
        return (
          <Section
            key={`${g.file};${g.name}`}
            title={g.name}
            testId="rule-group"
            aside={
              <span className="hint">
                {g.file}
                {g.interval ? ` · every ${formatDuration(g.interval * 1000)}` : ''}
                {g.lastEvaluation && !g.lastEvaluation.startsWith('0001') ? ` · evaluated ${ago(Date.parse(g.lastEvaluation))}` : ''}
              </span>
            }
          >
            <table className="data rules">
              <tbody>
                {rules.map((r) => (
                  <RuleRow key={`${r.type}:${r.name}:${r.query}`} rule={r} tenant={tenant} />
                ))}
              </tbody>
            </table>
          </Section>
        );
      })}
    </div>
  );
}

function RuleRow({ rule: r, tenant }: { rule: Rule; tenant: string }) {
  const state = stateOf(r);
  const link =
    r.type === 'anomaly'
      ? pageURL('anomaly', new URLSearchParams({ expr: r.query, detector: r.detector ?? '', ...Object.fromEntries(Object.entries(r.params ?? {}).map(([k, v]) => [`p.${k}`, v])), ...(tenant ? { tenant } : {}) }).toString())
      : pageURL('query', new URLSearchParams({ expr: r.query, ...(tenant ? { tenant } : {}) }).toString());
  return (
    <tr data-rule-type={r.type} data-rule-health={r.health}>
      <td className="rule-kind">
        <span className={`badge kind-${r.type}`}>{r.type}</span>
      </td>
      <td>
        <div className="rule-name">
          {r.name} <span className={`badge state-${state}`}>{state}</span>
          {r.type === 'alerting' && r.alerts && r.alerts.length > 0 && <span className="hint"> {r.alerts.length} alerts</span>}
          {r.type === 'anomaly' && (
            <span className="hint">
              {' '}
              {r.detector}
              {r.params && Object.keys(r.params).length > 0 ? ` {${Object.entries(r.params).map(([k, v]) => `${k}=${v}`).join(', ')}}` : ''} · {r.series ?? 0} series
            </span>
          )}
        </div>
        <a className="expr" href={link}>
          <code>{r.query}</code>
        </a>
        {r.type === 'alerting' && r.duration ? <span className="hint"> for {formatDuration(r.duration * 1000)}</span> : null}
        {r.lastError && <div className="error-text">{r.lastError}</div>}
      </td>
      <td className="when">{r.lastEvaluation && !r.lastEvaluation.startsWith('0001') ? ago(Date.parse(r.lastEvaluation)) : 'not evaluated yet'}</td>
    </tr>
  );
}
