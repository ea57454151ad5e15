// The telemetry console's UI: plain ES module, no dependencies, no build step.
// Every piece of telemetry is put into the page with textContent or as an attribute value
// (never innerHTML): span names, log bodies and attributes can hold hostile strings.

const API = '/_console/api/';
const KEEP_REQUESTS = 1000; // kept in memory for the live list
const SHOW_REQUESTS = 200; // rows rendered
const KEEP_LOGS = 1000;
const SHOW_LOGS = 300;
const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;
const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];

// ---------- small DOM helpers ----------

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') node.className = v;
      else if (k === 'text') node.textContent = v;
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else if (k === 'dataset') Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? '' : String(v));
    }
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

const svgNS = 'http://www.w3.org/2000/svg';
function svg(tag, attrs) {
  const node = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  return node;
}

function traceHref(traceId, spanId) {
  if (!HEX32.test(traceId || '')) return null;
  return '#/trace/' + traceId + (HEX16.test(spanId || '') ? '/' + spanId : '');
}

function short(id) {
  return id ? id.slice(0, 8) + '…' : '';
}

// Nanosecond strings: BigInt for differences, Number milliseconds for clocks.
function nsToMs(s) {
  try {
    return Number(BigInt(s) / 1000000n);
  } catch {
    return NaN;
  }
}
function nsDiffMs(a, b) {
  try {
    return Number(BigInt(a) - BigInt(b)) / 1e6;
  } catch {
    return 0;
  }
}
// Compares two nanosecond decimal strings (no BigInt needed: longer is later).
function cmpNs(a, b) {
  a = a || '';
  b = b || '';
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}
// Newest first, by a record's start (or log time), whatever order export batches arrived in.
function newestFirst(key) {
  return (x, y) => cmpNs(y[key], x[key]);
}
// Inserts rows (already sorted newest first) into tbody at their place, keeps at most `cap`.
function insertSorted(tbody, fresh, key, makeRow, cap) {
  let cursor = tbody.firstElementChild;
  for (const r of fresh) {
    while (cursor && cmpNs(cursor.dataset.t, r[key]) > 0) cursor = cursor.nextElementSibling;
    const tr = makeRow(r);
    tr.dataset.t = r[key] || '';
    tbody.insertBefore(tr, cursor);
  }
  while (tbody.children.length > cap) tbody.lastElementChild.remove();
}
function pad(n, w = 2) {
  return String(n).padStart(w, '0');
}
function clock(ns) {
  const ms = nsToMs(ns);
  if (!Number.isFinite(ms)) return '';
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}
function isoTime(ns) {
  const ms = nsToMs(ns);
  return Number.isFinite(ms) ? new Date(ms).toISOString() : '';
}
function fmtMs(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '–';
  if (ms < 1) return ms.toFixed(2) + ' ms';
  if (ms < 100) return ms.toFixed(1) + ' ms';
  if (ms < 10000) return Math.round(ms) + ' ms';
  return (ms / 1000).toFixed(1) + ' s';
}
function fmtValue(v) {
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}
function statusClass(code) {
  if (!Number.isInteger(code)) return 'sx';
  return code >= 500 ? 's5' : code >= 400 ? 's4' : code >= 300 ? 's3' : 's2';
}

async function getJSON(path) {
  const res = await fetch(API + path, { headers: { accept: 'application/json' } });
  let body = null;
  try {
    body = await res.json();
  } catch {
    /* not JSON */
  }
  if (!res.ok) {
    const msg = body && body.error ? (typeof body.error === 'string' ? body.error : JSON.stringify(body.error)) : res.statusText;
    const err = new Error(`${res.status} ${msg}`);
    err.status = res.status;
    throw err;
  }
  return body;
}

function announce(text) {
  const live = document.getElementById('live');
  live.textContent = text;
}

// ---------- state ----------

const state = {
  paused: false,
  requests: [], // newest first
  logs: [],
  pendingRequests: 0,
  pendingLogs: 0,
  navigated: false, // whether this page went from one view to another (Esc can go back)
  view: null, // {name, render(): void, onRequest?(r), onLog?(l), onCleared?(), dispose?()}
};

// ---------- routing ----------

function parseHash() {
  const h = location.hash.replace(/^#\/?/, '');
  const [path, query] = h.split('?');
  const parts = path.split('/').filter(Boolean);
  return { parts, params: new URLSearchParams(query || '') };
}

function setHashParams(name, params) {
  const q = params.toString();
  const hash = '#/' + name + (q ? '?' + q : '');
  if (location.hash !== hash) history.replaceState(null, '', hash);
}

function route() {
  const { parts, params } = parseHash();
  const name = parts[0] || 'requests';
  if (state.view && state.view.dispose) state.view.dispose();
  const main = document.getElementById('main');
  main.replaceChildren();
  for (const a of document.querySelectorAll('.tabs a')) a.removeAttribute('aria-current');
  const navTrace = document.getElementById('nav-trace');
  let view;
  if (name === 'trace' && parts[1]) {
    navTrace.hidden = false;
    navTrace.href = '#/trace/' + encodeURIComponent(parts[1]);
    navTrace.setAttribute('aria-current', 'page');
    view = traceView(main, parts[1], parts[2] || null);
  } else if (name === 'logs') {
    document.getElementById('nav-logs').setAttribute('aria-current', 'page');
    view = logsView(main, params);
  } else if (name === 'metrics') {
    document.getElementById('nav-metrics').setAttribute('aria-current', 'page');
    view = metricsView(main, params);
  } else {
    document.getElementById('nav-requests').setAttribute('aria-current', 'page');
    view = requestsView(main, params);
  }
  state.view = view;
  document.title = view.title + ' · Telemetry console';
}

// ---------- live stream ----------

function connect() {
  const conn = document.getElementById('conn');
  const es = new EventSource(API + 'stream');
  es.onopen = () => {
    conn.dataset.state = 'live';
    conn.textContent = 'live';
  };
  es.onerror = () => {
    conn.dataset.state = 'reconnecting';
    conn.textContent = 'reconnecting';
  };
  es.addEventListener('request', (e) => {
    let r;
    try {
      r = JSON.parse(e.data);
    } catch {
      return;
    }
    state.requests.unshift(r);
    if (state.requests.length > KEEP_REQUESTS) state.requests.length = KEEP_REQUESTS;
    if (state.paused) {
      state.pendingRequests++;
      updatePauseLabel();
      return;
    }
    if (state.view && state.view.onRequest) state.view.onRequest([r]);
  });
  es.addEventListener('log', (e) => {
    let l;
    try {
      l = JSON.parse(e.data);
    } catch {
      return;
    }
    state.logs.unshift(l);
    if (state.logs.length > KEEP_LOGS) state.logs.length = KEEP_LOGS;
    if (state.paused) {
      state.pendingLogs++;
      updatePauseLabel();
      return;
    }
    if (state.view && state.view.onLog) state.view.onLog([l]);
  });
  es.addEventListener('lagged', () => {
    // The server dropped events for this slow client: reload the view from the store.
    if (!state.paused) route();
  });
  es.addEventListener('cleared', () => {
    state.requests = [];
    state.logs = [];
    state.pendingRequests = state.pendingLogs = 0;
    updatePauseLabel();
    if (state.view && state.view.onCleared) state.view.onCleared();
  });
}

function updatePauseLabel() {
  const b = document.getElementById('pause');
  b.setAttribute('aria-pressed', String(state.paused));
  const n = state.pendingRequests + state.pendingLogs;
  b.textContent = state.paused ? (n ? `Resume (${n} new)` : 'Resume') : 'Pause';
}

function togglePause() {
  state.paused = !state.paused;
  if (!state.paused) {
    state.pendingRequests = state.pendingLogs = 0;
    route(); // re-render the current view from the store, now including what came in
  }
  updatePauseLabel();
  announce(state.paused ? 'Live updates paused' : 'Live updates resumed');
}

async function clearAll() {
  try {
    const res = await fetch(API + 'clear', { method: 'POST' });
    if (!res.ok) throw new Error(res.status + ' ' + res.statusText);
    state.requests = [];
    state.logs = [];
    if (state.view && state.view.onCleared) state.view.onCleared();
    announce('Console cleared');
  } catch (e) {
    announce('Clear failed: ' + e.message);
  }
}

// ---------- theme ----------

const THEMES = ['auto', 'light', 'dark'];
function applyTheme(t) {
  if (t === 'auto') document.documentElement.removeAttribute('data-theme');
  else document.documentElement.setAttribute('data-theme', t);
  const b = document.getElementById('theme');
  b.textContent = 'Theme: ' + t;
  b.setAttribute('aria-label', 'Colour theme: ' + t + ' (change)');
}
function initTheme() {
  let t = 'auto';
  try {
    t = localStorage.getItem('console-theme') || 'auto';
  } catch {
    /* storage off */
  }
  if (!THEMES.includes(t)) t = 'auto';
  applyTheme(t);
  document.getElementById('theme').addEventListener('click', () => {
    let cur = document.documentElement.getAttribute('data-theme') || 'auto';
    const next = THEMES[(THEMES.indexOf(cur) + 1) % THEMES.length];
    try {
      localStorage.setItem('console-theme', next);
    } catch {
      /* storage off */
    }
    applyTheme(next);
  });
}

// ---------- shared pieces ----------

function field(label, input) {
  return el('label', { class: 'field' }, el('span', { class: 'label', text: label }), input);
}

function errorBox(main, e) {
  return el('p', { class: 'error', role: 'alert', text: 'Could not load: ' + e.message });
}

function debounce(fn, ms) {
  let t = null;
  return (...a) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...a), ms);
  };
}

// Arrow keys move between the rows' first links of a table body; Enter follows the link.
function rowKeys(tbody) {
  tbody.addEventListener('keydown', (e) => {
    if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') return;
    const row = e.target.closest('tr');
    if (!row) return;
    const next = e.key === 'ArrowDown' ? row.nextElementSibling : row.previousElementSibling;
    const target = next && next.querySelector('a,button');
    if (target) {
      target.focus();
      e.preventDefault();
    }
  });
  // A click anywhere on a row opens it, like Enter on its link.
  tbody.addEventListener('click', (e) => {
    if (e.target.closest('a,button,input,select,summary')) return;
    if (window.getSelection && String(window.getSelection()).length) return;
    const row = e.target.closest('tr');
    const link = row && row.querySelector('a.open');
    if (link) link.click();
  });
}

function datalist(id, values) {
  const dl = el('datalist', { id });
  for (const v of [...values].sort()) dl.append(el('option', { value: v }));
  return dl;
}

// ---------- Live tables (Requests, Logs) ----------

// The live table of the Requests and Logs views: the API's answer for the filters (`name` is
// both the API path and the answer's key), then what the stream brings that matches them,
// newest first by `timeField`; `keep` records remembered, `show` rows drawn.
function liveList(o) {
  const newest = newestFirst(o.timeField);
  let rows = []; // what the table shows, newest first
  let total = 0;
  let evicted = 0;
  let gen = 0;
  let pending = [];
  let flushTimer = null;

  function renderSummary() {
    const shown = Math.min(rows.length, o.show);
    let s = `${shown} shown`;
    if (total > shown) s += ` of ${total} matching`;
    if (evicted) s += ` · ${evicted} evicted from the store`;
    if (state.paused) s += ' · paused';
    o.summary.textContent = s;
    o.empty.hidden = rows.length > 0;
    o.table.hidden = rows.length === 0;
  }

  function renderAll() {
    const frag = document.createDocumentFragment();
    for (const r of rows.slice(0, o.show)) {
      const tr = o.row(r);
      tr.dataset.t = r[o.timeField] || '';
      frag.append(tr);
    }
    o.tbody.replaceChildren(frag);
    renderSummary();
  }

  async function load() {
    const my = ++gen;
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(o.filters)) if (v) p.set(k, v);
    setHashParams(o.name, p);
    p.set('limit', String(o.show));
    try {
      const body = await getJSON(o.name + '?' + p);
      if (my !== gen) return;
      rows = (body[o.name] || []).sort(newest);
      total = body.total ?? rows.length;
      evicted = body.evicted ?? 0;
      rows.forEach(o.note);
      renderAll();
    } catch (e) {
      if (my !== gen) return;
      o.summary.replaceChildren(errorBox(o.main, e));
    }
  }

  const flush = () => {
    flushTimer = null;
    const fresh = pending.filter(o.matches).sort(newest);
    pending = [];
    if (!fresh.length) return;
    rows = fresh.concat(rows).sort(newest).slice(0, o.keep);
    total += fresh.length;
    insertSorted(o.tbody, fresh.slice(0, o.show), o.timeField, o.row, o.show);
    renderSummary();
    if (o.onFresh) o.onFresh(fresh);
  };

  return {
    load,
    receive(list) {
      list.forEach(o.note);
      pending.push(...list);
      if (!flushTimer) flushTimer = setTimeout(flush, 150);
    },
    clear() {
      rows = [];
      total = 0;
      evicted = 0;
      renderAll();
    },
    dispose() {
      clearTimeout(flushTimer);
    },
  };
}

// ---------- Requests ----------

function requestsView(main, params) {
  const f = {
    route: params.get('route') || '',
    status_class: params.get('status_class') || '',
    error_type: params.get('error_type') || '',
    min_ms: params.get('min_ms') || '',
    q: params.get('q') || '',
    service: params.get('service') || '',
  };

  const routeIn = el('input', { type: 'text', id: 'f-route', list: 'dl-routes', value: f.route, placeholder: 'any', autocomplete: 'off' });
  const statusIn = el(
    'select',
    { id: 'f-status' },
    el('option', { value: '', text: 'any' }),
    ['2xx', '3xx', '4xx', '5xx'].map((c) => el('option', { value: c, text: c, selected: c === f.status_class })),
  );
  const errIn = el('input', { type: 'text', id: 'f-error', list: 'dl-errors', value: f.error_type, placeholder: 'any', autocomplete: 'off' });
  const minIn = el('input', { type: 'number', id: 'f-min', min: '0', step: 'any', value: f.min_ms, placeholder: '0', inputmode: 'decimal' });
  const qIn = el('input', { type: 'search', id: 'f-q', value: f.q, placeholder: 'trace id or request id', autocomplete: 'off', 'data-filter-focus': '' });
  const serviceIn = el('input', { type: 'text', id: 'f-service', list: 'dl-services', value: f.service, placeholder: 'any', autocomplete: 'off' });
  const resetBtn = el('button', { type: 'button', text: 'Reset filters' });
  const form = el(
    'form',
    { class: 'filters', role: 'search', 'aria-label': 'Filter requests', onsubmit: (e) => e.preventDefault() },
    field('Route', routeIn),
    field('Status', statusIn),
    field('Error type', errIn),
    field('Min duration (ms)', minIn),
    field('Service', serviceIn),
    field('Trace / request id', qIn),
    resetBtn,
  );
  const lists = el('div', { hidden: true });
  const summary = el('p', { class: 'summary', id: 'req-summary' });
  const tbody = el('tbody', { id: 'req-rows' });
  const table = el(
    'table',
    { class: 'grid requests', 'aria-describedby': 'req-summary' },
    el('caption', { class: 'visually-hidden', text: 'Requests, newest first' }),
    el(
      'thead',
      null,
      el(
        'tr',
        null,
        ['Start', 'Method', 'Route', 'Status', 'Duration', 'error.type', 'Service', 'Trace id'].map((h) => el('th', { scope: 'col', text: h })),
      ),
    ),
    tbody,
  );
  const empty = el('p', { class: 'empty', text: 'No requests yet. Send one to the service, it shows up here live.' });
  main.append(el('h2', { class: 'view-title', text: 'Requests' }), form, lists, summary, el('div', { class: 'table-wrap' }, table), empty);
  rowKeys(tbody);

  const seen = { routes: new Set(), errors: new Set(), services: new Set() };

  function matches(r) {
    if (f.route && r.route !== f.route) return false;
    if (f.status_class) {
      const c = Math.floor(r.status / 100) + 'xx';
      if (c !== f.status_class) return false;
    }
    if (f.error_type && r.error_type !== f.error_type) return false;
    if (f.min_ms && !(r.duration_ms >= Number(f.min_ms))) return false;
    if (f.service && r.service !== f.service) return false;
    if (f.q && !((r.trace_id || '').includes(f.q) || (r.request_id || '').includes(f.q))) return false;
    return true;
  }

  function note(r) {
    let changed = false;
    for (const [set, v] of [
      [seen.routes, r.route],
      [seen.errors, r.error_type],
      [seen.services, r.service],
    ]) {
      if (v && !set.has(v)) {
        set.add(v);
        changed = true;
      }
    }
    if (changed) {
      lists.replaceChildren(datalist('dl-routes', seen.routes), datalist('dl-errors', seen.errors), datalist('dl-services', seen.services));
    }
  }

  function row(r) {
    const href = traceHref(r.trace_id, r.span_id);
    const label = `${r.method || ''} ${r.route || ''}`.trim();
    return el(
      'tr',
      { class: statusClass(r.status), dataset: { trace: r.trace_id || '', span: r.span_id || '' } },
      el('td', { class: 'mono nowrap' }, el('time', { datetime: isoTime(r.start_unix_nano), text: clock(r.start_unix_nano) })),
      el('td', { class: 'mono', text: r.method || '' }),
      el(
        'td',
        { class: 'route' },
        el('span', { class: 'm-narrow', 'aria-hidden': 'true', text: (r.method || '') + ' ' }),
        href ? el('a', { class: 'open', href, 'aria-label': `Open trace of ${label} ${r.status}`, text: r.route || '(no route)' }) : r.route || '(no route)',
      ),
      el('td', null, el('span', { class: 'status ' + statusClass(r.status), text: r.status ?? '' })),
      el('td', { class: 'num mono', text: fmtMs(r.duration_ms) }),
      el('td', { class: 'mono', text: r.error_type || '' }),
      el('td', null, serviceBadge(r.service)),
      el('td', { class: 'mono', title: r.trace_id || '' }, el('span', { text: short(r.trace_id) })),
    );
  }

  const list = liveList({
    name: 'requests',
    timeField: 'start_unix_nano',
    show: SHOW_REQUESTS,
    keep: KEEP_REQUESTS,
    filters: f,
    main,
    summary,
    table,
    tbody,
    empty,
    row,
    matches,
    note,
    onFresh(fresh) {
      const r = fresh[0];
      announce(fresh.length === 1 ? `New request: ${r.method} ${r.route || ''} ${r.status}` : `${fresh.length} new requests`);
    },
  });

  const reload = debounce(list.load, 200);
  const sync = () => {
    f.route = routeIn.value.trim();
    f.status_class = statusIn.value;
    f.error_type = errIn.value.trim();
    f.min_ms = minIn.value.trim();
    f.q = qIn.value.trim().toLowerCase();
    f.service = serviceIn.value.trim();
    reload();
  };
  form.addEventListener('input', sync);
  form.addEventListener('change', sync);
  resetBtn.addEventListener('click', () => {
    for (const i of [routeIn, errIn, minIn, qIn, serviceIn]) i.value = '';
    statusIn.value = '';
    sync();
  });

  list.load();

  return {
    title: 'Requests',
    onRequest: list.receive,
    onCleared: list.clear,
    dispose: list.dispose,
  };
}

// A service's colour comes from its name, so it is the same in every view and on every load.
function serviceColor(name) {
  let x = 5381;
  for (const c of name || '') x = ((x * 33) ^ c.charCodeAt(0)) >>> 0;
  return (x + 5) % 6;
}
function serviceBadge(name) {
  return el('span', { class: 'svc svc' + serviceColor(name), text: name || '?' });
}

// ---------- Trace ----------

function traceView(main, traceId, selectedSpan) {
  const title = el('h2', { class: 'view-title' }, 'Trace ', el('span', { class: 'mono', text: traceId }));
  const meta = el('p', { class: 'summary', id: 'trace-meta', text: 'Loading…' });
  const reloadBtn = el('button', { type: 'button', text: 'Reload' });
  const backLink = el('a', { href: '#/requests', text: '← Requests' });
  const bar = el('div', { class: 'toolbar' }, backLink, reloadBtn);
  const waterfall = el('div', { class: 'panel waterfall-panel' });
  const details = el('section', { class: 'panel details', 'aria-label': 'Selected span', id: 'span-details' });
  const logsPanel = el('section', { class: 'panel trace-logs', 'aria-labelledby': 'trace-logs-h' });
  main.append(title, bar, meta, el('div', { class: 'trace-layout' }, el('div', { class: 'trace-main' }, waterfall, details), logsPanel));

  if (!HEX32.test(traceId)) {
    meta.replaceChildren(el('p', { class: 'error', role: 'alert', text: 'Not a trace id (32 lowercase hex digits).' }));
    return { title: 'Trace' };
  }

  let data = null;
  let selected = selectedSpan;

  function select(spanId, focus) {
    selected = spanId;
    history.replaceState(null, '', traceHref(traceId, spanId) || location.hash);
    for (const b of waterfall.querySelectorAll('.span-row')) {
      const on = b.dataset.span === spanId;
      b.classList.toggle('selected', on);
      b.setAttribute('aria-selected', String(on));
      if (on && focus) {
        b.focus();
        b.scrollIntoView({ block: 'nearest' });
      }
    }
    for (const li of logsPanel.querySelectorAll('[data-span]')) li.classList.toggle('related', li.dataset.span === spanId);
    renderDetails();
  }

  function kv(obj) {
    const entries = Object.entries(obj || {});
    if (!entries.length) return el('p', { class: 'muted', text: 'none' });
    return el(
      'table',
      { class: 'kv' },
      el(
        'tbody',
        null,
        entries.map(([k, v]) => el('tr', null, el('th', { scope: 'row', class: 'mono', text: k }), el('td', { class: 'mono', text: fmtValue(v) }))),
      ),
    );
  }

  function renderDetails() {
    const s = data && data.spans.find((x) => x.span_id === selected);
    if (!s) {
      details.replaceChildren(el('p', { class: 'muted', text: 'Select a span to see its attributes, events and links.' }));
      return;
    }
    const start = data.spans.reduce((m, x) => (BigInt(x.start_unix_nano) < m ? BigInt(x.start_unix_nano) : m), BigInt(s.start_unix_nano));
    const offset = Number(BigInt(s.start_unix_nano) - start) / 1e6;
    const parts = [
      el('h3', { id: 'span-title' }, s.name, ' ', serviceBadge(s.service)),
      el(
        'dl',
        { class: 'facts' },
        el('dt', { text: 'Kind' }),
        el('dd', { text: s.kind }),
        el('dt', { text: 'Status' }),
        el('dd', null, el('span', { class: 'st st-' + (s.status?.code || 'UNSET'), text: s.status?.code || 'UNSET' }), s.status?.message ? ' ' + s.status.message : ''),
        el('dt', { text: 'Duration' }),
        el('dd', { text: fmtMs(s.duration_ms) + ` (starts +${fmtMs(offset)})` }),
        el('dt', { text: 'Span id' }),
        el('dd', { class: 'mono', text: s.span_id }),
        el('dt', { text: 'Parent' }),
        el('dd', { class: 'mono', text: s.parent_span_id || '(root)' }),
        el('dt', { text: 'Scope' }),
        el('dd', { class: 'mono', text: s.scope || '' }),
      ),
      el('h4', { text: 'Attributes' }),
      kv(s.attributes),
      el('h4', { text: `Events (${(s.events || []).length})` }),
    ];
    if ((s.events || []).length) {
      parts.push(
        el(
          'ol',
          { class: 'events' },
          s.events.map((ev) =>
            el('li', null, el('span', { class: 'mono', text: '+' + fmtMs(nsDiffMs(ev.time_unix_nano, s.start_unix_nano)) + ' ' }), el('strong', { text: ev.name }), kv(ev.attributes)),
          ),
        ),
      );
    } else parts.push(el('p', { class: 'muted', text: 'none' }));
    parts.push(el('h4', { text: `Links (${(s.links || []).length})` }));
    if ((s.links || []).length) {
      parts.push(
        el(
          'ul',
          { class: 'events' },
          s.links.map((ln) => {
            const href = traceHref(ln.trace_id, ln.span_id);
            return el('li', null, href ? el('a', { href, class: 'mono', text: `${ln.trace_id} / ${ln.span_id}` }) : el('span', { class: 'mono', text: `${ln.trace_id} / ${ln.span_id}` }), kv(ln.attributes));
          }),
        ),
      );
    } else parts.push(el('p', { class: 'muted', text: 'none' }));
    parts.push(el('details', null, el('summary', { text: 'Resource' }), kv(s.resource)));
    details.replaceChildren(...parts);
  }

  function renderWaterfall() {
    const spans = data.spans.slice();
    if (!spans.length) {
      waterfall.replaceChildren(el('p', { class: 'muted', text: 'No span of this trace is stored (only log records carry its id).' }));
      return;
    }
    const byId = new Map(spans.map((s) => [s.span_id, s]));
    const kids = new Map();
    const roots = [];
    for (const s of spans) {
      if (s.parent_span_id && byId.has(s.parent_span_id)) {
        if (!kids.has(s.parent_span_id)) kids.set(s.parent_span_id, []);
        kids.get(s.parent_span_id).push(s);
      } else roots.push(s);
    }
    const byStart = (a, b) => (BigInt(a.start_unix_nano) < BigInt(b.start_unix_nano) ? -1 : BigInt(a.start_unix_nano) > BigInt(b.start_unix_nano) ? 1 : 0);
    roots.sort(byStart);
    const ordered = [];
    const walk = (s, depth) => {
      ordered.push([s, depth]);
      for (const c of (kids.get(s.span_id) || []).sort(byStart)) walk(c, depth + 1);
    };
    roots.forEach((r) => walk(r, 0));
    let t0 = null;
    let t1 = null;
    for (const s of spans) {
      const a = BigInt(s.start_unix_nano);
      const b = BigInt(s.end_unix_nano);
      if (t0 === null || a < t0) t0 = a;
      if (t1 === null || b > t1) t1 = b;
    }
    const total = Math.max(Number(t1 - t0) / 1e6, 0.001);

    const scale = el(
      'div',
      { class: 'scale', 'aria-hidden': 'true' },
      el('span', { text: '0' }),
      el('span', { text: fmtMs(total / 2) }),
      el('span', { text: fmtMs(total) }),
    );
    const list = el('div', { class: 'waterfall', role: 'listbox', 'aria-label': 'Spans of this trace, in tree order', id: 'waterfall' });
    for (const [s, depth] of ordered) {
      const off = (Number(BigInt(s.start_unix_nano) - t0) / 1e6 / total) * 100;
      const w = Math.max((s.duration_ms / total) * 100, 0.3);
      const err = s.status && s.status.code === 'ERROR';
      const nLogs = data.logs.filter((l) => l.span_id === s.span_id).length;
      const b = el(
        'button',
        {
          type: 'button',
          class: 'span-row' + (err ? ' err' : ''),
          role: 'option',
          'aria-selected': 'false',
          dataset: { span: s.span_id },
          'aria-label': `${s.name}, ${s.service}, ${s.kind}, ${fmtMs(s.duration_ms)}${err ? ', error' : ''}`,
          onclick: () => select(s.span_id, false),
        },
        el(
          'span',
          { class: 'span-name', style: `padding-left:${Math.min(depth, 12) * 0.9}rem` },
          serviceBadge(s.service),
          el('span', { class: 'kind', text: s.kind }),
          el('span', { class: 'nm', title: s.name, text: s.name }),
          nLogs ? el('span', { class: 'logcount', title: `${nLogs} log records`, text: `${nLogs} log` }) : null,
        ),
        el(
          'span',
          { class: 'span-bar' },
          el('span', { class: 'bar svcbar' + serviceColor(s.service) + (err ? ' err' : ''), style: `left:${off.toFixed(3)}%;width:${Math.min(w, 100 - off).toFixed(3)}%` }),
        ),
        el('span', { class: 'dur', text: fmtMs(s.duration_ms) }),
      );
      list.append(b);
    }
    list.addEventListener('keydown', (e) => {
      const rowsEls = [...list.querySelectorAll('.span-row')];
      const i = rowsEls.indexOf(document.activeElement);
      if (i < 0) return;
      let j = null;
      if (e.key === 'ArrowDown') j = Math.min(i + 1, rowsEls.length - 1);
      else if (e.key === 'ArrowUp') j = Math.max(i - 1, 0);
      else if (e.key === 'Home') j = 0;
      else if (e.key === 'End') j = rowsEls.length - 1;
      if (j !== null) {
        e.preventDefault();
        select(rowsEls[j].dataset.span, true);
      }
    });
    waterfall.replaceChildren(el('h3', { class: 'visually-hidden', text: 'Waterfall' }), scale, list);
  }

  function renderLogs() {
    const logs = data.logs
      .slice()
      .sort((a, b) => (BigInt(a.time_unix_nano) < BigInt(b.time_unix_nano) ? -1 : BigInt(a.time_unix_nano) > BigInt(b.time_unix_nano) ? 1 : 0));
    const t0 = data.spans.length ? data.spans.reduce((m, x) => (BigInt(x.start_unix_nano) < m ? BigInt(x.start_unix_nano) : m), BigInt(data.spans[0].start_unix_nano)) : null;
    const items = logs.map((l) => {
      const when = t0 !== null ? '+' + fmtMs(Number(BigInt(l.time_unix_nano) - t0) / 1e6) : clock(l.time_unix_nano);
      const hasSpan = HEX16.test(l.span_id || '') && data.spans.some((s) => s.span_id === l.span_id);
      return el(
        'li',
        { class: 'logline lvl-' + levelOf(l), dataset: { span: l.span_id || '' } },
        el('span', { class: 'mono when', text: when }),
        el('span', { class: 'lvl', text: (l.severity_text || '').toUpperCase() }),
        serviceBadge(l.service),
        el('span', { class: 'mono target', text: l.target || '' }),
        el('span', { class: 'body', text: l.body }),
        hasSpan
          ? el('button', {
              type: 'button',
              class: 'linkish span-link',
              text: 'span ' + l.span_id.slice(0, 8),
              'aria-label': `Show span ${l.span_id} of this log line`,
              onclick: () => select(l.span_id, true),
            })
          : el('span', { class: 'muted', text: l.span_id ? 'span ' + l.span_id.slice(0, 8) + ' (not in trace)' : 'no span' }),
        fieldsLine(l.attributes),
      );
    });
    logsPanel.replaceChildren(
      el('h3', { id: 'trace-logs-h', text: `Log records of this trace (${logs.length})` }),
      logs.length ? el('ol', { class: 'loglist', id: 'trace-logs' }, items) : el('p', { class: 'muted', text: 'No log records carry this trace id.' }),
    );
  }

  async function load() {
    try {
      data = await getJSON('traces/' + traceId);
      data.spans = data.spans || [];
      data.logs = data.logs || [];
      const services = data.services || [...new Set(data.spans.map((s) => s.service))];
      const root = data.spans.find((s) => !s.parent_span_id) || data.spans[0];
      meta.replaceChildren(
        `${data.spans.length} spans · ${services.length} service${services.length === 1 ? '' : 's'}: `,
        ...services.flatMap((s, i) => [i ? ' ' : '', serviceBadge(s)]),
        ` · ${data.logs.length} log records`,
        root ? ` · started ${clock(root.start_unix_nano)}` : '',
      );
      renderWaterfall();
      renderLogs();
      if (!selected || !data.spans.some((s) => s.span_id === selected)) selected = root ? root.span_id : null;
      select(selected, false);
      if (selectedSpan && selected === selectedSpan) {
        const b = waterfall.querySelector(`.span-row[data-span="${selected}"]`);
        if (b) b.scrollIntoView({ block: 'nearest' });
      }
    } catch (e) {
      meta.replaceChildren(el('p', { class: 'error', role: 'alert', text: e.status === 404 ? 'No such trace in the store (never seen, or evicted).' : 'Could not load: ' + e.message }));
    }
  }
  reloadBtn.addEventListener('click', load);
  load();

  // A trace still in flight: spans of other services arrive later. Reload when one shows up.
  const later = debounce(load, 400);
  return {
    title: 'Trace ' + traceId.slice(0, 8),
    onRequest(list) {
      if (list.some((r) => r.trace_id === traceId)) later();
    },
    onLog(list) {
      if (list.some((l) => l.trace_id === traceId)) later();
    },
  };
}

function levelOf(l) {
  const t = (l.severity_text || '').toLowerCase();
  if (LEVELS.includes(t)) return t;
  const n = l.severity_number || 0;
  return n >= 17 ? 'error' : n >= 13 ? 'warn' : n >= 9 ? 'info' : n >= 5 ? 'debug' : 'trace';
}

function fieldsLine(attrs) {
  const entries = Object.entries(attrs || {});
  if (!entries.length) return null;
  const line = el('span', { class: 'fields mono' });
  for (const [k, v] of entries) line.append(el('span', { class: 'fk', text: k }), '=', el('span', { class: 'fv', text: fmtValue(v) }), ' ');
  return line;
}

// ---------- Logs ----------

function logsView(main, params) {
  const f = {
    level: params.get('level') || '',
    target: params.get('target') || '',
    q: params.get('q') || '',
    trace_id: params.get('trace_id') || '',
    service: params.get('service') || '',
  };
  const levelIn = el(
    'select',
    { id: 'l-level' },
    el('option', { value: '', text: 'any' }),
    LEVELS.map((l) => el('option', { value: l, text: l + ' and above', selected: l === f.level })),
  );
  const targetIn = el('input', { type: 'text', id: 'l-target', list: 'dl-targets', value: f.target, placeholder: 'any', autocomplete: 'off' });
  const qIn = el('input', { type: 'search', id: 'l-q', value: f.q, placeholder: 'message or field', autocomplete: 'off', 'data-filter-focus': '' });
  const traceIn = el('input', { type: 'text', id: 'l-trace', value: f.trace_id, placeholder: '32 hex digits', autocomplete: 'off', spellcheck: 'false' });
  const serviceIn = el('input', { type: 'text', id: 'l-service', list: 'dl-lservices', value: f.service, placeholder: 'any', autocomplete: 'off' });
  const resetBtn = el('button', { type: 'button', text: 'Reset filters' });
  const form = el(
    'form',
    { class: 'filters', role: 'search', 'aria-label': 'Filter logs', onsubmit: (e) => e.preventDefault() },
    field('Level', levelIn),
    field('Target', targetIn),
    field('Text', qIn),
    field('Trace id', traceIn),
    field('Service', serviceIn),
    resetBtn,
  );
  const lists = el('div', { hidden: true });
  const summary = el('p', { class: 'summary', id: 'log-summary' });
  const tbody = el('tbody', { id: 'log-rows' });
  const table = el(
    'table',
    { class: 'grid logs', 'aria-describedby': 'log-summary' },
    el('caption', { class: 'visually-hidden', text: 'Log records, newest first' }),
    el('thead', null, el('tr', null, ['Time', 'Level', 'Service', 'Target', 'Message and fields', 'Trace', 'Span'].map((h) => el('th', { scope: 'col', text: h })))),
    tbody,
  );
  const empty = el('p', { class: 'empty', text: 'No log records match.' });
  main.append(el('h2', { class: 'view-title', text: 'Logs' }), form, lists, summary, el('div', { class: 'table-wrap' }, table), empty);
  rowKeys(tbody);

  const seen = { targets: new Set(), services: new Set() };

  function matches(l) {
    if (f.level && LEVELS.indexOf(levelOf(l)) < LEVELS.indexOf(f.level)) return false;
    if (f.target && !(l.target || '').startsWith(f.target)) return false;
    if (f.trace_id && l.trace_id !== f.trace_id) return false;
    if (f.service && l.service !== f.service) return false;
    if (f.q) {
      const q = f.q.toLowerCase();
      const hay = (l.body || '') + ' ' + JSON.stringify(l.attributes || {});
      if (!hay.toLowerCase().includes(q)) return false;
    }
    return true;
  }
  function note(l) {
    let changed = false;
    for (const [set, v] of [
      [seen.targets, l.target],
      [seen.services, l.service],
    ]) {
      if (v && !set.has(v)) {
        set.add(v);
        changed = true;
      }
    }
    if (changed) lists.replaceChildren(datalist('dl-targets', seen.targets), datalist('dl-lservices', seen.services));
  }
  function row(l) {
    const href = traceHref(l.trace_id, l.span_id);
    const lvl = levelOf(l);
    return el(
      'tr',
      { class: 'lvl-' + lvl },
      el('td', { class: 'mono nowrap' }, el('time', { datetime: isoTime(l.time_unix_nano), text: clock(l.time_unix_nano) })),
      el('td', null, el('span', { class: 'lvl', text: (l.severity_text || lvl).toUpperCase() })),
      el('td', null, serviceBadge(l.service)),
      el('td', { class: 'mono', text: l.target || '' }),
      el('td', { class: 'msg' }, el('span', { class: 'body', text: l.body || '' }), fieldsLine(l.attributes)),
      el('td', { class: 'mono' }, href ? el('a', { class: 'open', href, 'aria-label': `Open trace ${l.trace_id} at this log line's span`, title: l.trace_id, text: short(l.trace_id) }) : ''),
      el('td', { class: 'mono', title: l.span_id || '', text: l.span_id ? l.span_id.slice(0, 8) : '' }),
    );
  }
  const list = liveList({
    name: 'logs',
    timeField: 'time_unix_nano',
    show: SHOW_LOGS,
    keep: KEEP_LOGS,
    filters: f,
    main,
    summary,
    table,
    tbody,
    empty,
    row,
    matches,
    note,
  });
  const reload = debounce(list.load, 200);
  const sync = () => {
    f.level = levelIn.value;
    f.target = targetIn.value.trim();
    f.q = qIn.value.trim();
    f.trace_id = traceIn.value.trim().toLowerCase();
    f.service = serviceIn.value.trim();
    reload();
  };
  form.addEventListener('input', sync);
  form.addEventListener('change', sync);
  resetBtn.addEventListener('click', () => {
    for (const i of [targetIn, qIn, traceIn, serviceIn]) i.value = '';
    levelIn.value = '';
    sync();
  });
  list.load();
  return {
    title: 'Logs',
    onLog: list.receive,
    onCleared: list.clear,
    dispose: list.dispose,
  };
}

// ---------- Metrics ----------

function sparkline(points, series, opts) {
  // series: [{key, cls, label}], points: [{t_unix_s, ...}]
  const W = 160;
  const H = 44;
  const P = 2;
  const TOP = 14; // room for the peak label
  const s = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: 'spark', role: 'img' });
  const ts = points.map((p) => p.t_unix_s);
  const tMin = opts.tMin;
  const tMax = opts.tMax;
  let vMax = 0;
  for (const p of points) for (const se of series) if (Number.isFinite(p[se.key])) vMax = Math.max(vMax, p[se.key]);
  if (opts.max !== undefined) vMax = Math.max(vMax, opts.max);
  if (vMax <= 0) vMax = 1;
  const x = (t) => P + ((t - tMin) / Math.max(tMax - tMin, 1)) * (W - 2 * P);
  const y = (v) => H - P - (v / vMax) * (H - TOP - P);
  s.append(svg('line', { x1: P, x2: W - P, y1: H - P, y2: H - P, class: 'axis' }));
  const labels = [];
  for (const se of series) {
    let d = '';
    let pen = false;
    points.forEach((p, i) => {
      const v = p[se.key];
      if (!Number.isFinite(v)) {
        pen = false;
        return;
      }
      d += (pen ? 'L' : 'M') + x(ts[i]).toFixed(1) + ' ' + y(v).toFixed(1) + ' ';
      pen = true;
    });
    if (d) s.append(svg('path', { d, class: 'line ' + se.cls, fill: 'none' }));
    const last = [...points].reverse().find((p) => Number.isFinite(p[se.key]));
    labels.push(`${se.label} ${last ? opts.fmt(last[se.key]) : 'none'}`);
  }
  const peak = svg('text', { x: W - P, y: 9, 'text-anchor': 'end', class: 'peak' });
  peak.textContent = 'max ' + opts.fmt(vMax);
  s.append(peak);
  const t = svg('title');
  t.textContent = `${opts.title}: latest ${labels.join(', ')}; peak ${opts.fmt(vMax)} over the window`;
  s.prepend(t);
  s.setAttribute('aria-label', t.textContent);
  return s;
}

function metricsView(main, params) {
  let windowS = Number(params.get('window_s')) || 300;
  const winIn = el(
    'select',
    { id: 'm-window' },
    [
      [300, 'last 5 minutes'],
      [900, 'last 15 minutes'],
      [3600, 'last hour'],
    ].map(([v, t]) => el('option', { value: v, text: t, selected: v === windowS })),
  );
  const updated = el('p', { class: 'summary', id: 'metrics-updated' });
  const health = el('section', { class: 'panel health', 'aria-labelledby': 'health-h' });
  const tbody = el('tbody', { id: 'metric-rows' });
  const table = el(
    'table',
    { class: 'grid metrics' },
    el('caption', { class: 'visually-hidden', text: 'RED metrics per route' }),
    el('thead', null, el('tr', null, ['Service', 'Route', 'Rate (req/s)', 'Error rate (5xx)', 'Latency p50 / p95 / p99'].map((h) => el('th', { scope: 'col', text: h })))),
    tbody,
  );
  const empty = el('p', { class: 'empty', text: 'No requests in this window yet.' });
  main.append(
    el('h2', { class: 'view-title', text: 'Metrics' }),
    el('form', { class: 'filters', onsubmit: (e) => e.preventDefault() }, field('Window', winIn)),
    health,
    el('h3', { text: 'RED per route' }),
    updated,
    el('div', { class: 'table-wrap' }, table),
    empty,
  );

  const pct = (v) => (Number.isFinite(v) ? (v * 100).toFixed(v < 0.1 ? 1 : 0) + ' %' : '–');
  const rate = (v) => (Number.isFinite(v) ? (v < 10 ? v.toFixed(2) : v.toFixed(0)) : '–');

  function latest(points, key) {
    for (let i = points.length - 1; i >= 0; i--) if (Number.isFinite(points[i][key])) return points[i][key];
    return null;
  }

  function renderHealth(pipeline, series) {
    const p = pipeline || {};
    const open = new Set([...health.querySelectorAll('details[open]')].map((d) => d.dataset.key));
    const label = {
      spans_dropped: 'Spans dropped',
      logs_dropped: 'Log records dropped',
      export_failures: 'Export failures',
      log_lines_dropped: 'Log lines dropped (stdout)',
    };
    const human = (k) => label[k] || k.replaceAll('_', ' ');
    const scalar = (v) => v === null || typeof v !== 'object';
    const stat = (k, v, bad) => el('div', { class: 'stat' + (bad ? ' bad' : '') }, el('dt', { text: human(k) }), el('dd', { class: 'mono', text: String(v) }));
    const keys = [...Object.keys(label), ...Object.keys(p).filter((k) => !(k in label))];
    const items = keys.filter((k) => k in p && scalar(p[k])).map((k) => stat(k, p[k], k in label && Number(p[k]) > 0));
    const blocks = [el('h3', { id: 'health-h', text: 'Exporter health' }), el('dl', { class: 'stats' }, items)];
    if (series) {
      const budget = series.budget || 1;
      const ratio = series.active / budget;
      blocks.push(
        el(
          'p',
          { class: 'series' },
          el('label', { for: 'series-meter', text: 'Active metric series ' }),
          el('meter', { id: 'series-meter', min: 0, max: budget, low: budget * 0.7, high: budget * 0.9, optimum: 0, value: series.active }),
          el('span', { class: 'mono', text: ` ${series.active} of ${series.budget} budget (${(ratio * 100).toFixed(0)} %)` }),
        ),
      );
    }
    // Per instance (the shop and its in-process simulator are two).
    if (Array.isArray(p.instances) && p.instances.length) {
      const cols = ['service', 'instance', 'spans_dropped', 'logs_dropped', 'export_failures', 'log_lines_dropped', 'active_series'];
      blocks.push(
        el(
          'details',
          { class: 'more', dataset: { key: 'instances' }, open: open.has('instances') },
          el('summary', { text: `Per instance (${p.instances.length})` }),
          el(
            'div',
            { class: 'table-wrap' },
            el(
              'table',
              { class: 'grid compact' },
              el('thead', null, el('tr', null, cols.map((c) => el('th', { scope: 'col', text: human(c) })))),
              el(
                'tbody',
                null,
                p.instances.map((i) => el('tr', null, cols.map((c) => el('td', { class: c === 'service' ? '' : 'mono', title: c === 'instance' ? i[c] : null }, c === 'service' ? serviceBadge(i[c]) : c === 'instance' ? short(String(i[c] ?? '')) : String(i[c] ?? ''))))),
              ),
            ),
          ),
        ),
      );
    }
    // The console's own store and intake.
    if (p.console && typeof p.console === 'object') {
      const c = p.console;
      const parts = [];
      if (c.store) {
        const st = c.store;
        const mib = (b) => (b / 1048576).toFixed(1) + ' MiB';
        parts.push(el('p', { class: 'mono small' }, `store: ${st.spans} of ${st.max_spans} spans, ${st.logs} of ${st.max_logs} log records, ${mib(st.bytes)} of ${mib(st.max_bytes)}`));
      }
      const rest = Object.entries(c).filter(([k, v]) => k !== 'store' && scalar(v));
      if (rest.length) parts.push(el('dl', { class: 'stats small' }, rest.map(([k, v]) => stat(k, v, false))));
      blocks.push(el('details', { class: 'more', dataset: { key: 'store' }, open: open.has('store') }, el('summary', { text: 'Console store' }), parts));
    }
    health.replaceChildren(...blocks);
  }

  let timer = null;
  let gen = 0;
  async function load() {
    const my = ++gen;
    setHashParams('metrics', new URLSearchParams(windowS === 300 ? '' : { window_s: windowS }));
    try {
      const body = await getJSON('metrics?window_s=' + windowS);
      if (my !== gen) return;
      renderHealth(body.pipeline, body.series);
      const now = Math.floor(Date.now() / 1000);
      const routes = (body.routes || []).slice();
      let tMax = now;
      for (const r of routes) for (const p of r.points || []) tMax = Math.max(tMax, p.t_unix_s);
      // The charts span the window, or less while the store holds less history.
      let first = tMax;
      for (const r of routes) for (const p of r.points || []) first = Math.min(first, p.t_unix_s);
      const tMin = Math.max(tMax - windowS, first - 5);
      routes.sort((a, b) => (a.service + a.route + a.method < b.service + b.route + b.method ? -1 : 1));
      const frag = document.createDocumentFragment();
      for (const r of routes) {
        const pts = r.points || [];
        const lastRate = latest(pts, 'rate');
        const lastErr = latest(pts, 'error_rate');
        frag.append(
          el(
            'tr',
            null,
            el('td', { 'data-label': 'Service' }, serviceBadge(r.service)),
            el('th', { scope: 'row', class: 'mono' }, `${r.method || ''} ${r.route || ''}`.trim()),
            el('td', { 'data-label': 'Rate (req/s)' }, el('div', { class: 'cell-chart' }, el('span', { class: 'mono big', text: rate(lastRate) }), sparkline(pts, [{ key: 'rate', cls: 'c-rate', label: 'rate' }], { tMin, tMax, fmt: (v) => rate(v) + ' req/s', title: 'Request rate' }))),
            el(
              'td',
              { 'data-label': 'Error rate (5xx)' },
              el('div', { class: 'cell-chart' }, el('span', { class: 'mono big' + (lastErr > 0 ? ' bad' : ''), text: pct(lastErr) }), sparkline(pts, [{ key: 'error_rate', cls: 'c-err', label: 'errors' }], { tMin, tMax, max: 0.05, fmt: pct, title: 'Error rate' })),
            ),
            el(
              'td',
              { 'data-label': 'Latency p50 / p95 / p99' },
              el(
                'div',
                { class: 'cell-chart' },
                el('span', { class: 'mono lat' }, el('span', { class: 'k-p50', text: fmtMs(latest(pts, 'p50_ms')) }), ' / ', el('span', { class: 'k-p95', text: fmtMs(latest(pts, 'p95_ms')) }), ' / ', el('span', { class: 'k-p99', text: fmtMs(latest(pts, 'p99_ms')) })),
                sparkline(
                  pts,
                  [
                    { key: 'p50_ms', cls: 'c-p50', label: 'p50' },
                    { key: 'p95_ms', cls: 'c-p95', label: 'p95' },
                    { key: 'p99_ms', cls: 'c-p99', label: 'p99' },
                  ],
                  { tMin, tMax, fmt: fmtMs, title: 'Latency' },
                ),
              ),
            ),
          ),
        );
      }
      tbody.replaceChildren(frag);
      empty.hidden = routes.length > 0;
      table.hidden = routes.length === 0;
      const d = new Date();
      updated.textContent = `${routes.length} route${routes.length === 1 ? '' : 's'} · updated ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}${state.paused ? ' · paused' : ', every 5 s'}`;
    } catch (e) {
      if (my !== gen) return;
      updated.replaceChildren(errorBox(main, e));
    }
  }
  winIn.addEventListener('change', () => {
    windowS = Number(winIn.value);
    load();
  });
  load();
  timer = setInterval(() => {
    if (!state.paused && document.visibilityState !== 'hidden') load();
  }, 5000);
  return {
    title: 'Metrics',
    onCleared: load,
    dispose() {
      clearInterval(timer);
    },
  };
}

// ---------- keyboard ----------

function typing(e) {
  const t = e.target;
  return t && (t.isContentEditable || ['INPUT', 'SELECT', 'TEXTAREA'].includes(t.tagName));
}

function initKeys() {
  document.addEventListener('keydown', (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === 'Escape') {
      if (typing(e)) {
        e.target.blur();
        return;
      }
      if (location.hash.startsWith('#/trace/')) {
        if (state.navigated) history.back();
        else location.hash = '#/requests';
      }
      return;
    }
    if (typing(e)) return;
    if (e.key === '/') {
      const i = document.querySelector('[data-filter-focus]');
      if (i) {
        e.preventDefault();
        i.focus();
      }
    } else if (e.key === 'p') togglePause();
    else if (e.key === '1') location.hash = '#/requests';
    else if (e.key === '2') location.hash = '#/logs';
    else if (e.key === '3') location.hash = '#/metrics';
  });
}

// ---------- start ----------

function start() {
  initTheme();
  initKeys();
  document.getElementById('pause').addEventListener('click', togglePause);
  document.getElementById('clear').addEventListener('click', clearAll);
  let lastView = null;
  window.addEventListener('hashchange', () => {
    state.navigated = true;
    route();
    const name = parseHash().parts[0] || 'requests';
    // Moving to another view puts focus at its start, for keyboard and screen reader users.
    if (name !== lastView) document.getElementById('main').focus({ preventScroll: true });
    lastView = name;
  });
  if (!location.hash) history.replaceState(null, '', '#/requests');
  lastView = parseHash().parts[0] || 'requests';
  route();
  connect();
}

start();
