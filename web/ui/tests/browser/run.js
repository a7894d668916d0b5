// Browser checks of Strata's web UI, run by web/browsertest (go test)
// against a real Strata that holds known data. STRATA_URL is the server,
// STRATA_EXPECT what it holds (JSON, see browser_test.go), SCREENSHOT_DIR
// where the pages' pictures go (`make -C web/ui screenshots` makes them
// into docs/webui/). Each page must load without a console error or a
// failed request, and show what the data makes true: the query draws one
// line per series, the anomaly view draws a band, the alerts page lists
// the tenant's rules, the status page lists the blocks the bucket holds.
const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const base = process.env.STRATA_URL;
const expect = JSON.parse(process.env.STRATA_EXPECT || '{}');
const shots = process.env.SCREENSHOT_DIR || path.join(__dirname, 'build');
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

let failures = 0;
function check(ok, msg) {
  if (ok) {
    console.log(`ok    ${msg}`);
  } else {
    console.log(`FAIL  ${msg}`);
    failures++;
  }
}

// open returns a page whose console errors, page errors and failed
// requests are collected in errors.
async function open(browser, theme = 'light') {
  const context = await browser.newContext({ viewport: { width: 1366, height: 860 }, colorScheme: theme });
  const page = await context.newPage();
  page.errors = [];
  // With page.unauthenticatedOK set, a 401 is expected for a request sent
  // without credentials (the sign-in check): such answers, and the console's
  // echo of them, are not errors; a 401 to a request that carried an
  // Authorization header still is. The header check is asynchronous; its
  // promises are kept in page.pending for the check to await.
  page.unauthenticatedOK = false;
  page.pending = [];
  page.on('pageerror', (e) => page.errors.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') {
      if (page.unauthenticatedOK && /status of 401/.test(m.text())) {
        return;
      }
      page.errors.push(`console: ${m.text()}`);
    }
  });
  page.on('response', (r) => {
    if (page.unauthenticatedOK && r.status() === 401) {
      page.pending.push(r.request().headerValue('authorization').then((auth) => {
        if (auth) {
          page.errors.push(`HTTP 401 for ${r.url()}, sent with credentials`);
        }
      }));
      return;
    }
    if (r.status() >= 400) {
      page.errors.push(`HTTP ${r.status()} for ${r.url()}`);
    }
  });
  page.on('requestfailed', (r) => {
    // A request the page itself cancelled (a newer query replaced it) is not a failure.
    if (!/ERR_ABORTED/.test(r.failure()?.errorText ?? '')) {
      page.errors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
    }
  });
  return page;
}

async function shot(page, name) {
  fs.mkdirSync(shots, { recursive: true });
  const file = path.join(shots, `${name}.png`);
  await page.screenshot({ path: file });
  console.log(`      screenshot ${file}`);
}

function noErrors(page, what) {
  check(page.errors.length === 0, `${what} loads without console errors or failed requests${page.errors.length ? ':\n        ' + page.errors.join('\n        ') : ''}`);
}

async function queryPage(browser) {
  const page = await open(browser);
  await page.goto(`${base}/query?tenant=${encodeURIComponent(expect.tenant)}&range=6h`);
  await page.waitForSelector('[data-testid=query-page] .cm-content');
  // Type the start of the metric name and take the completion, as a user would.
  await page.click('.cm-content');
  await page.keyboard.type('demo_req', { delay: 30 });
  const option = page.locator('.cm-tooltip-autocomplete li', { hasText: expect.query });
  await option.first().waitFor({ timeout: 15000 });
  check(true, `the editor completes "demo_req" to ${expect.query}`);
  await option.first().click(); // takes the completion
  const text = await page.locator('.cm-content').innerText();
  check(text.trim() === expect.query, `the completion is inserted (editor holds ${JSON.stringify(text.trim())})`);
  await page.keyboard.press('Enter'); // runs the query
  const chart = page.locator('[data-testid=query-chart][data-drawn]');
  await chart.waitFor({ timeout: 30000 });
  let count = parseInt(await chart.getAttribute('data-series-count'), 10);
  check(count === expect.querySeries, `the query draws ${expect.querySeries} series (drew ${count})`);
  // Label values complete too.
  await page.click('.cm-content');
  await page.keyboard.press('Control+A');
  await page.keyboard.type(`${expect.query}{method="`, { delay: 20 });
  await page.locator('.cm-tooltip-autocomplete li', { hasText: 'POST' }).first().waitFor({ timeout: 15000 });
  check(true, 'the editor completes the values of label method');
  await page.keyboard.press('Escape');
  // A rate of the counters, typed over the selection; brackets close
  // themselves and are stepped over.
  await page.click('.cm-content');
  await page.keyboard.press('Control+A');
  await page.keyboard.type(`rate(${expect.query}[5m])`, { delay: 10 });
  await page.keyboard.press('Escape'); // closes a completion list
  const typed = (await page.locator('.cm-content').innerText()).trim();
  check(typed === `rate(${expect.query}[5m])`, `the editor holds what was typed (${JSON.stringify(typed)})`);
  await page.click('[data-testid=execute]');
  await page.waitForFunction(() => new URL(location.href).searchParams.get('expr')?.startsWith('rate('), null, { timeout: 30000 });
  // rate() drops the metric name: the legend of the new answer starts with "{".
  await page.waitForFunction(() => document.querySelector('[data-testid=legend] li')?.textContent.startsWith('{'), null, { timeout: 30000 });
  await page.locator('[data-testid=query-chart][data-drawn]').waitFor({ timeout: 30000 });
  count = parseInt(await page.locator('[data-testid=query-chart]').getAttribute('data-series-count'), 10);
  check(count === expect.querySeries, `the rate draws ${expect.querySeries} series (drew ${count})`);
  const legend = await page.locator('[data-testid=legend] li').count();
  check(legend === expect.querySeries, `the legend lists ${expect.querySeries} series (lists ${legend})`);
  const url = new URL(page.url());
  check(url.searchParams.get('expr') === `rate(${expect.query}[5m])` && url.searchParams.get('tenant') === expect.tenant, `the URL holds the query and the tenant (${url.search})`);
  // Hovering the chart shows the nearest series and its value.
  const box = await page.locator('[data-testid=query-chart] .u-over').boundingBox();
  await page.mouse.move(box.x + box.width * 0.7, box.y + box.height * 0.3);
  const tip = page.locator('.chart-tip');
  await tip.waitFor({ state: 'visible', timeout: 5000 });
  const tipText = await tip.innerText();
  check(/\{instance="api-\d:8080", job="api", method="\w+"\}/.test(tipText), `hovering the chart shows the nearest series (${tipText.replace(/\s+/g, ' ')})`);
  await shot(page, 'query');
  noErrors(page, 'the query page');

  // The shared URL, opened anew, runs the same query; the table shows the
  // instant answer.
  const again = await open(browser);
  await again.goto(page.url().replace('tab=graph', 'tab=table'));
  const table = again.locator('[data-testid=result-table] tbody tr');
  await again.locator('[data-testid=result]').waitFor({ timeout: 30000 });
  await table.first().waitFor({ timeout: 30000 });
  const rows = await table.count();
  check(rows === expect.querySeries, `the shared URL's table shows ${expect.querySeries} series (shows ${rows})`);
  noErrors(again, 'the table view of a shared URL');
  await again.context().close();

  // The dark theme.
  const dark = await open(browser, 'dark');
  await dark.goto(page.url());
  await dark.locator('[data-testid=query-chart][data-drawn]').waitFor({ timeout: 30000 });
  const themeAttr = await dark.evaluate(() => document.documentElement.dataset.theme);
  check(themeAttr === 'dark', `a browser that prefers dark gets the dark theme (${themeAttr})`);
  await shot(dark, 'query-dark');
  // Dragging across the chart queries the selected time range.
  const over = await dark.locator('[data-testid=query-chart] .u-over').boundingBox();
  await dark.mouse.move(over.x + over.width * 0.4, over.y + over.height / 2);
  await dark.mouse.down();
  await dark.mouse.move(over.x + over.width * 0.6, over.y + over.height / 2, { steps: 5 });
  await dark.mouse.up();
  await dark.waitForFunction(() => new URL(location.href).searchParams.has('end'), null, { timeout: 15000 });
  const zoomed = new URL(dark.url()).searchParams;
  check(/^1h(\d+m)?(\d+s)?$/.test(zoomed.get('range')), `dragging across a fifth of 6h queries that range (range=${zoomed.get('range')}, end=${zoomed.get('end')})`);
  await dark.waitForFunction(() => /step (\d+)s/.exec(document.querySelector('[data-testid=result] .result-stats')?.textContent ?? '')?.[1] < 120, null, { timeout: 15000 });
  check(true, 'the zoomed range is queried at a finer step');
  // Back returns to the range before the zoom, queried anew.
  await dark.goBack();
  await dark.waitForFunction(() => !new URL(location.href).searchParams.has('end') && /step 120s/.test(document.querySelector('[data-testid=result] .result-stats')?.textContent ?? ''), null, { timeout: 15000 });
  check(true, "the browser's back button returns to the 6h range");
  noErrors(dark, 'the query page in the dark theme');
  await dark.context().close();
  await page.context().close();
}

// largeAnswer draws a query of thousands of series, as the issue's "fast
// with large answers" asks; the time to draw is reported, not asserted.
async function largeAnswer(browser) {
  const page = await open(browser);
  const began = Date.now();
  await page.goto(`${base}/query?tenant=${encodeURIComponent(expect.tenant)}&expr=${expect.largeQuery}&range=1h&step=30s`);
  const chart = page.locator('[data-testid=query-chart][data-drawn]');
  await chart.waitFor({ timeout: 120000 });
  const drawnIn = Date.now() - began;
  const count = parseInt(await chart.getAttribute('data-series-count'), 10);
  const timing = await page.evaluate(() => {
    const r = performance.getEntriesByType('resource').find((e) => e.name.includes('query_range'));
    return r ? { wait: Math.round(r.responseStart - r.requestStart), download: Math.round(r.responseEnd - r.responseStart), bytes: r.encodedBodySize } : null;
  });
  const stats = await page.locator('[data-testid=result] .result-stats').innerText();
  check(count === expect.largeSeries, `a query of ${expect.largeSeries} series draws them all (drew ${count}; page load to drawn ${drawnIn} ms; answer: ${JSON.stringify(timing)}; ${stats})`);
  const more = await page.locator('[data-testid=legend] li.more').innerText();
  check(more.includes(`${expect.largeSeries - 200} more`), `the legend lists the first 200 and counts the rest (${more})`);
  // Hovering stays responsive: the tip follows the pointer.
  const box = await page.locator('[data-testid=query-chart] .u-over').boundingBox();
  const hoverBegan = Date.now();
  for (let i = 0; i < 20; i++) {
    await page.mouse.move(box.x + box.width * (0.2 + i * 0.03), box.y + box.height * 0.5);
  }
  await page.locator('.chart-tip').waitFor({ state: 'visible', timeout: 5000 });
  check(true, `hovering ${expect.largeSeries} series: 20 pointer moves in ${Date.now() - hoverBegan} ms`);
  noErrors(page, 'a large answer');
  await page.context().close();
}

async function anomalyPage(browser) {
  const page = await open(browser);
  const q = new URLSearchParams({ tenant: expect.tenant, expr: expect.anomalyExpr, detector: 'adaptive', 'p.half_life': '1h', 'p.k': '3', range: '6h' });
  await page.goto(`${base}/anomaly?${q}`);
  const charts = page.locator('[data-testid=anomaly-charts]');
  await charts.waitFor({ timeout: 60000 });
  await page.locator('[data-testid=anomaly-value-chart][data-drawn]').waitFor({ timeout: 30000 });
  await page.locator('[data-testid=anomaly-score-chart][data-drawn]').waitFor({ timeout: 30000 });
  const points = parseInt(await charts.getAttribute('data-band-points'), 10);
  check(points > 100, `the anomaly view draws a band (${points} points with a band)`);
  const series = parseInt(await page.locator('[data-testid=anomaly-result]').getAttribute('data-series-count'), 10);
  check(series === expect.anomalySeries, `the anomaly view scores ${expect.anomalySeries} series (scored ${series})`);
  const first = await page.locator('[data-testid=anomaly-series] option').first().innerText();
  check(first.includes('server-room'), `the most anomalous series comes first (${first})`);
  // The band is drawn: its fill colour is on the canvas.
  const filled = await page.evaluate(() => {
    const c = document.querySelector('[data-testid=anomaly-value-chart] canvas');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) {
      // the band: green over the card's white, neither grey nor blue
      if (d[i + 1] > d[i] + 20 && d[i + 1] > d[i + 2] + 20) {
        n++;
      }
    }
    return n;
  });
  check(filled > 1000, `the band's fill covers the value chart (${filled} green pixels)`);
  await shot(page, 'anomaly');
  noErrors(page, 'the anomaly page');
  await page.context().close();
}

async function alertsPage(browser) {
  const page = await open(browser);
  await page.goto(`${base}/alerts?tenant=${encodeURIComponent(expect.tenant)}`);
  await page.locator('[data-testid=rule-group]').first().waitFor({ timeout: 30000 });
  // The alert fires once the rules have evaluated the spike.
  const firing = page.locator('[data-testid=active-alerts] .badge.state-firing');
  await firing.first().waitFor({ timeout: 60000 });
  const alertText = await page.locator('[data-testid=active-alerts]').innerText();
  check(alertText.includes(expect.alert) && alertText.includes('server-room'), `the active alerts list ${expect.alert} for server-room`);
  const anomaly = page.locator('tr[data-rule-type=anomaly]', { hasText: expect.anomalyRule });
  check((await anomaly.count()) === 1, `the rules list the anomaly rule ${expect.anomalyRule}`);
  await page.locator('tr[data-rule-health=err]', { hasText: expect.failingRule }).waitFor({ timeout: 30000 });
  check(true, `the rules show ${expect.failingRule} failing, with its error`);
  await shot(page, 'alerts');
  noErrors(page, 'the alerts page');
  await page.context().close();
}

async function statusPage(browser) {
  const page = await open(browser);
  await page.goto(`${base}/status?tenant=${encodeURIComponent(expect.tenant)}`);
  await page.locator('[data-testid=blocks-table] tbody tr').first().waitFor({ timeout: 30000 });
  const ulids = (await page.locator('[data-testid=blocks-table] tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.ulid))).sort();
  check(JSON.stringify(ulids) === JSON.stringify(expect.blocks), `the status page lists the ${expect.blocks.length} blocks the bucket holds (lists ${ulids.length}: ${ulids.join(', ')})`);
  // The tenants table comes from its own request (status/tenants), which may
  // answer after the blocks table's.
  await page.locator(`[data-testid=tenants-table] tbody tr[data-tenant="${expect.tenant}"]`).waitFor({ timeout: 30000 }).catch(() => {});
  const tenants = await page.locator('[data-testid=tenants-table] tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.tenant));
  check(tenants.includes(expect.tenant) && tenants.includes(expect.otherTenant), `the tenants are listed (${tenants.join(', ')})`);
  // Rates need two answers of the tenants endpoint: the page asks every 5s.
  const rate = page.locator(`[data-testid=tenants-table] tr[data-tenant="${expect.tenant}"] [data-testid=ingest-rate]`);
  await page.waitForFunction((el) => el && !el.textContent.includes('measuring') && parseFloat(el.textContent) > 0, await rate.elementHandle(), { timeout: 30000 });
  check(true, `the ingest rate of ${expect.tenant} is measured (${await rate.innerText()} samples/s)`);
  const rejected = await page.locator(`[data-testid=tenants-table] tr[data-tenant="${expect.tenant}"]`).innerText();
  check(/too_old: 1\b/.test(rejected), `the rejected month-old sample is counted (${rejected.replace(/\s+/g, ' ')})`);
  const version = await page.locator('[data-testid=version]').innerText();
  check(version !== '' && version !== '…', `the version is shown (${version})`);
  await page.locator('[data-testid=compactor-last-pass] .badge').waitFor({ timeout: 30000 });
  check((await page.locator('[data-testid=compactor-last-pass]').innerText()).includes('succeeded'), 'the compactor\'s last pass is shown, succeeded');
  await page.waitForFunction(() => document.querySelector('[data-testid=failing-rules]')?.textContent !== '0', null, { timeout: 30000 });
  check(true, 'the failing rule is counted');
  const ruleCounts = (await page.locator('[data-testid=rule-counts]').innerText()).trim();
  check(ruleCounts === `${expect.ruleGroups}, ${expect.rules}`, `the tenant's rule groups and rules are counted, anomaly rules with their group (${ruleCounts})`);
  const flags = await page.locator('[data-testid=status-flags] tr').count();
  check(flags > 50, `the flags are listed (${flags})`);
  await page.evaluate(() => window.scrollTo(0, 0));
  await shot(page, 'status');
  noErrors(page, 'the status page');
  await page.context().close();
}

// authPage signs in on a Strata with tenant authentication: before, the
// API answers 401 and the page says so; after, every request carries the
// token, and the tenants listed are the user's own only.
async function authPage(browser) {
  const page = await open(browser);
  // The page's requests answer 401 one by one, some after the first error is
  // shown: they are told apart by whether they carried credentials, not by
  // when they arrived.
  page.unauthenticatedOK = true;
  await page.goto(`${expect.authURL}/status`);
  await page.locator('.error-box', { hasText: '401' }).first().waitFor({ timeout: 30000 });
  check(true, 'without credentials the status page shows the 401 answers');
  await page.click('text=Sign in');
  await page.check('text=Bearer token');
  await page.fill('.auth-form input[type=password]', expect.authToken);
  await page.click('.auth-form button[type=submit]');
  await page.locator('[data-testid=tenants-table] tbody tr').first().waitFor({ timeout: 30000 });
  const tenants = await page.locator('[data-testid=tenants-table] tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.tenant));
  check(JSON.stringify(tenants) === JSON.stringify([expect.authTenant]), `signed in, the tenants listed are the user's own (${tenants.join(', ')})`);
  check((await page.locator('.error-box').count()) === 0, 'signed in, no answer is an error');
  await Promise.all(page.pending);
  noErrors(page, 'the status page, signed in');
  await page.context().close();
}

async function main() {
  if (!base) {
    throw new Error('STRATA_URL is not set: run this through `go test ./web/browsertest`');
  }
  const browser = await chromium.launch({
    executablePath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
  try {
    for (const [name, f] of [
      ['query', queryPage],
      ['large answer', largeAnswer],
      ['anomaly', anomalyPage],
      ['alerts', alertsPage],
      ['status', statusPage],
      ['sign in', authPage],
    ]) {
      const began = Date.now();
      try {
        await f(browser);
      } catch (e) {
        check(false, `the ${name} page: ${e.stack || e}`);
      }
      console.log(`      (${name}: ${((Date.now() - began) / 1000).toFixed(1)}s)`);
    }
  } finally {
    await browser.close();
  }
  console.log(`${failures === 0 ? 'PASS' : 'FAIL'}: ${failures} failed checks`);
  process.exitCode = failures === 0 ? 0 : 1;
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exitCode = 1;
});
