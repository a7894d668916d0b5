import React, { useState } from 'react';
import { render, screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { DataSourceSettings } from '@grafana/data';
import { ConfigEditor } from './ConfigEditor';
import { StrataOptions, StrataSecureOptions } from '../types';

type Settings = DataSourceSettings<StrataOptions, StrataSecureOptions>;

function settings(patch: Partial<Settings> = {}): Settings {
  return {
    id: 1,
    uid: 'strata',
    orgId: 1,
    name: 'Strata',
    type: 'strata-tsdb-datasource',
    typeName: 'Strata',
    typeLogoUrl: '',
    access: 'proxy',
    url: 'http://strata:9201',
    user: '',
    database: '',
    basicAuth: false,
    basicAuthUser: '',
    isDefault: false,
    withCredentials: false,
    readOnly: false,
    jsonData: { tenant: 'team-a' },
    secureJsonFields: {},
    ...patch,
  } as Settings;
}

/** Renders the editor as Grafana does: its changes come back as new props. */
function renderEditor(initial: Settings) {
  const changes: Settings[] = [];
  function Host() {
    const [options, setOptions] = useState(initial);
    return (
      <ConfigEditor
        options={options}
        onOptionsChange={(o) => {
          changes.push(o);
          setOptions(o);
        }}
      />
    );
  }
  render(<Host />);
  return { last: () => changes[changes.length - 1], changes };
}

describe('ConfigEditor', () => {
  it('shows the URL, tenant and default timeout', () => {
    renderEditor(settings());
    expect(screen.getByText('Connection')).toBeInTheDocument();
    expect(screen.getByDisplayValue('http://strata:9201')).toHaveAttribute('id', 'strata-url');
    expect(screen.getByDisplayValue('team-a')).toHaveAttribute('id', 'strata-tenant');
    expect(screen.getByPlaceholderText('30')).toHaveValue(null);
    expect(screen.getByRole('radio', { name: 'No authentication' })).toBeChecked();
    expect(screen.queryByText('Password')).not.toBeInTheDocument();
  });

  it('edits URL, tenant and timeout', async () => {
    const user = userEvent.setup();
    const { last } = renderEditor(settings({ url: '', jsonData: {} }));
    await user.type(screen.getByPlaceholderText('http://strata:9201'), 'http://localhost:9201');
    await user.type(screen.getByPlaceholderText('X-Scope-OrgID (optional)'), 'ops');
    await user.type(screen.getByPlaceholderText('30'), '45');
    expect(last().url).toBe('http://localhost:9201');
    expect(last().jsonData.tenant).toBe('ops');
    expect(last().jsonData.timeoutSeconds).toBe(45);
  });

  it('keeps the basic auth password in secureJsonData', async () => {
    const user = userEvent.setup();
    const { last } = renderEditor(settings());
    await user.click(screen.getByRole('radio', { name: 'Basic auth' }));
    expect(last().jsonData.authType).toBe('basic');
    await user.type(document.getElementById('strata-basic-user') as HTMLElement, 'grafana');
    await user.type(document.getElementById('strata-basic-password') as HTMLElement, 's3cret');
    expect(last().jsonData.basicAuthUser).toBe('grafana');
    expect(last().secureJsonData?.basicAuthPassword).toBe('s3cret');
    expect(JSON.stringify(last().jsonData)).not.toContain('s3cret');
  });

  it('shows a configured token as configured and resets it', async () => {
    const user = userEvent.setup();
    const { last } = renderEditor(
      settings({ jsonData: { authType: 'bearer' }, secureJsonFields: { bearerToken: true } })
    );
    expect(screen.getByText('Token')).toBeInTheDocument();
    expect(screen.getByDisplayValue('configured')).toBeDisabled();
    await user.click(screen.getByRole('button', { name: 'Reset' }));
    expect(last().secureJsonFields.bearerToken).toBe(false);
    await user.type(document.getElementById('strata-bearer-token') as HTMLElement, 'tok');
    expect(last().secureJsonData?.bearerToken).toBe('tok');
  });
});
