// The client of Strata's HTTP API: every request names the tenant chosen in
// the UI (X-Scope-OrgID) and carries the user's credentials when tenant
// authentication is on. URLs are relative to the page, so that the UI works
// under a reverse proxy's path prefix.
import type { Credentials } from './settings';

export class APIError extends Error {
  constructor(
    readonly status: number,
    readonly errorType: string,
    message: string,
  ) {
    super(message);
  }
}

export interface Answer<T> {
  data: T;
  warnings: string[];
  infos: string[];
}

let tenant = '';
let credentials: Credentials = { kind: 'none' };

// setIdentity sets the tenant and credentials of every later request.
export function setIdentity(t: string, c: Credentials): void {
  tenant = t;
  credentials = c;
}

export function identityHeaders(): Record<string, string> {
  const h: Record<string, string> = {};
  if (tenant !== '') {
    h['X-Scope-OrgID'] = tenant;
  }
  if (credentials.kind === 'bearer' && credentials.token !== '') {
    h['Authorization'] = `Bearer ${credentials.token}`;
  } else if (credentials.kind === 'basic' && credentials.user !== '') {
    h['Authorization'] = `Basic ${btoa(unescape(encodeURIComponent(`${credentials.user}:${credentials.password}`)))}`;
  }
  return h;
}

// apiFetch is fetch for the API: relative to the page, with the identity.
export function apiFetch(resource: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  for (const [k, v] of Object.entries(identityHeaders())) {
    headers.set(k, v);
  }
  const url = resource.startsWith('/') ? resource.slice(1) : resource;
  return fetch(url, { ...init, headers, credentials: 'same-origin' });
}

export type Params = Record<string, string | string[] | undefined>;

function encode(params: Params): URLSearchParams {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined) {
      continue;
    }
    for (const item of Array.isArray(v) ? v : [v]) {
      p.append(k, item);
    }
  }
  return p;
}

// call asks path (e.g. "api/v1/query") and returns the data of Prometheus's
// answer envelope, or throws an APIError with the server's message. Queries
// go as POST forms, so that long expressions fit.
export async function call<T>(path: string, params: Params = {}, opts: { post?: boolean; signal?: AbortSignal } = {}): Promise<Answer<T>> {
  const body = encode(params);
  let resp: Response;
  if (opts.post) {
    resp = await apiFetch(path, {
      method: 'POST',
      body,
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      signal: opts.signal,
    });
  } else {
    const qs = body.toString();
    resp = await apiFetch(qs ? `${path}?${qs}` : path, { signal: opts.signal });
  }
  const text = await resp.text();
  let json: { status?: string; data?: T; error?: string; errorType?: string; warnings?: string[]; infos?: string[] } | undefined;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (!resp.ok || !json || json.status !== 'success') {
    const msg = json?.error ?? (text.trim() || resp.statusText);
    throw new APIError(resp.status, json?.errorType ?? 'http', `${resp.status}: ${msg}`);
  }
  return { data: json.data as T, warnings: json.warnings ?? [], infos: json.infos ?? [] };
}

// Shapes of the answers the pages read.

export type Labels = Record<string, string>;

export interface MatrixSeries {
  metric: Labels;
  values?: [number, string][];
  histograms?: [number, { count: string; sum: string }][];
}

export interface VectorSample {
  metric: Labels;
  value?: [number, string];
  histogram?: [number, { count: string; sum: string }];
}

export type QueryResult =
  | { resultType: 'matrix'; result: MatrixSeries[] }
  | { resultType: 'vector'; result: VectorSample[] }
  | { resultType: 'scalar'; result: [number, string] }
  | { resultType: 'string'; result: [number, string] };

export interface BuildInfo {
  version: string;
  revision: string;
  branch: string;
  buildUser: string;
  buildDate: string;
  goVersion: string;
}

export interface RuntimeInfo {
  startTime: string;
  CWD: string;
  hostname: string;
  serverTime: string;
  reloadConfigSuccess: boolean;
  lastConfigTime: string;
  corruptionCount: number;
  goroutineCount: number;
  GOMAXPROCS: number;
  GOMEMLIMIT: number;
  GOGC: string;
  GODEBUG: string;
  storageRetention: string;
}

export interface TenantInfo {
  tenant: string;
  open: boolean;
  openError?: string;
  headSeries: number;
  headMinTime: number;
  headMaxTime: number;
  maxActiveSeries: number;
  localBlocks: number;
  pendingBlocks: number;
  bucketBlocks: number;
  ingested: Record<string, number>;
  rejected: Record<string, number>;
  bucketOnly?: boolean;
}

export interface TenantsAnswer {
  time: number;
  tenants: TenantInfo[];
}

export interface BlockMeta {
  ulid: string;
  minTime: number;
  maxTime: number;
  stats?: { numSamples?: number; numSeries?: number; numChunks?: number };
  compaction: { level: number; sources?: string[] };
  version: number;
  strata?: { resolution: number; source?: string };
}

export interface CompactorRun {
  start: string;
  end: string;
  error?: string;
  skipped?: boolean;
}

export interface CompactorStatus {
  enabled: boolean;
  passes: number;
  failedPasses: number;
  lastPass: CompactorRun | null;
  tenant: CompactorRun | null;
}

export interface Alert {
  labels: Labels;
  annotations: Labels;
  state: 'firing' | 'pending' | 'inactive';
  activeAt?: string;
  value: string;
}

export interface Rule {
  name: string;
  query: string;
  type: 'alerting' | 'recording' | 'anomaly';
  health: string;
  lastError?: string;
  lastEvaluation: string;
  evaluationTime?: number;
  labels?: Labels;
  annotations?: Labels;
  state?: 'firing' | 'pending' | 'inactive';
  duration?: number;
  alerts?: Alert[];
  detector?: string;
  params?: Record<string, string>;
  series?: number;
}

export interface RuleGroup {
  name: string;
  file: string;
  interval?: number;
  rules: Rule[];
  evaluationTime?: number;
  lastEvaluation?: string;
}

export interface DetectorParam {
  name: string;
  default: string;
  help: string;
}

export interface Detector {
  name: string;
  help: string;
  params: DetectorParam[];
}

// mergeGroups puts each group's anomaly rules (from /api/v1/anomaly/rules)
// beside its alerting and recording rules (from /api/v1/rules).
export function mergeGroups(groups: RuleGroup[], anomaly: RuleGroup[]): RuleGroup[] {
  const out = groups.map((g) => ({ ...g, rules: [...g.rules] }));
  for (const a of anomaly) {
    const g = out.find((x) => x.name === a.name && x.file === a.file);
    if (g) {
      g.rules = [...a.rules, ...g.rules];
    } else {
      out.push({ ...a });
    }
  }
  return out;
}
