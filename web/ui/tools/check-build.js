// Rebuilds the UI into a temporary directory and compares it, byte for
// byte, with the committed build in ../dist: it fails when the committed
// build is not what its sources make (a source changed without a rebuild,
// or a hand-edited build). `make -C web/ui build` refreshes ../dist.
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');

const root = path.join(__dirname, '..');
const committed = path.join(root, '..', 'dist');

function files(dir, rel = '') {
  const out = [];
  for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const r = path.join(rel, e.name);
    if (e.isDirectory()) {
      out.push(...files(dir, r));
    } else {
      out.push(r);
    }
  }
  return out.sort();
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-ui-build-'));
try {
  execFileSync(process.execPath, [require.resolve('webpack-cli/bin/cli.js'), '--config', path.join(root, 'webpack.config.js'), '--mode', 'production', '--env', `dist=${tmp}`], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const want = files(tmp);
  const got = files(committed);
  const problems = [];
  for (const f of new Set([...want, ...got])) {
    if (!want.includes(f)) {
      problems.push(`${f}: in web/dist, not made by the build`);
    } else if (!got.includes(f)) {
      problems.push(`${f}: made by the build, missing from web/dist`);
    } else if (!fs.readFileSync(path.join(tmp, f)).equals(fs.readFileSync(path.join(committed, f)))) {
      problems.push(`${f}: differs from what the build makes`);
    }
  }
  if (problems.length) {
    console.error('web/dist is out of date with web/ui (run `make -C web/ui build` and commit web/dist):\n  ' + problems.join('\n  '));
    process.exitCode = 1;
  } else {
    console.log(`web/dist is what web/ui builds (${want.length} files)`);
  }
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
