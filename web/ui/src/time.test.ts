import { ago, autoStep, formatDuration, parseDuration, parseTime, roundDuration } from './time';

describe('durations', () => {
  test.each([
    ['1h', 3600_000],
    ['1h30m', 5400_000],
    ['2d', 172800_000],
    ['1w', 604800_000],
    ['1y', 31536000_000],
    ['15s', 15_000],
    ['250ms', 250],
    ['1h2m3s4ms', 3723_004],
    ['', null],
    ['0s', null],
    ['1x', null],
    ['h1', null],
    ['1m1h', null], // units in order only, as PromQL
  ])('parseDuration(%p) = %p', (s, ms) => {
    expect(parseDuration(s)).toBe(ms);
  });

  test.each([
    [3600_000, '1h'],
    [5400_000, '1h30m'],
    [90_000, '1m30s'],
    [604800_000 + 86400_000, '1w1d'],
    [0, '0s'],
  ])('formatDuration(%p) = %p', (ms, s) => {
    expect(formatDuration(ms)).toBe(s);
    if (ms > 0) {
      expect(parseDuration(s)).toBe(ms);
    }
  });

  test('roundDuration keeps the two largest units', () => {
    expect(formatDuration(roundDuration(3723_004))).toBe('1h2m');
    expect(formatDuration(roundDuration(3600_000 + 4))).toBe('1h');
  });

  test('ago rounds to seconds', () => {
    expect(ago(0, 41_981)).toBe('42s ago');
    expect(ago(0, 500)).toBe('just now');
    expect(ago(0, 3723_004)).toBe('1h2m ago');
  });
});

describe('autoStep', () => {
  test.each([
    [3600_000, 15_000], // 1h: 240 points
    [6 * 3600_000, 120_000],
    [7 * 86400_000, 3600_000],
    [30 * 86400_000, 3 * 3600_000], // a month: 240 points of 3h
    [60_000, 1_000],
  ])('autoStep(%p) = %p', (range, step) => {
    expect(autoStep(range)).toBe(step);
    expect(range / step).toBeLessThanOrEqual(11000); // Prometheus's limit of points per series
  });
});

describe('parseTime', () => {
  test('Unix seconds', () => expect(parseTime('1700000000.5')).toBe(1700000000500));
  test('RFC 3339', () => expect(parseTime('2024-05-01T10:00:00Z')).toBe(Date.UTC(2024, 4, 1, 10)));
  test('local time', () => expect(parseTime('2024-05-01 10:00')).toBe(new Date(2024, 4, 1, 10).getTime()));
  test('junk', () => expect(parseTime('yesterday')).toBeNull());
});
