// Screenshot check of the QueryEditor: builds the test page, serves it on a
// free local port, renders it in Debian's Chromium (headless, through
// playwright-core) and saves the picture to $SCREENSHOT_OUT (default
// tests/screenshot/build/query-editor.png;
// `make screenshot-docs` refreshes docs/query-editor.png). It fails when the page
// logs an error, when an editor does not render what a user should see, or
// when the metric autocompletion does not open.
const fs = require('fs');
const http = require('http');
const path = require('path');
const { execFileSync } = require('child_process');
const { chromium } = require('playwright-core');

const root = path.join(__dirname, '..', '..');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const out = process.env.SCREENSHOT_OUT || path.join(__dirname, 'build', 'query-editor.png');

function fail(msg) {
  console.error('screenshot check failed: ' + msg);
  process.exitCode = 1;
}

async function main() {
  if (!fs.existsSync(chromiumPath)) {
    throw new Error(`no Chromium at ${chromiumPath}: install it (apt-get install chromium) or set CHROMIUM`);
  }
  execFileSync(process.execPath, [require.resolve('webpack-cli/bin/cli.js'), '--config', path.join(__dirname, 'webpack.config.js')], {
    cwd: root,
    stdio: 'inherit',
  });

  const server = http.createServer((req, res) => {
    const name = req.url === '/' ? 'index.html' : path.basename(req.url.split('?')[0]);
    const file = name === 'index.html' ? path.join(__dirname, name) : path.join(__dirname, 'build', name);
    fs.readFile(file, (err, body) => {
      if (err) {
        res.writeHead(404);
        res.end();
        return;
      }
      res.writeHead(200, { 'Content-Type': name.endsWith('.html') ? 'text/html' : 'application/javascript' });
      res.end(body);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}/`;

  const browser = await chromium.launch({
    executablePath: chromiumPath,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 720 } });
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      // React's development build warns through console.error too. Failed
      // loads are judged by their URL below.
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) {
        errors.push(m.text());
      }
    });
    page.on('response', (r) => {
      // The icons of @grafana/ui are served by Grafana, not by this page.
      if (r.status() >= 400 && !/\/img\/icons\//.test(r.url())) {
        errors.push(`HTTP ${r.status()} for ${r.url()}`);
      }
    });
    await page.goto(url);
    for (const id of ['A', 'B', 'C']) {
      await page.waitForSelector(`[data-testid=editor-${id}] [data-testid=strata-query-editor]`, { timeout: 30000 });
    }
    const text = await page.innerText('body');
    for (const want of ['Query type', 'PromQL', 'Anomaly band', 'Alert states', 'Expression', 'Legend', 'Min step', 'Detector', 'season', 'Alert name', 'States']) {
      if (!text.includes(want)) {
        fail(`the page does not show "${want}"`);
      }
    }
    const expr = await page.inputValue('[data-testid=editor-A] #strata-expr');
    if (!expr.includes('node_cpu_seconds_total')) {
      fail(`the PromQL expression is not shown (got ${JSON.stringify(expr)})`);
    }
    // Open the metric autocompletion of the first editor, as a user would.
    await page.click('[data-testid=editor-A] #strata-metric');
    await page.waitForSelector('[role=option]:has-text("node_load1")', { timeout: 10000 });
    fs.mkdirSync(path.dirname(out), { recursive: true });
    await page.screenshot({ path: out, fullPage: true });
    if (errors.length) {
      fail('the page logged errors:\n' + errors.join('\n'));
    }
    console.log(`screenshot: ${path.relative(root, out)} (${fs.statSync(out).size} bytes)`);
  } finally {
    await browser.close();
    server.close();
  }
}

main().catch((e) => {
  fail(e.stack || String(e));
});
