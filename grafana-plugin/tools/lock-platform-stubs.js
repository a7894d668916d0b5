#!/usr/bin/env node
// Completes package-lock.json with the platform-specific optional packages
// (@swc/core-darwin-arm64, @unrs/resolver-binding-win32-x64-msvc, ...) that
// the registry mirror of this workplace does not serve, so `npm install`
// leaves them out of the lock and `npm ci` then refuses the lock as out of
// sync. Each missing package gets the entry a complete registry would have
// written (version, optional, os, cpu, libc); npm ci skips them on other
// platforms without fetching them. Run it after every `npm install`:
//   node tools/lock-platform-stubs.js
const fs = require('fs');
const path = require('path');

const lockPath = path.join(__dirname, '..', 'package-lock.json');
const lock = JSON.parse(fs.readFileSync(lockPath, 'utf8'));
const pkgs = lock.packages;

const OS = ['darwin', 'linux', 'win32', 'android', 'freebsd', 'openharmony', 'sunos', 'aix', 'netbsd', 'openbsd'];
const CPU = ['arm64', 'x64', 'ia32', 'arm', 'ppc64', 's390x', 'riscv64', 'loong64', 'wasm32', 'mips64el'];

// platformOf reads os, cpu and libc from a package name such as
// @swc/core-linux-arm-gnueabihf or @unrs/resolver-binding-linux-x64-musl.
function platformOf(name) {
  const parts = name.split('/').pop().split('-');
  const os = parts.find((p) => OS.includes(p));
  const cpu = parts.find((p) => CPU.includes(p));
  if (!os || !cpu) {
    return undefined;
  }
  const out = { os: [os], cpu: [cpu] };
  if (os === 'linux' && parts.includes('musl')) {
    out.libc = ['musl'];
  } else if (os === 'linux' && parts.some((p) => p.startsWith('gnu'))) {
    out.libc = ['glibc'];
  }
  return out;
}

// resolves reports whether dep is found from the package at dir, as Node's
// lookup walks up the node_modules folders.
function resolves(dir, dep) {
  let d = dir;
  for (;;) {
    if (pkgs[(d ? d + '/' : '') + 'node_modules/' + dep]) {
      return true;
    }
    const i = d.lastIndexOf('/node_modules/');
    if (d === '') {
      return false;
    }
    d = i < 0 ? '' : d.slice(0, i);
  }
}

let added = 0;
for (const [dir, entry] of Object.entries(pkgs)) {
  for (const [dep, spec] of Object.entries(entry.optionalDependencies || {})) {
    if (resolves(dir, dep)) {
      continue;
    }
    const platform = platformOf(dep);
    if (!platform || !/^\d+\.\d+\.\d+(-[\w.]+)?$/.test(spec)) {
      console.error(`cannot complete ${dep}@${spec} (needed by ${dir || 'the root'}): not a pinned platform package`);
      process.exitCode = 1;
      continue;
    }
    pkgs['node_modules/' + dep] = { version: spec, optional: true, ...platform };
    added++;
  }
}
const sorted = Object.fromEntries(Object.entries(pkgs).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : 1)));
lock.packages = sorted;
fs.writeFileSync(lockPath, JSON.stringify(lock, null, 2) + '\n');
console.log(`package-lock.json: ${added} platform packages added`);
