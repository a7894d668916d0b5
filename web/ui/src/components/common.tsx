import { useEffect, useState } from 'react';

import { APIError } from '../api';

// ErrorBox shows an error of the API as the server worded it.
export function ErrorBox({ error }: { error: unknown }) {
  if (!error) {
    return null;
  }
  const msg = error instanceof APIError ? error.message : error instanceof Error ? error.message : String(error);
  return (
    <div className="error-box" role="alert">
      {msg}
    </div>
  );
}

export function Notes({ warnings, infos }: { warnings?: string[]; infos?: string[] }) {
  if (!warnings?.length && !infos?.length) {
    return null;
  }
  return (
    <div className="notes">
      {warnings?.map((w, i) => (
        <div key={`w${i}`} className="warning-box">
          {w}
        </div>
      ))}
      {infos?.map((w, i) => (
        <div key={`i${i}`} className="info-box">
          {w}
        </div>
      ))}
    </div>
  );
}

// useAsync runs load when deps change and on refresh(), keeping the last
// answer while a new one is asked; an answer to an older request is dropped.
export function useAsync<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[]) {
  const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean }>({ loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const ctrl = new AbortController();
    setState((s) => ({ ...s, loading: true }));
    load(ctrl.signal).then(
      (data) => !ctrl.signal.aborted && setState({ data, loading: false }),
      (error) => !ctrl.signal.aborted && setState((s) => ({ data: s.data, error, loading: false })),
    );
    return () => ctrl.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);
  return { ...state, refresh: () => setTick((t) => t + 1) };
}

export function Section({ title, children, testId, aside }: { title: string; children: React.ReactNode; testId?: string; aside?: React.ReactNode }) {
  return (
    <section className="card" data-testid={testId}>
      <header className="card-head">
        <h2>{title}</h2>
        {aside}
      </header>
      {children}
    </section>
  );
}
