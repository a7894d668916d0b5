// The sources of the built UI, and their manifest in sha256sum's format
// ("<sha256>  <path>" per line, sorted by path, relative to web/ui). The
// build writes it to ../dist/SOURCES.sha256; web.TestDistUpToDate
// recomputes it from the same files and fails when they differ.
// Keep the file selection in step with sourceFiles in web/dist_test.go.
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const topFiles = ['package.json', 'package-lock.json', 'webpack.config.js', 'tsconfig.json', 'tools/sources.js'];

// sources lists the files that the build reads, relative to root: the top
// files and everything under src/ except tests.
function sources(root) {
  const out = [...topFiles];
  const walk = (dir) => {
    for (const e of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
      const rel = `${dir}/${e.name}`;
      if (e.isDirectory()) {
        walk(rel);
      } else if (!/\.test\.tsx?$/.test(e.name)) {
        out.push(rel);
      }
    }
  };
  walk('src');
  return out.sort().map((rel) => ({ rel, root }));
}

function manifest(files) {
  return files
    .map(({ rel, root }) => {
      const sum = crypto.createHash('sha256').update(fs.readFileSync(path.join(root, rel))).digest('hex');
      return `${sum}  ${rel}\n`;
    })
    .join('');
}

module.exports = { sources, manifest };
