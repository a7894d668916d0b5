// Page state in the URL, so that a page can be shared and reloaded: each
// page keeps its inputs in the query string (and the tenant in "tenant").

export function readParams(): URLSearchParams {
  return new URLSearchParams(window.location.search);
}

// writeParams replaces the query string with params (empty values left
// out), adding a history entry when push is set.
export function writeParams(params: Record<string, string | undefined>, push = false): void {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== '') {
      p.set(k, v);
    }
  }
  const qs = p.toString();
  const url = window.location.pathname + (qs ? `?${qs}` : '');
  if (url === window.location.pathname + window.location.search) {
    return;
  }
  if (push) {
    window.history.pushState(null, '', url);
  } else {
    window.history.replaceState(null, '', url);
  }
}

// The UI's pages, by the last element of their path.
export type PageName = 'query' | 'anomaly' | 'alerts' | 'status';

export function currentPage(pathname = window.location.pathname): PageName {
  const last = pathname.replace(/\/+$/, '').split('/').pop() ?? '';
  if (last === 'anomaly' || last === 'alerts' || last === 'status') {
    return last;
  }
  return 'query';
}

// pageURL is the relative URL of page with query string qs: relative, so
// that a path prefix in front of Strata is kept.
export function pageURL(page: PageName, qs = ''): string {
  return page + (qs ? `?${qs}` : '');
}
