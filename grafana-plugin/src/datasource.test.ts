import { DataSourceInstanceSettings, ScopedVars, TypedVariableModel } from '@grafana/data';
import { setTemplateSrv, TemplateSrv } from '@grafana/runtime';
import { DataSource, escapeRegex, formatPromQLVariable } from './datasource';
import { StrataOptions } from './types';

describe('formatPromQLVariable', () => {
  it.each([
    ['a.b', {}, 'a.b'],
    ['a.b', { multi: true }, 'a\\.b'],
    [['x', 'y.z'], { multi: true }, '(x|y\\.z)'],
    [['x'], { includeAll: true }, 'x'],
  ])('%p with %p', (value, variable, want) => {
    expect(formatPromQLVariable(value as string | string[], variable)).toBe(want);
  });

  it('escapes every regex character', () => {
    expect(escapeRegex('a+b*(c)|[d]{e}^$\\')).toBe('a\\+b\\*\\(c\\)\\|\\[d\\]\\{e\\}\\^\\$\\\\');
  });
});

describe('DataSource.applyTemplateVariables', () => {
  it('replaces dashboard variables and leaves interval variables to the backend', () => {
    const vars: Record<string, string | string[]> = { job: 'api', rooms: ['a', 'b'] };
    setTemplateSrv({
      getVariables: () => [] as TypedVariableModel[],
      containsTemplate: () => true,
      updateTimeRange: () => {},
      replace: (target?: string, _?: ScopedVars, format?: unknown) =>
        (target ?? '').replace(/\$(\w+)/g, (m, name) => {
          if (!(name in vars)) {
            return m;
          }
          const v = vars[name];
          return typeof format === 'function' ? format(v, { multi: Array.isArray(v) }) : String(v);
        }),
    } as unknown as TemplateSrv);
    const ds = new DataSource({ uid: 'strata', jsonData: {} } as unknown as DataSourceInstanceSettings<StrataOptions>);
    const q = ds.applyTemplateVariables(
      {
        refId: 'A',
        queryType: 'anomaly',
        expr: 'rate(x{job="$job", room=~"$rooms"}[$__rate_interval])',
        legendFormat: '$job {{room}}',
        params: { k: '$job', warmup: 10 },
      },
      {}
    );
    expect(q.expr).toBe('rate(x{job="api", room=~"(a|b)"}[$__rate_interval])');
    expect(q.legendFormat).toBe('api {{room}}');
    expect(q.params).toEqual({ k: 'api', warmup: 10 });
  });

  it('skips hidden queries and empty expressions but keeps alert queries', () => {
    const ds = new DataSource({ uid: 'strata', jsonData: {} } as unknown as DataSourceInstanceSettings<StrataOptions>);
    expect(ds.filterQuery({ refId: 'A', expr: ' ' })).toBe(false);
    expect(ds.filterQuery({ refId: 'A', expr: 'up', hide: true })).toBe(false);
    expect(ds.filterQuery({ refId: 'A', expr: 'up' })).toBe(true);
    expect(ds.filterQuery({ refId: 'A', queryType: 'alerts' })).toBe(true);
  });

  it('starts annotation queries as alert-state queries', () => {
    const ds = new DataSource({ uid: 'strata', jsonData: {} } as unknown as DataSourceInstanceSettings<StrataOptions>);
    expect(ds.annotations.getDefaultQuery?.()).toEqual({ queryType: 'alerts', states: ['firing', 'pending', 'resolved'] });
  });
});
