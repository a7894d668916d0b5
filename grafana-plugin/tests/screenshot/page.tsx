// A page that mounts the real QueryEditor three times (PromQL, anomaly band,
// alert states) the way Grafana's panel editor would, for a headless-browser
// screenshot. Resource calls are answered from fixed Strata-like data.
import React, { useState } from 'react';
import { createRoot } from 'react-dom/client';
import { of } from 'rxjs';
import { createTheme, DataSourceInstanceSettings, PluginType } from '@grafana/data';
import { BackendSrv, BackendSrvRequest, setBackendSrv } from '@grafana/runtime';
import { ThemeContext } from '@grafana/ui';
import { QueryEditor } from '../../src/components/QueryEditor';
import { DataSource } from '../../src/datasource';
import { StrataOptions, StrataQuery } from '../../src/types';

const answers: Record<string, unknown> = {
  'label/__name__/values': ['node_cpu_seconds_total', 'node_load1', 'node_memory_MemAvailable_bytes', 'test_temperature'],
  labels: ['__name__', 'instance', 'job', 'mode'],
  'label/job/values': ['node'],
  metadata: {
    node_cpu_seconds_total: [{ type: 'counter', help: 'Seconds the CPUs spent in each mode.', unit: '' }],
  },
};

setBackendSrv({
  fetch: (req: BackendSrvRequest) => {
    const path = req.url.replace(/^.*\/resources\//, '');
    return of({ data: { status: 'success', data: answers[path] }, status: 200, ok: true });
  },
} as unknown as BackendSrv);

const ds = new DataSource({
  id: 1,
  uid: 'strata',
  type: 'strata-tsdb-datasource',
  name: 'Strata',
  access: 'proxy',
  readOnly: false,
  jsonData: {},
  meta: { id: 'strata-tsdb-datasource', name: 'Strata', type: PluginType.datasource, info: {}, module: '', baseUrl: '' },
} as unknown as DataSourceInstanceSettings<StrataOptions>);

const theme = createTheme({ colors: { mode: 'dark' } });

function Editor({ title, initial }: { title: string; initial: StrataQuery }) {
  const [query, setQuery] = useState(initial);
  return (
    <section data-testid={`editor-${initial.refId}`} style={{ marginBottom: 24 }}>
      <h3 style={{ margin: '0 0 8px', fontSize: 14, fontWeight: 500 }}>{title}</h3>
      <div
        style={{
          background: theme.colors.background.primary,
          border: `1px solid ${theme.colors.border.weak}`,
          borderRadius: 2,
          padding: 8,
        }}
      >
        <QueryEditor datasource={ds} query={query} onChange={setQuery} onRunQuery={() => {}} />
      </div>
    </section>
  );
}

function Page() {
  return (
    <ThemeContext.Provider value={theme}>
      <div
        style={{
          background: theme.colors.background.canvas,
          color: theme.colors.text.primary,
          fontFamily: theme.typography.fontFamily,
          fontSize: theme.typography.fontSize,
          padding: 16,
          minHeight: '100vh',
        }}
      >
        <Editor
          title="A: PromQL"
          initial={{
            refId: 'A',
            queryType: 'promql',
            expr: 'sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[$__rate_interval]))',
            legendFormat: '{{instance}}',
            interval: '15s',
          }}
        />
        <Editor
          title="B: Anomaly band"
          initial={{
            refId: 'B',
            queryType: 'anomaly',
            expr: 'node_load1',
            detector: 'seasonal',
            params: { season: '1d', k: 3 },
            legendFormat: '{{instance}}',
          }}
        />
        <Editor
          title="C: Alert states"
          initial={{ refId: 'C', queryType: 'alerts', alertName: 'Node.*', matchers: '{severity="critical"}', states: ['firing', 'resolved'] }}
        />
      </div>
    </ThemeContext.Provider>
  );
}

createRoot(document.getElementById('root')!).render(<Page />);
