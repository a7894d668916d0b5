import { useEffect, useState } from 'react';

import { call, setIdentity } from './api';
import { Credentials, loadCredentials, loadTenant, loadTheme, saveCredentials, saveTenant, saveTheme, Theme } from './settings';
import { AlertsPage } from './pages/AlertsPage';
import { AnomalyPage } from './pages/AnomalyPage';
import { QueryPage } from './pages/QueryPage';
import { StatusPage } from './pages/StatusPage';
import { applyTheme, ThemeContext } from './theme';
import { currentPage, PageName, pageURL, readParams, writeParams } from './url';

const pages: { name: PageName; title: string }[] = [
  { name: 'query', title: 'Query' },
  { name: 'anomaly', title: 'Anomaly' },
  { name: 'alerts', title: 'Alerts & rules' },
  { name: 'status', title: 'Status' },
];

export function App() {
  const [page, setPage] = useState<PageName>(currentPage());
  const [tenant, setTenant] = useState(() => loadTenant(window.location.search));
  const [credentials, setCredentials] = useState<Credentials>(loadCredentials);
  const [theme, setTheme] = useState<Theme>(loadTheme);
  const [showAuth, setShowAuth] = useState(false);
  // Bumped by the browser's back and forward buttons: the page is made
  // anew from the URL it returns to.
  const [visit, setVisit] = useState(0);
  // Identity before children render: their first requests use it.
  setIdentity(tenant, credentials);

  useEffect(() => {
    const onPop = () => {
      setPage(currentPage());
      setTenant(loadTenant(window.location.search));
      setVisit((v) => v + 1);
    };
    window.addEventListener('popstate', onPop);
    return () => window.removeEventListener('popstate', onPop);
  }, []);
  useEffect(() => applyTheme(theme), [theme]);

  const tenants = useTenantList(tenant, credentials);

  const go = (p: PageName) => (e: React.MouseEvent) => {
    if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) {
      return; // a new tab or window
    }
    e.preventDefault();
    window.history.pushState(null, '', pageURL(p, tenant ? `tenant=${encodeURIComponent(tenant)}` : ''));
    setPage(p);
  };
  const chooseTenant = (t: string) => {
    setTenant(t);
    saveTenant(t);
    const p = readParams();
    writeParams({ ...Object.fromEntries(p.entries()), tenant: t || undefined });
  };

  return (
    <ThemeContext.Provider value={theme}>
      <nav className="topbar">
        <a className="brand" href={pageURL('query')} onClick={go('query')}>
          Strata
        </a>
        {pages.map((p) => (
          <a key={p.name} href={pageURL(p.name)} onClick={go(p.name)} className={page === p.name ? 'nav active' : 'nav'} data-testid={`nav-${p.name}`}>
            {p.title}
          </a>
        ))}
        <span className="spacer" />
        <label className="tenant" title="The tenant every page reads, sent as X-Scope-OrgID (empty: the server's default tenant)">
          Tenant{' '}
          <input
            list="tenant-list"
            defaultValue={tenant}
            key={tenant}
            placeholder="default"
            data-testid="tenant"
            onBlur={(e) => e.target.value.trim() !== tenant && chooseTenant(e.target.value.trim())}
            onKeyDown={(e) => e.key === 'Enter' && (e.target as HTMLInputElement).blur()}
          />
          <datalist id="tenant-list">
            {tenants.map((t) => (
              <option key={t} value={t} />
            ))}
          </datalist>
        </label>
        <button type="button" className={credentials.kind === 'none' ? 'icon' : 'icon on'} onClick={() => setShowAuth(!showAuth)} title="Credentials sent with every request (tenant authentication)">
          {credentials.kind === 'none' ? 'Sign in' : 'Signed in'}
        </button>
        <button type="button" className="icon" onClick={() => { const t = theme === 'dark' ? 'light' : 'dark'; setTheme(t); saveTheme(t); }} title="Light or dark theme" data-testid="theme">
          {theme === 'dark' ? '☀ Light' : '☾ Dark'}
        </button>
      </nav>
      {showAuth && (
        <AuthForm
          value={credentials}
          onSave={(c) => {
            setCredentials(c);
            saveCredentials(c);
            setShowAuth(false);
          }}
          onClose={() => setShowAuth(false)}
        />
      )}
      <main key={`${tenant}\u0000${credentials.kind}\u0000${visit}`}>
        {page === 'query' && <QueryPage tenant={tenant} />}
        {page === 'anomaly' && <AnomalyPage tenant={tenant} />}
        {page === 'alerts' && <AlertsPage tenant={tenant} />}
        {page === 'status' && <StatusPage tenant={tenant} onTenant={chooseTenant} />}
      </main>
    </ThemeContext.Provider>
  );
}

// useTenantList asks the server for the tenants it holds (with tenant
// authentication, only the user's own), for the tenant input's choices.
function useTenantList(tenant: string, credentials: Credentials): string[] {
  const [list, setList] = useState<string[]>([]);
  useEffect(() => {
    const ctrl = new AbortController();
    call<{ tenants: { tenant: string }[] }>('api/v1/status/tenants', {}, { signal: ctrl.signal }).then(
      (a) => setList(a.data.tenants.map((t) => t.tenant)),
      () => setList([]),
    );
    return () => ctrl.abort();
  }, [tenant, credentials]);
  return list;
}

function AuthForm({ value, onSave, onClose }: { value: Credentials; onSave: (c: Credentials) => void; onClose: () => void }) {
  const [kind, setKind] = useState<Credentials['kind']>(value.kind);
  const [token, setToken] = useState(value.kind === 'bearer' ? value.token : '');
  const [user, setUser] = useState(value.kind === 'basic' ? value.user : '');
  const [password, setPassword] = useState(value.kind === 'basic' ? value.password : '');
  return (
    <form
      className="auth-form card"
      onSubmit={(e) => {
        e.preventDefault();
        onSave(kind === 'bearer' ? { kind, token } : kind === 'basic' ? { kind, user, password } : { kind: 'none' });
      }}
    >
      <p className="hint">With tenant authentication (-tenant.auth-file), the credentials decide the tenant. They are kept for this browser tab only.</p>
      <label>
        <input type="radio" checked={kind === 'none'} onChange={() => setKind('none')} /> None
      </label>
      <label>
        <input type="radio" checked={kind === 'bearer'} onChange={() => setKind('bearer')} /> Bearer token
      </label>
      <label>
        <input type="radio" checked={kind === 'basic'} onChange={() => setKind('basic')} /> User and password
      </label>
      {kind === 'bearer' && <input type="password" placeholder="token" value={token} onChange={(e) => setToken(e.target.value)} autoComplete="off" />}
      {kind === 'basic' && (
        <>
          <input placeholder="user" value={user} onChange={(e) => setUser(e.target.value)} autoComplete="username" />
          <input type="password" placeholder="password" value={password} onChange={(e) => setPassword(e.target.value)} autoComplete="current-password" />
        </>
      )}
      <div className="buttons">
        <button type="submit" className="primary">
          Save
        </button>
        <button type="button" onClick={onClose}>
          Cancel
        </button>
      </div>
    </form>
  );
}
