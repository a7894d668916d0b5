import { DataQuery, DataSourceJsonData } from '@grafana/data';

/** What a query asks Strata for. */
export type QueryType = 'promql' | 'anomaly' | 'alerts';

/** Anomaly detectors of Strata's anomaly API. */
export type DetectorName = 'surprise' | 'adaptive' | 'seasonal' | 'iforest' | 'static';

/** Alert states an annotation query shows. */
export type AlertState = 'firing' | 'pending' | 'resolved';

/** The query model shared with the Go backend (see pkg/strata/datasource.go). */
export interface StrataQuery extends DataQuery {
  queryType?: QueryType;
  expr?: string;
  legendFormat?: string;
  instant?: boolean;
  range?: boolean;
  /** Min step, e.g. "15s". */
  interval?: string;
  detector?: DetectorName;
  params?: Record<string, string | number>;
  alertName?: string;
  matchers?: string;
  states?: AlertState[];
}

export const DEFAULT_QUERY: Partial<StrataQuery> = {
  queryType: 'promql',
  expr: '',
  range: true,
  instant: false,
};

export type AuthType = 'none' | 'basic' | 'bearer';

/** jsonData of the data source. */
export interface StrataOptions extends DataSourceJsonData {
  tenant?: string;
  authType?: AuthType;
  basicAuthUser?: string;
  timeoutSeconds?: number;
}

/** secureJsonData of the data source: never sent back to the browser. */
export interface StrataSecureOptions {
  basicAuthPassword?: string;
  bearerToken?: string;
}

export interface DetectorParam {
  name: string;
  placeholder: string;
  help: string;
}

export interface Detector {
  value: DetectorName;
  label: string;
  description: string;
  params: DetectorParam[];
}

/** The detectors and their parameters, as Strata's alerting/detect registers them; the first is Strata's default. */
export const DETECTORS: Detector[] = [
  {
    value: 'surprise',
    label: 'Surprise (default)',
    description: "Rarity of the deviation in the series' own history (level and time of day); once per incident",
    params: [
      { name: 'window', placeholder: '6', help: 'Samples averaged by the level expert' },
      { name: 'half_life', placeholder: '70', help: 'Half-life of the slow baseline, in samples' },
      { name: 'memory', placeholder: '10000', help: 'Half-life of the deviation histograms, in samples' },
      { name: 'surprise', placeholder: '4', help: '-log10 of the tail probability at score 1' },
      { name: 'onset', placeholder: '2.65', help: "Surprise that marks an incident's onset and starts a rest" },
      { name: 'rest', placeholder: '1d', help: 'Time reported as 0 after an onset, unless more surprising' },
      { name: 'season', placeholder: '1d', help: 'Period of the time-of-day expert' },
      { name: 'slot', placeholder: '30m', help: 'Slot width of the time-of-day expert' },
      { name: 'season_half_life', placeholder: '16h', help: "Half-life of a slot's mean and deviation" },
      { name: 'recur', placeholder: '1', help: "Weight of the time of day's recurring level deviation (0: off)" },
    ],
  },
  {
    value: 'adaptive',
    label: 'Adaptive',
    description: 'Exponentially weighted mean and deviation; no season',
    params: [
      { name: 'k', placeholder: '3', help: 'Band half-width in standard deviations' },
      { name: 'half_life', placeholder: '6h', help: "Time for a sample's weight to halve" },
      { name: 'warmup', placeholder: '10', help: 'Samples learned before scoring starts' },
    ],
  },
  {
    value: 'seasonal',
    label: 'Seasonal',
    description: 'Robust band per slot of a daily or weekly season',
    params: [
      { name: 'season', placeholder: '1d', help: 'Period of the pattern (1d, 1w, ...)' },
      { name: 'slot', placeholder: '1h', help: 'Width of one slot of the season' },
      { name: 'k', placeholder: '3', help: 'Band half-width in robust standard deviations' },
      { name: 'per_slot', placeholder: '128', help: 'Samples kept per slot' },
      { name: 'min_per_slot', placeholder: '12', help: 'Samples a slot needs before it is used' },
      { name: 'half_life', placeholder: '6h', help: 'Half-life of the fallback adaptive baseline' },
    ],
  },
  {
    value: 'iforest',
    label: 'Isolation forest',
    description: 'Isolation forest over recent samples',
    params: [
      { name: 'trees', placeholder: '32', help: 'Trees in the forest' },
      { name: 'sample_size', placeholder: '128', help: 'Samples drawn for each tree' },
      { name: 'window', placeholder: '1024', help: 'Recent samples kept for training' },
      { name: 'retrain_every', placeholder: '128', help: 'Samples between trainings' },
      { name: 'min_samples', placeholder: '128', help: 'Samples needed for the first training' },
      { name: 'threshold', placeholder: '0.62', help: "Raw isolation score at the band's edge (0.5 to 1)" },
    ],
  },
  {
    value: 'static',
    label: 'Static thresholds',
    description: 'Fixed band between lower and upper',
    params: [
      { name: 'upper', placeholder: '', help: 'Upper threshold' },
      { name: 'lower', placeholder: '', help: 'Lower threshold' },
    ],
  },
];

export const ALERT_STATES: AlertState[] = ['firing', 'pending', 'resolved'];
