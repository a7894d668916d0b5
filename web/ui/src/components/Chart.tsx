import { useContext, useEffect, useRef } from 'react';
import uPlot from 'uplot';

import { formatValue } from '../format';
import { ThemeContext } from '../theme';
import { formatTime } from '../time';

export interface ChartSeries {
  label: string;
  values: (number | null)[];
  color: string;
  width?: number;
  dash?: number[];
  // fill under the line (a band's edges fill nothing; bands do)
  fill?: string;
  // no hover read-out: edges of a band
  quiet?: boolean;
}

export interface ChartBand {
  // indices into series of the upper and lower edge
  upper: number;
  lower: number;
  fill: string;
}

export interface ChartProps {
  xs: number[];
  series: ChartSeries[];
  bands?: ChartBand[];
  height?: number;
  // fixed y range, e.g. [0, 1] for scores
  yRange?: [number, number];
  // horizontal rules drawn across the plot, e.g. a threshold
  rules?: { value: number; color: string }[];
  // a time range selected by dragging across the chart, in Unix seconds;
  // without it, dragging does nothing
  onZoom?: (from: number, to: number) => void;
  testId?: string;
}

function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888';
}

// Chart draws time series with uPlot, which draws tens of thousands of
// points per series on a canvas without a DOM node per point: a query of
// thousands of series over a month at 1h stays responsive. Hovering shows
// the series nearest to the pointer.
export function Chart({ xs, series, bands, height = 320, yRange, rules, onZoom, testId }: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const tip = useRef<HTMLDivElement>(null);
  const theme = useContext(ThemeContext);
  const zoom = useRef(onZoom);
  zoom.current = onZoom;

  useEffect(() => {
    const el = box.current;
    if (!el) {
      return;
    }
    const axisColor = cssVar('--fg-muted');
    const gridColor = cssVar('--grid');
    const font = '11px system-ui, sans-serif';
    let drawn = 0;
    const opts: uPlot.Options = {
      width: Math.max(el.clientWidth, 200),
      height,
      legend: { show: false },
      // Dragging selects a time range, which the page queries anew (at a
      // finer step) instead of uPlot stretching the points it has.
      cursor: { points: { show: false }, drag: { x: true, y: false, setScale: false } },
      scales: { x: { time: true }, y: yRange ? { range: yRange } : { auto: true } },
      axes: [
        { stroke: axisColor, grid: { stroke: gridColor, width: 1 }, ticks: { stroke: gridColor }, font },
        {
          stroke: axisColor,
          grid: { stroke: gridColor, width: 1 },
          ticks: { stroke: gridColor },
          font,
          size: 60,
          values: (_u, splits) => splits.map((v) => (v == null ? '' : formatValue(v))),
        },
      ],
      series: [
        {},
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: s.width ?? 1.25,
          dash: s.dash,
          fill: s.fill,
          points: { show: false },
          spanGaps: false,
        })),
      ],
      bands: (bands ?? []).map((b) => ({ series: [b.upper + 1, b.lower + 1] as [number, number], fill: b.fill })),
      hooks: {
        setSelect: [
          (u) => {
            const { left, width } = u.select;
            if (width >= 5 && zoom.current) {
              zoom.current(u.posToVal(left, 'x'), u.posToVal(left + width, 'x'));
            }
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          },
        ],
        draw: [
          (u) => {
            drawn++;
            el.dataset.drawn = String(drawn);
            for (const r of rules ?? []) {
              const y = u.valToPos(r.value, 'y', true);
              if (y < u.bbox.top || y > u.bbox.top + u.bbox.height) {
                continue;
              }
              const ctx = u.ctx;
              ctx.save();
              ctx.strokeStyle = r.color;
              ctx.setLineDash([4, 4]);
              ctx.lineWidth = 1;
              ctx.beginPath();
              ctx.moveTo(u.bbox.left, y);
              ctx.lineTo(u.bbox.left + u.bbox.width, y);
              ctx.stroke();
              ctx.restore();
            }
          },
        ],
        setCursor: [
          (u) => {
            const t = tip.current;
            if (!t) {
              return;
            }
            const idx = u.cursor.idx;
            const top = u.cursor.top ?? -1;
            if (idx == null || top < 0) {
              t.style.display = 'none';
              return;
            }
            // The series drawn nearest to the pointer at this time.
            let best = -1;
            let bestDist = Infinity;
            for (let i = 1; i < u.series.length; i++) {
              if (series[i - 1].quiet || !u.series[i].show) {
                continue;
              }
              const v = u.data[i][idx];
              if (v == null) {
                continue;
              }
              const d = Math.abs(u.valToPos(v, 'y') - top);
              if (d < bestDist) {
                bestDist = d;
                best = i;
              }
            }
            if (best < 0) {
              t.style.display = 'none';
              return;
            }
            const v = u.data[best][idx] as number;
            t.replaceChildren();
            const time = document.createElement('div');
            time.className = 'tip-time';
            time.textContent = formatTime(u.data[0][idx] * 1000);
            const name = document.createElement('div');
            name.className = 'tip-series';
            const swatch = document.createElement('span');
            swatch.className = 'swatch';
            swatch.style.background = series[best - 1].color;
            name.append(swatch, series[best - 1].label);
            const value = document.createElement('div');
            value.className = 'tip-value';
            value.textContent = formatValue(v);
            t.append(time, name, value);
            t.style.display = 'block';
            const left = (u.cursor.left ?? 0) + u.bbox.left / devicePixelRatio;
            const flip = left > el.clientWidth / 2;
            t.style.left = flip ? '' : `${left + 12}px`;
            t.style.right = flip ? `${el.clientWidth - left + 12}px` : '';
            t.style.top = `${top + 8}px`;
          },
        ],
      },
    };
    const data: uPlot.AlignedData = [xs, ...series.map((s) => s.values)] as uPlot.AlignedData;
    const plot = new uPlot(opts, data, el);
    el.dataset.seriesCount = String(series.length);
    const ro = new ResizeObserver(() => {
      const w = Math.max(el.clientWidth, 200);
      if (w !== plot.width) {
        plot.setSize({ width: w, height });
      }
    });
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.destroy();
    };
    // Colours come from the theme's CSS variables: redraw when it changes.
  }, [xs, series, bands, height, yRange, rules, theme]);

  return (
    <div className="chart" ref={box} data-testid={testId}>
      <div className="chart-tip" ref={tip} />
    </div>
  );
}
