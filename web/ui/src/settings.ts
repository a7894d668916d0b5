// What the user chose that outlives a page: the tenant and the theme in
// localStorage, credentials in sessionStorage (gone with the browser tab).

export type Theme = 'light' | 'dark';

export type Credentials =
  | { kind: 'none' }
  | { kind: 'bearer'; token: string }
  | { kind: 'basic'; user: string; password: string };

const tenantKey = 'strata.tenant';
const themeKey = 'strata.theme';
const credentialsKey = 'strata.credentials';

function read(storage: Storage | undefined, key: string): string | null {
  try {
    return storage ? storage.getItem(key) : null;
  } catch {
    return null; // storage disabled: nothing is remembered
  }
}

function write(storage: Storage | undefined, key: string, value: string | null): void {
  try {
    if (!storage) {
      return;
    }
    if (value === null) {
      storage.removeItem(key);
    } else {
      storage.setItem(key, value);
    }
  } catch {
    // storage disabled or full: the choice lasts for this page only
  }
}

const local = typeof localStorage === 'undefined' ? undefined : localStorage;
const session = typeof sessionStorage === 'undefined' ? undefined : sessionStorage;

// The tenant of a shared link wins over the remembered one.
export function loadTenant(search: string): string {
  const fromURL = new URLSearchParams(search).get('tenant');
  return fromURL ?? read(local, tenantKey) ?? '';
}

export function saveTenant(tenant: string): void {
  write(local, tenantKey, tenant === '' ? null : tenant);
}

export function loadTheme(): Theme {
  const t = read(local, themeKey);
  if (t === 'light' || t === 'dark') {
    return t;
  }
  const dark = typeof matchMedia !== 'undefined' && matchMedia('(prefers-color-scheme: dark)').matches;
  return dark ? 'dark' : 'light';
}

export function saveTheme(theme: Theme): void {
  write(local, themeKey, theme);
}

export function loadCredentials(): Credentials {
  const raw = read(session, credentialsKey);
  if (raw) {
    try {
      const c = JSON.parse(raw) as Credentials;
      if (c.kind === 'bearer' || c.kind === 'basic') {
        return c;
      }
    } catch {
      // ignore what cannot be read
    }
  }
  return { kind: 'none' };
}

export function saveCredentials(c: Credentials): void {
  write(session, credentialsKey, c.kind === 'none' ? null : JSON.stringify(c));
}
