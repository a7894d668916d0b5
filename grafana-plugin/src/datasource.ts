import { AnnotationSupport, CoreApp, DataSourceInstanceSettings, ScopedVars } from '@grafana/data';
import { DataSourceWithBackend, getTemplateSrv } from '@grafana/runtime';
import { DEFAULT_QUERY, StrataOptions, StrataQuery } from './types';

/** Metric metadata as Strata's /api/v1/metadata answers it. */
export interface MetricMetadata {
  type: string;
  help: string;
  unit: string;
}

interface ApiAnswer<T> {
  status: string;
  data: T;
  error?: string;
}

/** Escapes regular-expression characters of a template variable's value. */
export function escapeRegex(value: string): string {
  return value.replace(/[\\^$*+?.()|[\]{}]/g, '\\$&');
}

/**
 * Formats template variable values inside PromQL as Grafana's Prometheus
 * source does: single values as they are; multi-value and "All" variables as
 * an alternation of regex-escaped values, for use with =~.
 */
export function formatPromQLVariable(value: string | string[], variable: { multi?: boolean; includeAll?: boolean }): string {
  if (!variable.multi && !variable.includeAll) {
    return Array.isArray(value) ? value.join('|') : value;
  }
  const values = Array.isArray(value) ? value : [value];
  if (values.length === 1) {
    return escapeRegex(values[0]);
  }
  return '(' + values.map(escapeRegex).join('|') + ')';
}

/**
 * The Strata data source: queries run in the Go backend (so alert rules work
 * without the browser); this class interpolates dashboard variables and
 * offers the editor Strata's metric names, labels and metadata.
 */
export class DataSource extends DataSourceWithBackend<StrataQuery, StrataOptions> {
  /** Annotation queries use the query editor and start as alert-state queries. */
  annotations: AnnotationSupport<StrataQuery> = {
    getDefaultQuery: () => ({ queryType: 'alerts', states: ['firing', 'pending', 'resolved'] }),
  };

  constructor(instanceSettings: DataSourceInstanceSettings<StrataOptions>) {
    super(instanceSettings);
  }

  getDefaultQuery(_: CoreApp): Partial<StrataQuery> {
    return DEFAULT_QUERY;
  }

  filterQuery(query: StrataQuery): boolean {
    if (query.hide) {
      return false;
    }
    return query.queryType === 'alerts' || !!query.expr?.trim();
  }

  applyTemplateVariables(query: StrataQuery, scopedVars: ScopedVars): StrataQuery {
    const srv = getTemplateSrv();
    const plain = (s?: string) => (s === undefined ? s : srv.replace(s, scopedVars));
    const params = query.params
      ? Object.fromEntries(
          Object.entries(query.params).map(([k, v]) => [k, typeof v === 'string' ? srv.replace(v, scopedVars) : v])
        )
      : undefined;
    return {
      ...query,
      // $__interval, $__rate_interval and $__range stay for the backend, which knows the step.
      expr: query.expr === undefined ? undefined : srv.replace(query.expr, scopedVars, formatPromQLVariable),
      legendFormat: plain(query.legendFormat),
      interval: plain(query.interval),
      alertName: plain(query.alertName),
      matchers: query.matchers === undefined ? undefined : srv.replace(query.matchers, scopedVars, formatPromQLVariable),
      params,
    };
  }

  private async api<T>(path: string, params?: Record<string, string | string[]>): Promise<T> {
    const answer: ApiAnswer<T> = await this.getResource(path, params);
    return answer.data;
  }

  /** Metric names of the tenant, for autocompletion. */
  async metricNames(): Promise<string[]> {
    return (await this.api<string[]>('label/__name__/values')) ?? [];
  }

  /** Label names, of one metric's series when metric is given. */
  async labelNames(metric?: string): Promise<string[]> {
    const names = (await this.api<string[]>('labels', metric ? { 'match[]': metric } : undefined)) ?? [];
    return names.filter((n) => n !== '__name__');
  }

  /** Values of a label, among one metric's series when metric is given. */
  async labelValues(label: string, metric?: string): Promise<string[]> {
    return (
      (await this.api<string[]>(`label/${encodeURIComponent(label)}/values`, metric ? { 'match[]': metric } : undefined)) ??
      []
    );
  }

  /** Type, help and unit of a metric, when Strata has its metadata. */
  async metricMetadata(metric: string): Promise<MetricMetadata | undefined> {
    const md = await this.api<Record<string, MetricMetadata[]>>('metadata', { metric });
    return md?.[metric]?.[0];
  }
}
