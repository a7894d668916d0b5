import React, { useState } from 'react';
import { render, screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { of } from 'rxjs';
import { DataSourceInstanceSettings, PluginType } from '@grafana/data';
import { BackendSrv, BackendSrvRequest, setBackendSrv } from '@grafana/runtime';
import { QueryEditor, insertMatcher, leadingMetric } from './QueryEditor';
import { DataSource } from '../datasource';
import { StrataOptions, StrataQuery } from '../types';

// Strata's answers to the editor's resource calls, by resource path.
const answers: Record<string, unknown> = {
  'label/__name__/values': ['node_cpu_seconds_total', 'test_temperature'],
  labels: ['__name__', 'room', 'site'],
  'label/room/values': ['a', 'b'],
  metadata: { test_temperature: [{ type: 'gauge', help: 'Room temperature in °C.', unit: '' }] },
};
let requests: BackendSrvRequest[] = [];

beforeEach(() => {
  requests = [];
  setBackendSrv({
    fetch: (req: BackendSrvRequest) => {
      requests.push(req);
      const path = req.url.replace('/api/datasources/uid/strata/resources/', '');
      return of({ data: { status: 'success', data: answers[path] }, status: 200, ok: true });
    },
  } as unknown as BackendSrv);
});

const settings = {
  id: 1,
  uid: 'strata',
  type: 'strata-tsdb-datasource',
  name: 'Strata',
  access: 'proxy',
  readOnly: false,
  jsonData: {},
  meta: { id: 'strata-tsdb-datasource', name: 'Strata', type: PluginType.datasource, info: {}, module: '', baseUrl: '' },
} as unknown as DataSourceInstanceSettings<StrataOptions>;

function renderEditor(initial: Partial<StrataQuery>) {
  const ds = new DataSource(settings);
  const changes: StrataQuery[] = [];
  const onRunQuery = jest.fn();
  function Host() {
    const [query, setQuery] = useState<StrataQuery>({ refId: 'A', ...initial });
    return (
      <QueryEditor
        datasource={ds}
        query={query}
        onRunQuery={onRunQuery}
        onChange={(q) => {
          changes.push(q);
          setQuery(q);
        }}
      />
    );
  }
  render(<Host />);
  return { last: () => changes[changes.length - 1], onRunQuery };
}

async function choose(user: ReturnType<typeof userEvent.setup>, inputId: string, option: string) {
  await user.click(document.getElementById(inputId) as HTMLElement);
  await user.click(await screen.findByText(option, { selector: '[role="option"] *, [role="option"]' }));
}

describe('QueryEditor', () => {
  it('edits a PromQL query and runs it on blur', async () => {
    const user = userEvent.setup();
    const { last, onRunQuery } = renderEditor({ queryType: 'promql', expr: '' });
    expect(screen.getByRole('radio', { name: 'PromQL' })).toBeChecked();
    const expr = document.getElementById('strata-expr') as HTMLTextAreaElement;
    await user.type(expr, 'sum(up)');
    expect(last().expr).toBe('sum(up)');
    await user.type(document.getElementById('strata-legend') as HTMLElement, '{{{{job}}');
    expect(last().legendFormat).toBe('{{job}}');
    await user.type(document.getElementById('strata-min-step') as HTMLElement, '30s');
    expect(last().interval).toBe('30s');
    expect(onRunQuery).toHaveBeenCalled();
    await user.click(screen.getByRole('radio', { name: 'Both' }));
    expect(last()).toMatchObject({ instant: true, range: true });
    await user.click(screen.getByRole('radio', { name: 'Instant' }));
    expect(last()).toMatchObject({ instant: true, range: false });
  });

  it('completes metric names, labels and values from Strata', async () => {
    const user = userEvent.setup();
    const { last } = renderEditor({ queryType: 'promql', expr: '' });
    await choose(user, 'strata-metric', 'test_temperature');
    expect(last().expr).toBe('test_temperature');
    expect(requests[0].url).toBe('/api/datasources/uid/strata/resources/label/__name__/values');
    expect(await screen.findByTestId('strata-metric-help')).toHaveTextContent(
      'test_temperature (gauge): Room temperature in °C.'
    );

    await choose(user, 'strata-label', 'room');
    const labelsCall = requests.find((r) => r.url.endsWith('/resources/labels'));
    expect(labelsCall?.params).toEqual({ 'match[]': 'test_temperature' });
    await choose(user, 'strata-label-value', 'b');
    expect(last().expr).toBe('test_temperature{room="b"}');
    const valuesCall = requests.find((r) => r.url.endsWith('/resources/label/room/values'));
    expect(valuesCall?.params).toEqual({ 'match[]': 'test_temperature' });
  });

  it('shows the parameters of the chosen anomaly detector', async () => {
    const user = userEvent.setup();
    const { last } = renderEditor({ queryType: 'promql', expr: 'test_latency' });
    await user.click(screen.getByRole('radio', { name: 'Anomaly band' }));
    expect(last().queryType).toBe('anomaly');
    // Without a detector the query uses Strata's default, surprise.
    expect(screen.getByText('Surprise (default)')).toBeInTheDocument();
    expect(screen.getByLabelText('window parameter')).toHaveAttribute('placeholder', '6');
    expect(screen.getByLabelText('rest parameter')).toHaveAttribute('placeholder', '1d');

    await choose(user, 'strata-detector', 'Adaptive');
    expect(last().detector).toBe('adaptive');
    expect(screen.getByLabelText('k parameter')).toHaveAttribute('placeholder', '3');
    expect(screen.getByLabelText('half_life parameter')).toBeInTheDocument();
    expect(screen.queryByLabelText('window parameter')).not.toBeInTheDocument();

    await choose(user, 'strata-detector', 'Static thresholds');
    expect(last().detector).toBe('static');
    expect(screen.queryByLabelText('k parameter')).not.toBeInTheDocument();
    await user.type(screen.getByLabelText('upper parameter'), '150');
    await user.type(screen.getByLabelText('lower parameter'), '50');
    expect(last().params).toEqual({ upper: '150', lower: '50' });
    expect(last().expr).toBe('test_latency');
  });

  it('filters alert-state annotations by name, labels and state', async () => {
    const user = userEvent.setup();
    const { last, onRunQuery } = renderEditor({ queryType: 'alerts' });
    expect(screen.queryByText('Expression')).not.toBeInTheDocument();
    await user.type(document.getElementById('strata-alert-name') as HTMLElement, 'Hot.*');
    await user.type(document.getElementById('strata-matchers') as HTMLElement, '{{severity="critical"}');
    expect(last()).toMatchObject({ alertName: 'Hot.*', matchers: '{severity="critical"}' });
    for (const s of ['firing', 'pending', 'resolved']) {
      expect(screen.getByLabelText(s)).toBeChecked();
    }
    await user.click(screen.getByLabelText('resolved'));
    await waitFor(() => expect(last().states).toEqual(['firing', 'pending']));
    expect(screen.getByLabelText('resolved')).not.toBeChecked();
    expect(onRunQuery).toHaveBeenCalled();
  });
});

describe('expression helpers', () => {
  it.each([
    ['test_temperature', 'test_temperature'],
    ['  up{job="a"}', 'up'],
    ['http_requests_total[5m]', 'http_requests_total'],
    ['sum(up)', undefined],
  ])('leadingMetric(%p) = %p', (expr, want) => {
    expect(leadingMetric(expr)).toBe(want);
  });

  it.each([
    ['up', 2, 'up{job="a"}'],
    ['up{}', 3, 'up{job="a"}'],
    ['up{x="1"}', 8, 'up{x="1", job="a"}'],
  ])('insertMatcher(%p, %p)', (expr, pos, want) => {
    expect(insertMatcher(expr, pos, 'job="a"').expr).toBe(want);
  });
});
