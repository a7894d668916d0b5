import { alignMatrix } from './series';

describe('alignMatrix', () => {
  test('series on the step grid share one x array, null where a series has no sample', () => {
    const a = alignMatrix(
      [
        { metric: { a: '1' }, values: [[100, '1'], [110, '2'], [120, '3']] },
        { metric: { a: '2' }, values: [[110, '5'], [130, 'NaN']] },
      ],
      100,
      130,
      10,
    );
    expect(a.xs).toEqual([100, 110, 120, 130]);
    expect(a.ys).toEqual([
      [1, 2, 3, null],
      [null, 5, null, null], // NaN is drawn as a gap
    ]);
  });

  test('samples off the grid fall back to the union of timestamps', () => {
    const a = alignMatrix(
      [
        { metric: {}, values: [[100.5, '1'], [117, '2']] },
        { metric: {}, values: [[117, '3']] },
      ],
      100,
      120,
      10,
    );
    expect(a.xs).toEqual([100.5, 117]);
    expect(a.ys).toEqual([
      [1, 2],
      [null, 3],
    ]);
  });

  test('thousands of series over a month at 1h', () => {
    const n = 721;
    const series = Array.from({ length: 2000 }, (_, i) => ({
      metric: { i: String(i) },
      values: Array.from({ length: n }, (_, k) => [k * 3600, String(k + i)] as [number, string]),
    }));
    const a = alignMatrix(series, 0, (n - 1) * 3600, 3600);
    expect(a.xs.length).toBe(n);
    expect(a.ys.length).toBe(2000);
    expect(a.ys[1999][720]).toBe(720 + 1999);
  });
});
