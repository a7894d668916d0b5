import type { Labels } from './api';

// seriesName writes a label set as PromQL does: name{a="1", b="2"}.
export function seriesName(metric: Labels, skip: string[] = []): string {
  const name = metric['__name__'] ?? '';
  const parts = Object.keys(metric)
    .filter((k) => k !== '__name__' && !skip.includes(k))
    .sort()
    .map((k) => `${k}=${JSON.stringify(metric[k])}`);
  if (parts.length === 0) {
    return name === '' ? '{}' : name;
  }
  return `${name}{${parts.join(', ')}}`;
}

// formatValue writes a sample value compactly, as a person reads it.
export function formatValue(v: number): string {
  if (Number.isNaN(v)) {
    return 'NaN';
  }
  if (!Number.isFinite(v)) {
    return v > 0 ? '+Inf' : '-Inf';
  }
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e15 || a < 1e-4)) {
    return v.toExponential(3);
  }
  return parseFloat(v.toPrecision(6)).toString();
}

// formatSI writes n with a metric prefix: 1.2k, 3.4M.
export function formatSI(n: number, digits = 3): string {
  if (!Number.isFinite(n)) {
    return String(n);
  }
  const a = Math.abs(n);
  const prefixes: [number, string][] = [
    [1e12, 'T'],
    [1e9, 'G'],
    [1e6, 'M'],
    [1e3, 'k'],
  ];
  for (const [size, p] of prefixes) {
    if (a >= size) {
      return parseFloat((n / size).toPrecision(digits)) + p;
    }
  }
  return parseFloat(n.toPrecision(digits)).toString();
}

// formatBytes writes n bytes in binary units.
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${parseFloat(v.toPrecision(3))} ${units[i]}`;
}
