import type { MatrixSeries } from './api';

// Aligned is a matrix in uPlot's layout: one x array (Unix seconds) and one
// y array per series, null where the series has no sample.
export interface Aligned {
  xs: number[];
  ys: (number | null)[][];
}

export function sampleValue(s: string): number | null {
  const v = parseFloat(s);
  return Number.isFinite(v) ? v : null;
}

// alignMatrix lays out series of a range query over start..end (seconds) by
// step (seconds). Samples off that grid (a matrix from elsewhere) fall back
// to the sorted union of every series' timestamps.
export function alignMatrix(series: MatrixSeries[], start: number, end: number, step: number): Aligned {
  const n = step > 0 ? Math.floor((end - start) / step + 1e-9) + 1 : 0;
  const onGrid =
    n > 0 &&
    n <= 1_000_000 &&
    series.every((s) =>
      (s.values ?? []).every(([t]) => {
        const i = (t - start) / step;
        return i >= 0 && i < n && Math.abs(i - Math.round(i)) < 1e-6;
      }),
    );
  if (onGrid) {
    const xs = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      xs[i] = start + i * step;
    }
    const ys = series.map((s) => {
      const y = new Array<number | null>(n).fill(null);
      for (const [t, v] of s.values ?? []) {
        y[Math.round((t - start) / step)] = sampleValue(v);
      }
      return y;
    });
    return { xs, ys };
  }
  const times = new Set<number>();
  for (const s of series) {
    for (const [t] of s.values ?? []) {
      times.add(t);
    }
  }
  const xs = [...times].sort((a, b) => a - b);
  const index = new Map(xs.map((t, i) => [t, i]));
  const ys = series.map((s) => {
    const y = new Array<number | null>(xs.length).fill(null);
    for (const [t, v] of s.values ?? []) {
      y[index.get(t)!] = sampleValue(v);
    }
    return y;
  });
  return { xs, ys };
}

// A palette that stays readable on light and dark backgrounds.
const palette = [
  '#3274d9', '#e0752d', '#37a35c', '#d44a3a', '#8f59c9', '#1f9fb4', '#c98a00', '#d25fa4',
  '#5a8c00', '#6674c4', '#b5523b', '#2a9d8f', '#9c6ade', '#e36209', '#4c9f38', '#b8336a',
];

export function seriesColor(i: number): string {
  return palette[i % palette.length];
}
