import React, { ChangeEvent, useRef, useState } from 'react';
import { QueryEditorProps, SelectableValue } from '@grafana/data';
import { Checkbox, InlineField, InlineFieldRow, Input, RadioButtonGroup, Select, TextArea } from '@grafana/ui';
import { DataSource, MetricMetadata } from '../datasource';
import { ALERT_STATES, AlertState, DETECTORS, DetectorName, QueryType, StrataOptions, StrataQuery } from '../types';

type Props = QueryEditorProps<DataSource, StrataQuery, StrataOptions>;

const QUERY_TYPES: Array<SelectableValue<QueryType>> = [
  { label: 'PromQL', value: 'promql', description: 'A PromQL range or instant query' },
  { label: 'Anomaly band', value: 'anomaly', description: 'An expression scored by an anomaly detector' },
  { label: 'Alert states', value: 'alerts', description: "Firing, pending and resolved alerts of Strata's rules" },
];

type Mode = 'range' | 'instant' | 'both';
const MODES: Array<SelectableValue<Mode>> = [
  { label: 'Range', value: 'range' },
  { label: 'Instant', value: 'instant' },
  { label: 'Both', value: 'both' },
];

const LABEL_WIDTH = 14;

function modeOf(q: StrataQuery): Mode {
  const range = q.range ?? !q.instant;
  if (q.instant && range) {
    return 'both';
  }
  return q.instant ? 'instant' : 'range';
}

function toOptions(values: string[]): Array<SelectableValue<string>> {
  return values.map((v) => ({ label: v, value: v }));
}

/** The metric name a PromQL expression starts with, if any. */
export function leadingMetric(expr: string): string | undefined {
  const m = /^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{|$|\[)/.exec(expr);
  return m ? m[1] : undefined;
}

/** Inserts a label matcher at pos: inside braces as is, else in new braces. */
export function insertMatcher(expr: string, pos: number, matcher: string): { expr: string; pos: number } {
  const before = expr.slice(0, pos);
  const inside = before.lastIndexOf('{') > before.lastIndexOf('}');
  let text = inside ? matcher : `{${matcher}}`;
  if (inside && !/[{,]\s*$/.test(before)) {
    text = ', ' + text;
  }
  return { expr: before + text + expr.slice(pos), pos: pos + text.length };
}

export function QueryEditor({ query, onChange, onRunQuery, datasource }: Props) {
  const queryType: QueryType = query.queryType ?? 'promql';
  const exprRef = useRef<HTMLTextAreaElement | null>(null);
  const cursor = useRef<number | undefined>(undefined);
  const [metrics, setMetrics] = useState<string[] | undefined>();
  const [labels, setLabels] = useState<string[] | undefined>();
  const [values, setValues] = useState<string[] | undefined>();
  const [label, setLabel] = useState<string | undefined>();
  const [metadata, setMetadata] = useState<{ metric: string; md?: MetricMetadata } | undefined>();
  const [loadError, setLoadError] = useState<string | undefined>();

  const update = (patch: Partial<StrataQuery>, run = false) => {
    onChange({ ...query, ...patch });
    if (run) {
      onRunQuery();
    }
  };

  const load = async <T,>(fn: () => Promise<T>, set: (v: T) => void) => {
    try {
      setLoadError(undefined);
      set(await fn());
    } catch (e: unknown) {
      const err = e as { data?: { error?: string }; message?: string };
      setLoadError(err?.data?.error ?? err?.message ?? String(e));
    }
  };

  const expr = query.expr ?? '';
  const metric = leadingMetric(expr);

  const insertAtCursor = (text: string) => {
    const pos = cursor.current ?? expr.length;
    const next = expr.slice(0, pos) + text + expr.slice(pos);
    cursor.current = pos + text.length;
    update({ expr: next });
  };

  const onMetric = (v: SelectableValue<string>) => {
    if (!v?.value) {
      return;
    }
    insertAtCursor(v.value);
    load(() => datasource.metricMetadata(v.value!), (md) => setMetadata({ metric: v.value!, md }));
  };

  const onLabelValue = (v: SelectableValue<string>) => {
    if (!label || v?.value === undefined) {
      return;
    }
    const escaped = v.value.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
    const res = insertMatcher(expr, cursor.current ?? expr.length, `${label}="${escaped}"`);
    cursor.current = res.pos;
    update({ expr: res.expr });
  };

  const expressionEditor = (
    <>
      <InlineFieldRow>
        <InlineField label="Metric" labelWidth={LABEL_WIDTH} tooltip="Metric names of the tenant in Strata; picks insert at the cursor">
          <Select
            inputId="strata-metric"
            width={36}
            placeholder="Choose a metric"
            options={metrics ? toOptions(metrics) : []}
            isLoading={metrics === undefined && !loadError}
            onOpenMenu={() => load(() => datasource.metricNames(), setMetrics)}
            onChange={onMetric}
            value={null}
          />
        </InlineField>
        <InlineField label="Label" tooltip={metric ? `Labels of ${metric}` : 'Labels of all series'}>
          <Select
            inputId="strata-label"
            width={24}
            placeholder="Label"
            options={labels ? toOptions(labels) : []}
            onOpenMenu={() => load(() => datasource.labelNames(metric), setLabels)}
            onChange={(v) => {
              setLabel(v?.value);
              setValues(undefined);
            }}
            value={label ? { label, value: label } : null}
          />
        </InlineField>
        <InlineField label="=" disabled={!label}>
          <Select
            inputId="strata-label-value"
            width={24}
            placeholder="Value"
            options={values ? toOptions(values) : []}
            onOpenMenu={() => label && load(() => datasource.labelValues(label, metric), setValues)}
            onChange={onLabelValue}
            value={null}
          />
        </InlineField>
      </InlineFieldRow>
      {metadata?.md && (
        <div data-testid="strata-metric-help" style={{ fontSize: 12, opacity: 0.8, margin: '0 0 4px 4px' }}>
          {metadata.metric} ({metadata.md.type}
          {metadata.md.unit ? `, ${metadata.md.unit}` : ''}): {metadata.md.help}
        </div>
      )}
      {loadError && (
        <div role="alert" style={{ fontSize: 12, color: '#F2495C', margin: '0 0 4px 4px' }}>
          Autocompletion failed: {loadError}
        </div>
      )}
      <InlineFieldRow>
        <InlineField label="Expression" labelWidth={LABEL_WIDTH} grow>
          <TextArea
            id="strata-expr"
            ref={exprRef}
            rows={3}
            value={expr}
            placeholder='rate(http_requests_total{job="api"}[$__rate_interval])'
            style={{ fontFamily: 'monospace' }}
            onChange={(e: ChangeEvent<HTMLTextAreaElement>) => {
              cursor.current = e.currentTarget.selectionStart ?? undefined;
              update({ expr: e.currentTarget.value });
            }}
            onSelect={(e) => {
              cursor.current = (e.currentTarget as HTMLTextAreaElement).selectionStart ?? undefined;
            }}
            onBlur={() => onRunQuery()}
          />
        </InlineField>
      </InlineFieldRow>
    </>
  );

  const legend = (
    <InlineField label="Legend" labelWidth={LABEL_WIDTH} tooltip="Series name; {{label}} is replaced by the label's value">
      <Input
        id="strata-legend"
        width={30}
        value={query.legendFormat ?? ''}
        placeholder="{{instance}}"
        onChange={(e: ChangeEvent<HTMLInputElement>) => update({ legendFormat: e.currentTarget.value })}
        onBlur={() => onRunQuery()}
      />
    </InlineField>
  );

  const minStep = (
    <InlineField label="Min step" tooltip="Lower bound of the step, e.g. 15s; $__interval and $__rate_interval follow it">
      <Input
        id="strata-min-step"
        width={12}
        value={query.interval ?? ''}
        placeholder="auto"
        onChange={(e: ChangeEvent<HTMLInputElement>) => update({ interval: e.currentTarget.value })}
        onBlur={() => onRunQuery()}
      />
    </InlineField>
  );

  const detector = DETECTORS.find((d) => d.value === (query.detector ?? 'surprise')) ?? DETECTORS[0];
  const setParam = (name: string, value: string) => {
    const params = { ...(query.params ?? {}) };
    if (value === '') {
      delete params[name];
    } else {
      params[name] = value;
    }
    update({ params });
  };

  const toggleState = (state: AlertState, on: boolean) => {
    const current = query.states ?? ALERT_STATES;
    const next = on ? [...current.filter((s) => s !== state), state] : current.filter((s) => s !== state);
    update({ states: ALERT_STATES.filter((s) => next.includes(s)) }, true);
  };

  return (
    <div data-testid="strata-query-editor">
      <InlineFieldRow>
        <InlineField label="Query type" labelWidth={LABEL_WIDTH}>
          <RadioButtonGroup<QueryType>
            options={QUERY_TYPES}
            value={queryType}
            onChange={(v) => update({ queryType: v }, true)}
          />
        </InlineField>
      </InlineFieldRow>

      {queryType === 'promql' && (
        <>
          {expressionEditor}
          <InlineFieldRow>
            {legend}
            {minStep}
            <InlineField label="Type">
              <RadioButtonGroup<Mode>
                options={MODES}
                value={modeOf(query)}
                onChange={(m) =>
                  update({ range: m === 'range' || m === 'both', instant: m === 'instant' || m === 'both' }, true)
                }
              />
            </InlineField>
          </InlineFieldRow>
        </>
      )}

      {queryType === 'anomaly' && (
        <>
          {expressionEditor}
          <InlineFieldRow>
            <InlineField label="Detector" labelWidth={LABEL_WIDTH} tooltip={detector.description}>
              <Select<DetectorName>
                inputId="strata-detector"
                width={30}
                options={DETECTORS.map((d) => ({ label: d.label, value: d.value, description: d.description }))}
                value={detector.value}
                onChange={(v) => update({ detector: v.value, params: {} }, true)}
              />
            </InlineField>
            {legend}
            {minStep}
          </InlineFieldRow>
          <InlineFieldRow>
            {detector.params.map((p, i) => (
              <InlineField key={p.name} label={p.name} labelWidth={i === 0 ? LABEL_WIDTH : undefined} tooltip={p.help}>
                <Input
                  id={`strata-param-${p.name}`}
                  aria-label={`${p.name} parameter`}
                  width={12}
                  value={String(query.params?.[p.name] ?? '')}
                  placeholder={p.placeholder || 'required'}
                  onChange={(e: ChangeEvent<HTMLInputElement>) => setParam(p.name, e.currentTarget.value)}
                  onBlur={() => onRunQuery()}
                />
              </InlineField>
            ))}
          </InlineFieldRow>
        </>
      )}

      {queryType === 'alerts' && (
        <>
          <InlineFieldRow>
            <InlineField label="Alert name" labelWidth={LABEL_WIDTH} tooltip="Regular expression over alertname; empty means all">
              <Input
                id="strata-alert-name"
                width={30}
                value={query.alertName ?? ''}
                placeholder=".*"
                onChange={(e: ChangeEvent<HTMLInputElement>) => update({ alertName: e.currentTarget.value })}
                onBlur={() => onRunQuery()}
              />
            </InlineField>
            <InlineField label="Labels" tooltip='PromQL label matchers, e.g. {severity="critical"}'>
              <Input
                id="strata-matchers"
                width={36}
                value={query.matchers ?? ''}
                placeholder='{severity="critical"}'
                onChange={(e: ChangeEvent<HTMLInputElement>) => update({ matchers: e.currentTarget.value })}
                onBlur={() => onRunQuery()}
              />
            </InlineField>
          </InlineFieldRow>
          <InlineFieldRow>
            <InlineField label="States" labelWidth={LABEL_WIDTH}>
              <div style={{ display: 'flex', gap: 16, alignItems: 'center', height: 32 }}>
                {ALERT_STATES.map((s) => (
                  <Checkbox
                    key={s}
                    label={s}
                    value={(query.states ?? ALERT_STATES).includes(s)}
                    onChange={(e: React.FormEvent<HTMLInputElement>) => toggleState(s, e.currentTarget.checked)}
                  />
                ))}
              </div>
            </InlineField>
          </InlineFieldRow>
        </>
      )}
    </div>
  );
}
