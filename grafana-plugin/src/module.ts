import { DataSourcePlugin } from '@grafana/data';
import { DataSource } from './datasource';
import { ConfigEditor } from './components/ConfigEditor';
import { QueryEditor } from './components/QueryEditor';
import { StrataQuery, StrataOptions, StrataSecureOptions } from './types';

export const plugin = new DataSourcePlugin<DataSource, StrataQuery, StrataOptions, StrataSecureOptions>(DataSource)
  .setConfigEditor(ConfigEditor)
  .setQueryEditor(QueryEditor);
