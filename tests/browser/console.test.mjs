// The telemetry console in headless Chromium against the real shop (started by
// scripts/console-browser.sh, which passes CONSOLE_BASE). Every step asserts; the first
// failure prints the step's name and exits 1. With CONSOLE_SCREENSHOTS=<dir> it also writes
// the documentation's screenshots there.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

const BASE = process.env.CONSOLE_BASE;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.CONSOLE_SCREENSHOTS || '';
const SERVER_LOG = process.env.CONSOLE_SERVER_LOG || '';
const WAIT = 20_000; // the longest wait for one thing to show up (telemetry is exported in batches)
if (!BASE) {
  console.error('CONSOLE_BASE is not set (run scripts/console-browser.sh)');
  process.exit(2);
}
const CONSOLE = BASE + '/_console/';
const HOSTILE = '<img src=x onerror=window.__xss=1>"\'&';

let passed = 0;
let current = '';
async function step(name, fn) {
  current = name;
  const t = Date.now();
  await fn();
  passed++;
  console.log(`ok ${passed} - ${name} (${Date.now() - t} ms)`);
}
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

// ---- the shop's API ----
async function api(method, p, { body, headers = {}, base = BASE } = {}) {
  const res = await fetch(base + p, {
    method,
    headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, json, text, headers: res.headers };
}
function traceIdOf(res) {
  const tp = res.headers.get('traceparent') || '';
  const m = /^00-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/.exec(tp);
  assert(m, `no valid traceparent response header (got ${JSON.stringify(tp)})`);
  return m[1];
}

let browser;
let page;
const pageErrors = [];

async function main() {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  });
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'light', reducedMotion: 'reduce' });
  if (process.env.CONSOLE_ASSETS_DIR) {
    // For UI work: serve the page's files from the working tree instead of the binary's
    // embedded copies, so an edit needs no rebuild. The test itself (scripts/console-browser.sh)
    // never sets it.
    await ctx.route(/\/_console\/(assets\/app\.(js|css))?(#.*)?$/, async (route) => {
      const u = new URL(route.request().url());
      const file = u.pathname.endsWith('.js') ? 'app.js' : u.pathname.endsWith('.css') ? 'app.css' : 'index.html';
      const type = { 'app.js': 'text/javascript', 'app.css': 'text/css', 'index.html': 'text/html' }[file];
      await route.fulfill({ status: 200, contentType: type + '; charset=utf-8', body: fs.readFileSync(path.join(process.env.CONSOLE_ASSETS_DIR, file)) });
    });
  }
  page = await ctx.newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('dialog', (d) => {
    pageErrors.push('a dialog opened: ' + d.message());
    d.dismiss();
  });
  page.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push('console error: ' + m.text());
  });

  if (SERVER_LOG) {
    await step('the start-up output names the console URL', async () => {
      const log = fs.readFileSync(SERVER_LOG, 'utf8');
      assert(log.includes(CONSOLE), `the shop's output does not mention ${CONSOLE}`);
    });
  }

  await step('the console loads and its live stream connects', async () => {
    const res = await page.goto(CONSOLE);
    assert(res && res.status() === 200, `GET ${CONSOLE} answered ${res && res.status()}`);
    await page.waitForURL(/#\/requests$/);
    await page.locator('#conn[data-state="live"]').waitFor({ timeout: WAIT });
    assert((await page.title()).startsWith('Requests'), `title is ${await page.title()}`);
  });

  // ---- traffic, sent while the page is open: it must show up without a reload ----
  let checkoutTrace;
  let failingTrace;
  let hostileTrace;
  await step('traffic: catalog reads, a failing request, a checkout with Idempotency-Key', async () => {
    const list = await api('GET', '/v1/products');
    assert(list.status === 200, `GET /v1/products answered ${list.status}`);
    const missing = await api('GET', '/v1/products/999999');
    assert(missing.status === 404, `GET /v1/products/999999 answered ${missing.status}`);
    failingTrace = traceIdOf(missing);
    const email = `browser+${Date.now()}@example.com`;
    const user = await api('POST', '/v1/users', { body: { email, name: 'Browser Test' } });
    assert(user.status === 201 && user.json && user.json.token, `sign-up answered ${user.status} ${user.text}`);
    const order = await api('POST', '/v1/orders', {
      body: { items: [{ product_id: 1, quantity: 2 }] },
      headers: { authorization: 'Bearer ' + user.json.token, 'idempotency-key': 'browser-' + Date.now() },
    });
    assert(order.status === 201, `POST /v1/orders answered ${order.status} ${order.text}`);
    assert(order.json.status === 'paid', `the order is ${order.json.status}, not paid`);
    checkoutTrace = traceIdOf(order);
    const hostile = await api('GET', '/v1/products/1', { headers: { 'user-agent': HOSTILE } });
    assert(hostile.status === 200, `GET /v1/products/1 answered ${hostile.status}`);
    hostileTrace = traceIdOf(hostile);
  });

  // For the screenshots: a bounded stream of mixed traffic (reads, misses, bad input, checkouts)
  // so the lists and the metric charts have something to show; stopped before Clear.
  let background = Promise.resolve();
  let stopBackground = false;
  let backgroundStarted = Date.now();
  if (SHOTS) {
    background = (async () => {
      // Some provider failures (the shop retries, some checkouts answer 502) and latency.
      const sim = /"url.full":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(fs.readFileSync(SERVER_LOG, 'utf8'));
      if (sim) await api('PUT', '/admin/faults', { base: sim[1], body: { error_rate: 0.3, latency_ms: { p50: 4, p99: 40 } } });
      backgroundStarted = Date.now();
      const user = await api('POST', '/v1/users', { body: { email: `shots+${Date.now()}@example.com`, name: 'Screenshots' } });
      const auth = { authorization: 'Bearer ' + user.json.token };
      for (let i = 0; i < 1000 && !stopBackground; i++) {
        await api('GET', '/v1/products');
        await api('GET', '/v1/products/' + (1 + ((i * 7) % 45))); // ids above 36 are misses
        if (i % 5 === 0) await api('GET', '/v1/me', { headers: auth });
        if (i % 6 === 0) await api('GET', '/v1/me'); // 401
        if (i % 9 === 0) await api('POST', '/v1/orders', { body: { items: [{ product_id: 2 + (i % 5), quantity: 1 }] }, headers: { ...auth, 'idempotency-key': `shots-${Date.now()}-${i}` } });
        if (i % 11 === 0) await api('POST', '/v1/users', { body: { email: 'not an email', name: '' } }); // 400
        await new Promise((r) => setTimeout(r, 150));
      }
    })();
  }

  const rowOf = (trace) => page.locator(`#req-rows tr[data-trace="${trace}"]`);
  await step('the checkout and the failing request appear live in Requests', async () => {
    const checkout = rowOf(checkoutTrace).filter({ hasText: '/v1/orders' }).first();
    await checkout.waitFor({ timeout: WAIT });
    const text = await checkout.innerText();
    assert(/POST/.test(text) && /201/.test(text), `checkout row reads ${JSON.stringify(text)}`);
    const failing = rowOf(failingTrace).first();
    await failing.waitFor({ timeout: WAIT });
    const ft = await failing.innerText();
    assert(/404/.test(ft) && /not_found/.test(ft) && /\/v1\/products\/\{id\}/.test(ft), `failing row reads ${JSON.stringify(ft)}`);
    // The simulator's SERVER span of the same checkout is a request of its own service.
    await rowOf(checkoutTrace).filter({ hasText: '/v1/charges' }).first().waitFor({ timeout: WAIT });
    const sim = await rowOf(checkoutTrace).filter({ hasText: '/v1/charges' }).first().innerText();
    assert(/payments-sim/.test(sim), `the simulator's row reads ${JSON.stringify(sim)}`);
    // Newest first: the checkout's shop row is above the failing one (sent earlier).
    const order = await page.$$eval('#req-rows tr', (rows) => rows.map((r) => r.dataset.trace));
    assert(order.indexOf(checkoutTrace) < order.indexOf(failingTrace), 'rows are not newest first');
    // The live region says something for screen readers.
    assert((await page.locator('#live').innerText()).length > 0, 'the aria-live region stayed empty');
  });

  await step('filters: status class, route, error type, free text; and reset', async () => {
    await page.selectOption('#f-status', '4xx');
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('#req-rows tr')];
      return rows.length > 0 && rows.every((r) => /^4\d\d$/.test(r.querySelector('.status').textContent));
    }, null, { timeout: WAIT });
    assert((await rowOf(checkoutTrace).count()) === 0, 'the 201 checkout is shown under 4xx');
    assert(page.url().includes('status_class=4xx'), `the filter is not in the URL: ${page.url()}`);
    await page.selectOption('#f-status', '');
    await page.fill('#f-route', '/v1/orders');
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('#req-rows tr')];
      return rows.length > 0 && rows.every((r) => r.querySelector('.route a').textContent === '/v1/orders');
    }, null, { timeout: WAIT });
    await page.fill('#f-route', '');
    await page.fill('#f-error', 'not_found');
    await page.waitForFunction((t) => {
      const rows = [...document.querySelectorAll('#req-rows tr')];
      return rows.length > 0 && rows.every((r) => r.textContent.includes('not_found')) && rows.some((r) => r.dataset.trace === t);
    }, failingTrace, { timeout: WAIT });
    await page.fill('#f-error', '');
    await page.fill('#f-q', checkoutTrace.slice(4, 20));
    await page.waitForFunction((t) => {
      const rows = [...document.querySelectorAll('#req-rows tr')];
      return rows.length > 0 && rows.every((r) => r.dataset.trace === t);
    }, checkoutTrace, { timeout: WAIT });
    await page.click('text=Reset filters');
    await page.waitForFunction((t) => [...document.querySelectorAll('#req-rows tr')].some((r) => r.dataset.trace === t), failingTrace, { timeout: WAIT });
  });

  await step('pause holds new requests back, resume shows them', async () => {
    await page.click('#pause');
    assert((await page.getAttribute('#pause', 'aria-pressed')) === 'true', 'pause is not pressed');
    const res = await api('GET', '/v1/products/2');
    const t = traceIdOf(res);
    await page.waitForFunction(() => /Resume \(\d+ new\)/.test(document.querySelector('#pause').textContent), null, { timeout: WAIT });
    assert((await rowOf(t).count()) === 0, 'a request showed up while paused');
    await page.click('#pause');
    await rowOf(t).first().waitFor({ timeout: WAIT });
    assert((await page.getAttribute('#pause', 'aria-pressed')) === 'false', 'pause is still pressed');
  });

  if (SHOTS) await shot('requests');

  let simSpanId;
  await step('keyboard: Enter on the checkout row opens its trace', async () => {
    const link = rowOf(checkoutTrace).filter({ hasText: '/v1/orders' }).first().locator('a.open');
    await link.focus();
    await page.keyboard.press('Enter');
    await page.waitForURL(new RegExp(`#/trace/${checkoutTrace}`));
    await page.locator('#waterfall .span-row').first().waitFor({ timeout: WAIT });
  });

  await step("the checkout's waterfall holds the shop's and the simulator's spans", async () => {
    // The simulator's spans may be exported a moment after the shop's: the view reloads itself.
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('#waterfall .span-row')];
      const names = rows.map((r) => r.querySelector('.nm').textContent);
      const services = new Set(rows.map((r) => r.querySelector('.svc').textContent));
      return names.includes('POST /v1/orders') && names.includes('POST /v1/charges') && services.has('shop') && services.has('payments-sim');
    }, null, { timeout: WAIT });
    const rows = await page.$$eval('#waterfall .span-row', (rs) =>
      rs.map((r) => ({ name: r.querySelector('.nm').textContent, kind: r.querySelector('.kind').textContent, svc: r.querySelector('.svc').textContent, bar: r.querySelector('.bar').style.width })),
    );
    assert(rows[0].name === 'POST /v1/orders' && rows[0].kind === 'SERVER' && rows[0].svc === 'shop', `the first span is ${JSON.stringify(rows[0])}`);
    assert(rows.some((r) => r.kind === 'CLIENT' && r.svc === 'shop'), 'no CLIENT span of the shop');
    const sim = rows.find((r) => r.name === 'POST /v1/charges');
    assert(sim.kind === 'SERVER' && sim.svc === 'payments-sim', `the simulator span is ${JSON.stringify(sim)}`);
    assert(rows.every((r) => parseFloat(r.bar) > 0), 'a span has no duration bar');
    // The SERVER span of the shop is the longest: its bar spans (nearly) the whole trace.
    assert(parseFloat(rows[0].bar) > 90, `the root's bar is ${rows[0].bar}`);
    const meta = await page.innerText('#trace-meta');
    assert(/2 services/.test(meta), `the trace summary reads ${JSON.stringify(meta)}`);
    // The root is selected: its attributes are shown.
    const details = await page.innerText('#span-details');
    assert(details.includes('http.response.status_code') && details.includes('201'), 'the root span details lack http.response.status_code 201');
  });

  await step("the trace's log lines are shown, and a log line opens its span", async () => {
    await page.locator('#trace-logs .logline').first().waitFor({ timeout: WAIT });
    // The simulator's access line links to the simulator's SERVER span.
    const simLine = page.locator('#trace-logs .logline').filter({ has: page.locator('.svc', { hasText: 'payments-sim' }) }).first();
    await simLine.waitFor({ timeout: WAIT });
    const button = simLine.locator('button.span-link');
    simSpanId = await simLine.getAttribute('data-span');
    assert(/^[0-9a-f]{16}$/.test(simSpanId || ''), `the simulator's log line has no span id (${simSpanId})`);
    await button.click();
    const selected = page.locator(`#waterfall .span-row[data-span="${simSpanId}"]`);
    assert((await selected.getAttribute('aria-selected')) === 'true', "the log line's span is not selected");
    assert(await selected.evaluate((e) => e.classList.contains('selected') && document.activeElement === e), "the log line's span is not highlighted and focused");
    assert((await page.innerText('#span-title')).includes('POST /v1/charges'), 'the details do not show the simulator span');
    assert(page.url().endsWith(`#/trace/${checkoutTrace}/${simSpanId}`), `the URL does not name the span: ${page.url()}`);
    const related = await page.$$eval('#trace-logs .logline.related', (ls) => ls.map((l) => l.dataset.span));
    assert(related.length > 0 && related.every((s) => s === simSpanId), 'the span\'s log lines are not highlighted');
    // Arrow keys move along the waterfall.
    await page.keyboard.press('ArrowUp');
    const now = await page.evaluate(() => document.activeElement.dataset.span);
    assert(now && now !== simSpanId, 'ArrowUp did not move to the previous span');
    assert((await page.getAttribute(`#waterfall .span-row[data-span="${now}"]`, 'aria-selected')) === 'true', 'ArrowUp did not select');
  });

  if (SHOTS) {
    await page.click(`#trace-logs .logline[data-span="${simSpanId}"] button.span-link`);
    await shot('trace');
  }

  await step('keyboard: Esc goes back from the trace to the list it was opened from', async () => {
    await page.keyboard.press('Escape');
    await page.waitForURL(/#\/requests/);
    await rowOf(checkoutTrace).first().waitFor({ timeout: WAIT });
  });

  await step('a failing request: its trace shows error.type and the WARN access line', async () => {
    await page.goto(CONSOLE + '#/trace/' + failingTrace);
    await page.locator('#span-details').filter({ hasText: 'error.type' }).waitFor({ timeout: WAIT });
    const details = await page.innerText('#span-details');
    assert(details.includes('not_found') && details.includes('product.not_found'), 'error.type / app.error.code missing from the failing span');
    await page.locator('#trace-logs .logline.lvl-warn').first().waitFor({ timeout: WAIT });
  });

  await step('hostile strings are shown as text, never as markup', async () => {
    await page.goto(CONSOLE + '#/trace/' + hostileTrace);
    await page.locator('#span-details').filter({ hasText: 'user_agent.original' }).waitFor({ timeout: WAIT });
    const cell = page.locator('#span-details .kv tr', { hasText: 'user_agent.original' }).locator('td');
    assert((await cell.innerText()) === HOSTILE, `user_agent.original reads ${JSON.stringify(await cell.innerText())}`);
    assert((await page.locator('main img').count()) === 0, 'an <img> from telemetry data was rendered');
    assert((await page.evaluate(() => window.__xss)) === undefined, 'a hostile attribute ran script');
  });

  await step('Logs: filters by level, target, text and trace id; a trace id opens the trace', async () => {
    await page.goto(CONSOLE + '#/logs');
    await page.locator('#log-rows tr').first().waitFor({ timeout: WAIT });
    await page.selectOption('#l-level', 'warn');
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('#log-rows tr')];
      return rows.length > 0 && rows.every((r) => /^(WARN|ERROR)/.test(r.querySelector('.lvl').textContent));
    }, null, { timeout: WAIT });
    await page.selectOption('#l-level', '');
    await page.fill('#l-target', 'access');
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('#log-rows tr')];
      return rows.length > 0 && rows.every((r) => r.children[3].textContent.startsWith('access'));
    }, null, { timeout: WAIT });
    await page.fill('#l-target', '');
    await page.fill('#l-q', '/v1/orders');
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('#log-rows tr')];
      return rows.length > 0 && rows.every((r) => r.textContent.includes('/v1/orders'));
    }, null, { timeout: WAIT });
    await page.fill('#l-q', '');
    await page.fill('#l-trace', checkoutTrace);
    await page.waitForFunction((t) => {
      const rows = [...document.querySelectorAll('#log-rows tr')];
      return rows.length > 1 && rows.every((r) => (r.querySelector('a.open') || {}).title === t);
    }, checkoutTrace, { timeout: WAIT });
    const services = await page.$$eval('#log-rows tr .svc', (s) => [...new Set(s.map((x) => x.textContent))]);
    assert(services.includes('shop') && services.includes('payments-sim'), `the checkout's logs come from ${services}`);
    if (SHOTS) {
      await page.fill('#l-trace', '');
      await page.waitForTimeout(500);
      await shot('logs');
      await page.fill('#l-trace', checkoutTrace);
      await page.waitForFunction((t) => [...document.querySelectorAll('#log-rows tr')].every((r) => (r.querySelector('a.open') || {}).title === t), checkoutTrace);
    }
    const link = page.locator('#log-rows tr a.open').first();
    const href = await link.getAttribute('href');
    await link.click();
    await page.waitForURL(new RegExp(`#/trace/${checkoutTrace}/[0-9a-f]{16}$`));
    const spanId = href.split('/').pop();
    await page.locator(`#waterfall .span-row[data-span="${spanId}"][aria-selected="true"]`).waitFor({ timeout: WAIT });
  });

  await step('Metrics: RED per route and the exporter health', async () => {
    await page.goto(CONSOLE + '#/metrics');
    // Metrics reach the console at the instance's metric interval (seconds): the view polls.
    await page.waitForFunction(() => [...document.querySelectorAll('#metric-rows tr')].some((r) => r.textContent.includes('/v1/orders')), null, { timeout: 30_000 });
    const row = page.locator('#metric-rows tr', { hasText: 'POST /v1/orders' }).first();
    assert((await row.locator('svg.spark').count()) === 3, 'the /v1/orders row does not have 3 charts');
    const label = await row.locator('svg.spark').first().getAttribute('aria-label');
    assert(/Request rate: latest rate/.test(label || ''), `the rate chart's label is ${label}`);
    const health = await page.innerText('.health');
    for (const k of ['Spans dropped', 'Log records dropped', 'Export failures', 'Active metric series']) assert(health.includes(k), `the exporter health lacks "${k}"`);
    assert((await page.locator('#series-meter').count()) === 1, 'no series meter');
  });
  if (SHOTS) {
    // Let the charts gather about a minute of history.
    await new Promise((r) => setTimeout(r, Math.max(0, 60_000 - (Date.now() - backgroundStarted))));
    await page.reload();
    await page.locator('#metric-rows tr').first().waitFor({ timeout: WAIT });
    await shot('metrics');
  }

  await step('keyboard: skip link, Tab order, visible focus, view keys', async () => {
    // A fresh document and history: focus at the start, no trace tab yet.
    await page.goto('about:blank');
    await page.goto(CONSOLE + '#/requests');
    await page.locator('#conn[data-state="live"]').waitFor({ timeout: WAIT });
    await page.locator('#req-rows tr').first().waitFor({ timeout: WAIT });
    await page.keyboard.press('Tab');
    assert((await page.evaluate(() => document.activeElement.className)) === 'skip', 'the first Tab stop is not the skip link');
    const order = [];
    for (let i = 0; i < 8; i++) {
      await page.keyboard.press('Tab');
      order.push(await page.evaluate(() => document.activeElement.id || document.activeElement.textContent.trim()));
    }
    const want = ['nav-requests', 'nav-logs', 'nav-metrics', 'pause', 'clear', 'theme', 'f-route', 'f-status'];
    assert(JSON.stringify(order) === JSON.stringify(want), `Tab order is ${JSON.stringify(order)}, not ${JSON.stringify(want)}`);
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert(outline !== 'none', 'the focused control has no visible outline');
    await page.keyboard.press('Escape'); // Esc in a filter leaves it
    await page.keyboard.press('/');
    assert((await page.evaluate(() => document.activeElement.id)) === 'f-q', '/ does not focus the free-text filter');
    await page.keyboard.press('Escape');
    await page.keyboard.press('2');
    await page.waitForURL(/#\/logs/);
    await page.keyboard.press('3');
    await page.waitForURL(/#\/metrics/);
    await page.keyboard.press('1');
    await page.waitForURL(/#\/requests/);
    await page.locator('h2.view-title', { hasText: 'Requests' }).waitFor({ timeout: WAIT });
    // Rows: ArrowDown moves from one row's link to the next one's.
    await page.locator('#req-rows tr a.open').first().waitFor({ timeout: WAIT });
    await page.locator('#req-rows tr a.open').first().focus();
    await page.keyboard.press('ArrowDown');
    const idx = await page.evaluate(() => [...document.querySelectorAll('#req-rows tr')].indexOf(document.activeElement.closest('tr')));
    assert(idx === 1, `ArrowDown moved to row ${idx}`);
  });

  await step('theme toggle: light, dark, auto; dark follows prefers-color-scheme', async () => {
    const bg = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    const light = await bg();
    await page.click('#theme'); // auto -> light
    assert((await page.getAttribute('html', 'data-theme')) === 'light', 'the first toggle is not light');
    await page.click('#theme'); // -> dark
    assert((await page.getAttribute('html', 'data-theme')) === 'dark', 'the second toggle is not dark');
    const dark = await bg();
    assert(dark !== light, 'dark has the same background as light');
    await page.click('#theme'); // -> auto
    assert((await page.getAttribute('html', 'data-theme')) === null, 'the third toggle is not auto');
    await page.emulateMedia({ colorScheme: 'dark' });
    assert((await bg()) === dark, 'auto does not follow prefers-color-scheme: dark');
    if (SHOTS) {
      await page.goto(CONSOLE + `#/trace/${checkoutTrace}/${simSpanId}`);
      await page.locator('#waterfall .span-row.selected').waitFor({ timeout: WAIT });
      await shot('trace-dark');
      await page.goto(CONSOLE + '#/requests');
      await page.locator('#req-rows tr').first().waitFor({ timeout: WAIT });
      await shot('requests-dark');
    }
    await page.emulateMedia({ colorScheme: 'light' });
  });

  await step('a narrow window (390×800): no sideways scrolling, trace panels stacked', async () => {
    await page.setViewportSize({ width: 390, height: 800 });
    await page.goto(CONSOLE + '#/requests');
    await page.locator('#req-rows tr').first().waitFor({ timeout: WAIT });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert(overflow <= 1, `the requests page scrolls sideways by ${overflow}px`);
    assert(await page.locator('#req-rows tr a.open').first().isVisible(), 'the rows\' links are not visible');
    if (SHOTS) await shot('requests-narrow');
    await page.goto(CONSOLE + '#/trace/' + checkoutTrace);
    await page.locator('#trace-logs .logline').first().waitFor({ timeout: WAIT });
    const wf = await page.locator('.trace-main').boundingBox();
    const lg = await page.locator('.trace-logs').boundingBox();
    assert(lg.y >= wf.y + wf.height - 1, 'the log panel is not below the waterfall');
    const o2 = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert(o2 <= 1, `the trace page scrolls sideways by ${o2}px`);
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  stopBackground = true;
  await background;
  if (SHOTS) await new Promise((r) => setTimeout(r, 1500)); // its last records reach the store

  await step('clear empties the store and the list', async () => {
    await page.goto(CONSOLE + '#/requests');
    await page.locator('#req-rows tr').first().waitFor({ timeout: WAIT });
    await page.click('#clear');
    await page.waitForFunction(() => document.querySelectorAll('#req-rows tr').length === 0, null, { timeout: WAIT });
    const res = await api('GET', '/_console/api/requests');
    assert(res.status === 200 && res.json.requests.length === 0, `after clear the store still has ${res.json && res.json.requests.length} requests`);
    const after = await api('GET', '/v1/products/3');
    await rowOf(traceIdOf(after)).first().waitFor({ timeout: WAIT });
  });

  await step('no page errors, no dialogs', async () => {
    assert(pageErrors.length === 0, 'page errors: ' + pageErrors.join(' | '));
  });
}

async function shot(name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.evaluate(() => document.activeElement && document.activeElement.blur && document.activeElement.blur());
  await page.mouse.move(1, page.viewportSize().height - 1); // no hover highlight
  await page.waitForTimeout(300); // let the last rows settle
  const file = path.join(SHOTS, name + '.png');
  await page.screenshot({ path: file });
  console.log('screenshot ' + file);
}

try {
  await main();
  console.log(`${passed} passed, 0 failed`);
  await browser.close();
} catch (e) {
  console.error(`FAILED step "${current}": ${e.message}`);
  if (page) {
    try {
      const f = path.join(process.env.TMPDIR || '/tmp', 'console-browser-failure.png');
      await page.screenshot({ path: f, fullPage: true });
      console.error(`page at failure: ${page.url()} (screenshot ${f})`);
    } catch {
      /* the page is gone */
    }
  }
  if (pageErrors.length) console.error('page errors: ' + pageErrors.join(' | '));
  console.log(`${passed} passed, 1 failed`);
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
}
