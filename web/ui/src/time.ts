// Durations in Prometheus's syntax (1y2w3d4h5m6s7ms), steps and times.

const units: [string, number][] = [
  ['y', 365 * 24 * 3600 * 1000],
  ['w', 7 * 24 * 3600 * 1000],
  ['d', 24 * 3600 * 1000],
  ['h', 3600 * 1000],
  ['m', 60 * 1000],
  ['s', 1000],
  ['ms', 1],
];

const durationRE = /^((\d+)y)?((\d+)w)?((\d+)d)?((\d+)h)?((\d+)m)?((\d+)s)?((\d+)ms)?$/;

// parseDuration returns the milliseconds of a duration such as "1h30m", or
// null when s is not one (or is zero).
export function parseDuration(s: string): number | null {
  const m = durationRE.exec(s.trim());
  if (!m || s.trim() === '') {
    return null;
  }
  let ms = 0;
  for (let i = 0; i < units.length; i++) {
    const v = m[2 + 2 * i];
    if (v !== undefined) {
      ms += parseInt(v, 10) * units[i][1];
    }
  }
  return ms > 0 ? ms : null;
}

// formatDuration writes ms in the same syntax, largest units first.
export function formatDuration(ms: number): string {
  if (ms <= 0 || !Number.isFinite(ms)) {
    return '0s';
  }
  let rest = Math.round(ms);
  let out = '';
  for (const [u, size] of units) {
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${u}`;
      rest -= n * size;
    }
  }
  return out;
}

// Steps a range query picks from: round numbers a person reads easily.
const niceSteps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400].map((s) => s * 1000);

// autoStep is the step of a range query over rangeMs for about width
// points (one per couple of pixels), a round number, at least 1s.
export function autoStep(rangeMs: number, points = 250): number {
  const raw = rangeMs / points;
  for (const s of niceSteps) {
    if (s >= raw) {
      return s;
    }
  }
  return Math.ceil(raw / 86400000) * 86400000;
}

// Ranges offered in the range picker.
export const rangeChoices = ['5m', '15m', '30m', '1h', '3h', '6h', '12h', '1d', '2d', '1w', '2w', '4w', '12w', '1y'];

function pad(n: number, w = 2): string {
  return String(n).padStart(w, '0');
}

// formatTime writes a Unix time in ms as "2024-05-01 13:45:07" in local time
// (or UTC), the form the time inputs take.
export function formatTime(ms: number, utc = false): string {
  const d = new Date(ms);
  if (utc) {
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  }
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// parseTime reads "2024-05-01 13:45[:07]" (local time), an RFC 3339 time or
// Unix seconds; null when s is none of these.
export function parseTime(s: string): number | null {
  const t = s.trim();
  if (t === '') {
    return null;
  }
  if (/^\d+(\.\d+)?$/.test(t)) {
    return Math.round(parseFloat(t) * 1000);
  }
  const m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2}))?$/.exec(t);
  if (m) {
    const d = new Date(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], m[6] ? +m[6] : 0);
    return d.getTime();
  }
  const ms = Date.parse(t);
  return Number.isNaN(ms) ? null : ms;
}

// ago writes how long before now ms was, roughly: "3m ago".
export function ago(ms: number, now = Date.now()): string {
  const d = now - ms;
  if (d < 0) {
    return 'in ' + formatDuration(roundDuration(Math.max(Math.round(-d / 1000), 1) * 1000));
  }
  if (d < 1000) {
    return 'just now';
  }
  return formatDuration(roundDuration(Math.round(d / 1000) * 1000)) + ' ago';
}

// roundDuration keeps the two largest units of ms (1h2m, not 1h2m3s4ms).
export function roundDuration(ms: number): number {
  let kept = 0;
  let rest = ms;
  let n = 0;
  for (const [, size] of units) {
    const q = Math.floor(rest / size);
    if (q > 0) {
      kept += q * size;
      rest -= q * size;
      if (++n === 2) {
        break;
      }
    } else if (n > 0) {
      break;
    }
  }
  return kept;
}
