import { currentPage, pageURL } from './url';

describe('pages', () => {
  test.each([
    ['/', 'query'],
    ['/query', 'query'],
    ['/anomaly', 'anomaly'],
    ['/alerts', 'alerts'],
    ['/status', 'status'],
    ['/strata/status', 'status'], // behind a reverse proxy's prefix
    ['/strata/', 'query'],
    ['/unknown', 'query'],
  ])('currentPage(%p) = %p', (path, page) => {
    expect(currentPage(path)).toBe(page);
  });

  test('page URLs are relative, so that a prefix is kept', () => {
    expect(pageURL('status')).toBe('status');
    expect(pageURL('query', 'expr=up')).toBe('query?expr=up');
    expect(new URL(pageURL('anomaly'), 'http://h/strata/query?expr=up').pathname).toBe('/strata/anomaly');
  });
});
