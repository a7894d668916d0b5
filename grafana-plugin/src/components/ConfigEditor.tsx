import React, { ChangeEvent } from 'react';
import { DataSourcePluginOptionsEditorProps } from '@grafana/data';
import { FieldSet, InlineField, Input, RadioButtonGroup, SecretInput } from '@grafana/ui';
import { AuthType, StrataOptions, StrataSecureOptions } from '../types';

type Props = DataSourcePluginOptionsEditorProps<StrataOptions, StrataSecureOptions>;

const AUTH_OPTIONS: Array<{ label: string; value: AuthType }> = [
  { label: 'No authentication', value: 'none' },
  { label: 'Basic auth', value: 'basic' },
  { label: 'Bearer token', value: 'bearer' },
];

const LABEL_WIDTH = 20;

/** Settings of a Strata data source: URL, tenant, credentials and timeout. */
export function ConfigEditor({ options, onOptionsChange }: Props) {
  const jsonData = options.jsonData ?? {};
  const secureJsonFields = options.secureJsonFields ?? {};
  const secureJsonData = (options.secureJsonData ?? {}) as StrataSecureOptions;
  const authType: AuthType = jsonData.authType ?? 'none';

  const setJsonData = (patch: Partial<StrataOptions>) =>
    onOptionsChange({ ...options, jsonData: { ...jsonData, ...patch } });
  const setSecret = (key: keyof StrataSecureOptions, value: string) =>
    onOptionsChange({ ...options, secureJsonData: { ...secureJsonData, [key]: value } });
  const resetSecret = (key: keyof StrataSecureOptions) =>
    onOptionsChange({
      ...options,
      secureJsonFields: { ...secureJsonFields, [key]: false },
      secureJsonData: { ...secureJsonData, [key]: '' },
    });

  return (
    <>
      <FieldSet label="Connection">
        <InlineField label="URL" labelWidth={LABEL_WIDTH} tooltip="Strata's base URL, e.g. http://strata:9201" required>
          <Input
            id="strata-url"
            width={40}
            value={options.url ?? ''}
            placeholder="http://strata:9201"
            onChange={(e: ChangeEvent<HTMLInputElement>) => onOptionsChange({ ...options, url: e.currentTarget.value })}
          />
        </InlineField>
        <InlineField
          label="Tenant"
          labelWidth={LABEL_WIDTH}
          tooltip="Sent as the X-Scope-OrgID header; leave empty for Strata's default tenant"
        >
          <Input
            id="strata-tenant"
            width={40}
            value={jsonData.tenant ?? ''}
            placeholder="X-Scope-OrgID (optional)"
            onChange={(e: ChangeEvent<HTMLInputElement>) => setJsonData({ tenant: e.currentTarget.value })}
          />
        </InlineField>
        <InlineField label="Timeout" labelWidth={LABEL_WIDTH} tooltip="Longest a request to Strata may take, in seconds">
          <Input
            id="strata-timeout"
            type="number"
            width={40}
            min={1}
            value={jsonData.timeoutSeconds ?? ''}
            placeholder="30"
            suffix="seconds"
            onChange={(e: ChangeEvent<HTMLInputElement>) => {
              const v = e.currentTarget.value;
              setJsonData({ timeoutSeconds: v === '' ? undefined : Number(v) });
            }}
          />
        </InlineField>
      </FieldSet>
      <FieldSet label="Authentication">
        <InlineField label="Method" labelWidth={LABEL_WIDTH}>
          <RadioButtonGroup<AuthType>
            options={AUTH_OPTIONS}
            value={authType}
            onChange={(v) => setJsonData({ authType: v })}
          />
        </InlineField>
        {authType === 'basic' && (
          <>
            <InlineField label="User" labelWidth={LABEL_WIDTH}>
              <Input
                id="strata-basic-user"
                width={40}
                value={jsonData.basicAuthUser ?? ''}
                onChange={(e: ChangeEvent<HTMLInputElement>) => setJsonData({ basicAuthUser: e.currentTarget.value })}
              />
            </InlineField>
            <InlineField label="Password" labelWidth={LABEL_WIDTH}>
              <SecretInput
                id="strata-basic-password"
                width={40}
                isConfigured={!!secureJsonFields.basicAuthPassword}
                value={secureJsonData.basicAuthPassword ?? ''}
                onReset={() => resetSecret('basicAuthPassword')}
                onChange={(e: ChangeEvent<HTMLInputElement>) => setSecret('basicAuthPassword', e.currentTarget.value)}
              />
            </InlineField>
          </>
        )}
        {authType === 'bearer' && (
          <InlineField label="Token" labelWidth={LABEL_WIDTH}>
            <SecretInput
              id="strata-bearer-token"
              width={40}
              isConfigured={!!secureJsonFields.bearerToken}
              value={secureJsonData.bearerToken ?? ''}
              onReset={() => resetSecret('bearerToken')}
              onChange={(e: ChangeEvent<HTMLInputElement>) => setSecret('bearerToken', e.currentTarget.value)}
            />
          </InlineField>
        )}
      </FieldSet>
    </>
  );
}
