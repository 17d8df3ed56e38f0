// fte web dashboard: plain browser JavaScript, no build step and no dependencies (the machine may have no internet).
//
// Security rules this file keeps (docs/API.md, "Web dashboard"):
// - The token arrives in the link's #fragment, which browsers never send to a server or put in a Referer. It is kept
//   in sessionStorage (this tab only, gone when it closes) and sent as `Authorization: Bearer` — never as a cookie, so
//   no other site can make the browser use it (no ambient authority, hence no CSRF), and the API sends no CORS headers.
// - Every piece of task data is untrusted (titles come from notes and emails): it only ever reaches the page through
//   textContent and setAttribute and is never parsed as markup. The page's CSP forbids inline script as a second wall.

const TOKEN_KEY = 'fte.apiToken';
const REFRESH_KEY = 'fte.refreshSeconds';
const SVG_NS = 'http://www.w3.org/2000/svg';
/** How long an armed Approve/Reject button waits for its confirming click. */
const ARM_MS = 8000;

const state = {
  token: null,
  refreshMs: 5000,
  since: '24h',
  timer: null,
  /** { id, action, until }: the button clicked once, waiting for the confirming click. */
  armed: null,
  /** Task ids with a decision in flight: their buttons stay disabled. */
  busy: new Set(),
  /** When the last dashboard was fetched (ms), for elapsed times that keep counting between polls. */
  fetchedAt: 0,
  lastDashboard: null,
};

class ApiCallError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// DOM helpers: text only.

function $(selector) {
  const found = document.querySelector(selector);
  if (found === null) throw new Error(`missing element ${selector}`);
  return found;
}

/** An element with attributes and children; strings become text nodes, so markup in data stays text. */
function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'text') node.textContent = String(value);
    else if (key === 'onclick') node.addEventListener('click', value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children) node.append(typeof child === 'string' ? document.createTextNode(child) : child);
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function fillTable(id, rows) {
  $(`#${id} tbody`).replaceChildren(...rows);
  const empty = document.querySelector(`.empty[data-for="${id}"]`);
  if (empty !== null) empty.hidden = rows.length > 0;
}

function notice(message, isError = false) {
  const node = $('#notice');
  node.textContent = message;
  node.classList.toggle('error', isError);
}

// ---------------------------------------------------------------------------------------------------------------
// Formatting

function fmtSeconds(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} m ${String(s % 60).padStart(2, '0')} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${String(m % 60).padStart(2, '0')} m`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

function fmtMs(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return fmtSeconds(ms / 1000);
}

function fmtUsd(usd) {
  return `$${usd < 10 ? usd.toFixed(4) : usd.toFixed(2)}`;
}

function fmtPercent(ratio) {
  return `${(ratio * 100).toFixed(1)} %`;
}

function fmtTime(iso) {
  const d = new Date(iso);
  const sameDay = d.toDateString() === new Date().toDateString();
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  return sameDay ? time : `${d.toLocaleDateString([], { month: 'short', day: 'numeric' })} ${time}`;
}

function fmtNumber(n, digits = 2) {
  return Number.isInteger(n) ? String(n) : n.toFixed(digits);
}

// ---------------------------------------------------------------------------------------------------------------
// The API

async function api(path, options = {}) {
  const headers = { authorization: `Bearer ${state.token}`, accept: 'application/json' };
  const init = { method: options.method ?? 'GET', headers, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer' };
  if (options.body !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(options.body);
  }
  const response = await fetch(path, init);
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (!response.ok) {
    const error = payload !== null && typeof payload === 'object' ? payload.error : undefined;
    throw new ApiCallError(response.status, error?.code ?? 'HTTP_ERROR', error?.message ?? `HTTP ${response.status}`);
  }
  return payload;
}

// ---------------------------------------------------------------------------------------------------------------
// Rendering

function setBadge(node, text, tone, dataKey, dataValue) {
  node.textContent = text;
  node.className = `badge ${tone}`;
  node.dataset[dataKey] = dataValue;
}

function renderHeader(d) {
  const { orchestrator, stop } = d.status;
  if (!orchestrator.running) setBadge($('#orchestrator'), 'not running', 'bad', 'state', 'not_running');
  else if (stop.stopped) setBadge($('#orchestrator'), `stopped${stop.reason ? `: ${stop.reason}` : ''}`, 'warn', 'state', 'stopped');
  else setBadge($('#orchestrator'), `running${orchestrator.pid === null ? '' : ` (pid ${orchestrator.pid})`}`, 'good', 'state', 'running');
  const tone = { healthy: 'good', degraded: 'warn', unhealthy: 'bad' }[d.health.status] ?? 'unknown';
  setBadge($('#health'), d.health.status, tone, 'status', d.health.status);
  $('#vault').textContent = d.status.vault;
  $('#updated').textContent = `updated ${fmtTime(d.generatedAt)}`;
}

function card(label, value, tone = '') {
  return el('div', { class: `card ${tone}`, 'data-metric': label }, [
    el('div', { class: 'label', text: label }),
    el('div', { class: 'value', text: value }),
  ]);
}

function renderMetrics(d) {
  const m = d.metrics;
  const b = d.status.budget;
  const budget = b.dailyUsd === null ? fmtUsd(b.spentUsd) : `${fmtUsd(b.spentUsd)} / ${fmtUsd(b.dailyUsd)}`;
  $('#metrics').replaceChildren(
    card('completed', String(m.completed), 'done'),
    card('failed', String(m.failed), m.failed > 0 ? 'failed' : ''),
    card('throughput / h', fmtNumber(m.throughputPerHour)),
    card('error rate', fmtPercent(m.errorRate), m.errorRate > 0 ? 'degraded' : ''),
    card('latency p50', fmtMs(m.latencyMs.p50)),
    card('latency p95', fmtMs(m.latencyMs.p95)),
    card('cost', fmtUsd(m.costUsd)),
    card('queued', `${d.queue.total}${d.queue.retrying > 0 ? ` (+${d.queue.retrying} retrying)` : ''}`),
    card('budget 24 h', b.exhausted === null ? budget : `${budget} — exhausted`, b.exhausted === null ? '' : 'failed'),
  );
}

function decisionButtons(id) {
  const busy = state.busy.has(id);
  const armed = state.armed !== null && state.armed.id === id && state.armed.until > Date.now() ? state.armed.action : null;
  const button = (action, label) =>
    el('button', {
      type: 'button',
      class: action,
      'data-action': action,
      'data-task': id,
      disabled: busy,
      text: armed === action ? `Confirm ${label.toLowerCase()}` : label,
      onclick: () => onDecision(id, action),
    });
  return el('td', { class: 'actions' }, [button('approve', 'Approve'), button('reject', 'Reject')]);
}

function renderApprovals(d) {
  const rows = d.status.pendingApproval.map((p) =>
    el('tr', { 'data-task': p.id }, [
      el('td', { class: 'id', text: p.id }),
      el('td', { class: 'title', text: p.title }),
      el('td', { class: 'num', text: fmtSeconds(p.waitingSeconds) }),
      el('td', { text: p.reasons.join('; ') }),
      decisionButtons(p.id),
    ]),
  );
  $('#approvals-count').textContent = rows.length > 0 ? `(${rows.length})` : '';
  fillTable('approvals', rows);
}

function renderRunning(d) {
  const rows = d.status.running.map((r) =>
    el('tr', { 'data-task': r.id }, [
      el('td', { class: 'id', text: r.id }),
      el('td', { class: 'title', text: r.title }),
      el('td', { class: r.state, text: r.state }),
      el('td', { class: 'num', text: String(r.attempt) }),
      el('td', { class: 'num elapsed', 'data-base': r.elapsedSeconds, text: fmtSeconds(r.elapsedSeconds) }),
    ]),
  );
  $('#running-count').textContent = rows.length > 0 ? `(${rows.length})` : '';
  fillTable('running', rows);
}

function renderQueue(d) {
  const rows = d.queue.head.map((q) =>
    el('tr', { 'data-task': q.id }, [
      el('td', { class: 'num', text: String(q.position) }),
      el('td', { class: 'id', text: q.id }),
      el('td', { class: 'title', text: q.title }),
      el('td', { text: q.type }),
      el('td', { class: 'num score', text: q.score.toFixed(2) }),
      el('td', { class: 'num', text: fmtSeconds(q.waitSeconds) }),
      el('td', { class: 'num eta', text: q.etaSeconds === null ? '—' : fmtSeconds(q.etaSeconds) }),
      el('td', { class: 'muted', text: [q.state === 'approved' ? 'approved' : null, q.state === null ? 'not admitted yet' : null, q.approvalRequired && q.state !== 'approved' ? 'needs approval' : null].filter(Boolean).join(', ') }),
    ]),
  );
  $('#queue-count').textContent = d.queue.total > rows.length ? `(${rows.length} of ${d.queue.total})` : rows.length > 0 ? `(${rows.length})` : '';
  fillTable('queue', rows);
}

function renderRecent(d) {
  const rows = d.recent.map((r) =>
    el('tr', { 'data-task': r.id }, [
      el('td', { text: fmtTime(r.finishedAt) }),
      el('td', { class: 'id', text: r.id }),
      el('td', { class: 'title', text: r.title }),
      el('td', { class: r.state, text: r.state }),
      el('td', { class: 'num', text: fmtMs(r.durationMs) }),
      el('td', { class: 'num', text: fmtUsd(r.costUsd) }),
      el('td', { class: 'muted', text: r.detail ?? '' }),
    ]),
  );
  fillTable('recent', rows);
}

function renderChecks(d) {
  fillTable(
    'checks',
    d.health.checks.map((c) =>
      el('tr', { 'data-check': c.name }, [
        el('td', { text: c.name }),
        el('td', { class: c.status, text: c.status }),
        el('td', { class: 'num', text: c.value === null ? '—' : fmtNumber(c.value) }),
        el('td', { class: 'num', text: fmtNumber(c.threshold) }),
        el('td', { text: c.message }),
      ]),
    ),
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Charts: hand-rolled SVG, one element per data point so each carries its value (and a tooltip).

const FRAME = { width: 600, height: 180, left: 64, right: 8, top: 10, bottom: 22 };

function bucketLabel(iso, bucketSeconds) {
  const d = new Date(iso);
  const day = d.toLocaleDateString([], { month: 'short', day: 'numeric' });
  if (bucketSeconds >= 86_400) return day;
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  // A 24 h window starts and ends at the same time of day: the date tells the two ends apart.
  return d.toDateString() === new Date().toDateString() ? time : `${day} ${time}`;
}

/** A bucket's width in words: "5 min", "1 h", "1 d". */
function fmtBucket(seconds) {
  if (seconds % 86_400 === 0) return `${seconds / 86_400} d`;
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

function axes(root, maxLabel, series, bucketSeconds) {
  const { width, height, left, right, top, bottom } = FRAME;
  root.append(
    svg('line', { class: 'axis', x1: left, y1: height - bottom, x2: width - right, y2: height - bottom }),
    svg('line', { class: 'axis', x1: left, y1: top, x2: left, y2: height - bottom }),
    svg('text', { class: 'tick', x: left - 4, y: top + 8, 'text-anchor': 'end' }, maxLabel),
    svg('text', { class: 'tick', x: left - 4, y: height - bottom, 'text-anchor': 'end' }, '0'),
  );
  if (series.length > 0) {
    root.append(
      svg('text', { class: 'tick', x: left, y: height - 6 }, bucketLabel(series[0].start, bucketSeconds)),
      svg('text', { class: 'tick', x: width - right, y: height - 6, 'text-anchor': 'end' }, bucketLabel(series[series.length - 1].start, bucketSeconds)),
    );
  }
}

function noData(root) {
  root.append(svg('text', { class: 'nodata', x: FRAME.width / 2, y: FRAME.height / 2, 'text-anchor': 'middle' }, 'no data in this window'));
}

function renderThroughput(series, bucketSeconds) {
  const root = $('#chart-throughput svg');
  root.replaceChildren();
  const { width, height, left, right, top, bottom } = FRAME;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const max = Math.max(1, ...series.map((b) => b.completed + b.failed));
  axes(root, String(max), series, bucketSeconds);
  $('#throughput-caption').textContent = `tasks finished per ${fmtBucket(bucketSeconds)}`;
  if (series.every((b) => b.completed + b.failed === 0)) {
    noData(root);
    return;
  }
  const slot = plotW / Math.max(1, series.length);
  const barW = Math.max(1, slot * 0.8);
  series.forEach((b, i) => {
    const x = left + i * slot + (slot - barW) / 2;
    let y = height - bottom;
    for (const [kind, value] of [['completed', b.completed], ['failed', b.failed]]) {
      if (value === 0) continue;
      const h = (value / max) * plotH;
      y -= h;
      const rect = svg('rect', { class: `bar ${kind}`, x: x.toFixed(1), y: y.toFixed(1), width: barW.toFixed(1), height: h.toFixed(1), 'data-value': value, 'data-start': b.start });
      rect.append(svg('title', {}, `${bucketLabel(b.start, bucketSeconds)}: ${value} ${kind}`));
      root.append(rect);
    }
  });
}

function renderLatency(series, bucketSeconds) {
  const root = $('#chart-latency svg');
  root.replaceChildren();
  const { width, height, left, right, top, bottom } = FRAME;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  // A bucket in which nothing finished has no latency (not a latency of 0): it is left out of the line.
  const points = series.map((b, i) => ({ b, i })).filter(({ b }) => b.completed + b.failed > 0 && b.latencyMsAvg > 0);
  const max = Math.max(1, ...points.map(({ b }) => b.latencyMsAvg));
  axes(root, fmtMs(max), series, bucketSeconds);
  $('#latency-caption').textContent = `average run time per ${fmtBucket(bucketSeconds)}`;
  if (points.length === 0) {
    noData(root);
    return;
  }
  const slot = plotW / Math.max(1, series.length);
  const xy = points.map(({ b, i }) => ({ b, x: left + i * slot + slot / 2, y: height - bottom - (b.latencyMsAvg / max) * plotH }));
  root.append(svg('polyline', { class: 'line', points: xy.map((p) => `${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(' ') }));
  for (const p of xy) {
    const dot = svg('circle', { class: 'point', cx: p.x.toFixed(1), cy: p.y.toFixed(1), r: 3, 'data-value': p.b.latencyMsAvg, 'data-start': p.b.start });
    dot.append(svg('title', {}, `${bucketLabel(p.b.start, bucketSeconds)}: ${fmtMs(p.b.latencyMsAvg)} average`));
    root.append(dot);
  }
}

function render(d) {
  state.lastDashboard = d;
  state.fetchedAt = Date.now();
  renderHeader(d);
  renderMetrics(d);
  renderApprovals(d);
  renderRunning(d);
  renderQueue(d);
  renderRecent(d);
  renderChecks(d);
  renderThroughput(d.metrics.series, d.metrics.bucketSeconds);
  renderLatency(d.metrics.series, d.metrics.bucketSeconds);
  document.body.dataset.loaded = 'true';
}

/** Running tasks keep counting between polls. */
function tickElapsed() {
  const passed = (Date.now() - state.fetchedAt) / 1000;
  for (const cell of document.querySelectorAll('td.elapsed')) {
    cell.textContent = fmtSeconds(Number(cell.dataset.base) + passed);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Polling and actions

function schedule() {
  clearTimeout(state.timer);
  state.timer = setTimeout(refresh, state.refreshMs);
}

async function refresh() {
  if (state.token === null) return;
  try {
    const d = await api(`/dashboard?since=${encodeURIComponent(state.since)}`);
    render(d);
    if ($('#notice').classList.contains('error') && $('#notice').dataset.kind === 'connection') notice('');
  } catch (err) {
    if (err instanceof ApiCallError && err.status === 401) {
      signOut('The orchestrator refused the token (it may have been replaced). Open a new link from `fte orchestrator dashboard --web`.');
      return;
    }
    notice(`Cannot refresh: ${err.message} (retrying)`, true);
    $('#notice').dataset.kind = 'connection';
    setBadge($('#orchestrator'), 'unreachable', 'bad', 'state', 'unreachable');
  }
  schedule();
}

async function onDecision(id, action) {
  if (state.busy.has(id)) return;
  // Two clicks: approving runs risky work (that is why it waits for a person), so one stray click must not do it.
  if (state.armed === null || state.armed.id !== id || state.armed.action !== action || state.armed.until < Date.now()) {
    state.armed = { id, action, until: Date.now() + ARM_MS };
    if (state.lastDashboard !== null) renderApprovals(state.lastDashboard);
    setTimeout(() => {
      if (state.armed !== null && state.armed.until <= Date.now() && state.lastDashboard !== null) {
        state.armed = null;
        renderApprovals(state.lastDashboard);
      }
    }, ARM_MS + 50);
    return;
  }
  state.armed = null;
  state.busy.add(id);
  if (state.lastDashboard !== null) renderApprovals(state.lastDashboard);
  try {
    const body = action === 'reject' ? { reason: 'rejected from the web dashboard' } : {};
    const result = await api(`/tasks/${encodeURIComponent(id)}/${action}`, { method: 'POST', body });
    notice(`${id}: ${result.state}`);
    $('#notice').dataset.kind = 'action';
  } catch (err) {
    if (err instanceof ApiCallError && err.status === 401) {
      signOut('The orchestrator refused the token.');
      return;
    }
    notice(`${action} ${id} failed: ${err.message}`, true);
    $('#notice').dataset.kind = 'action';
  } finally {
    state.busy.delete(id);
  }
  await refresh();
}

function signOut(message) {
  clearTimeout(state.timer);
  state.token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  $('#board').hidden = true;
  $('#signin').hidden = false;
  $('#signin-error').textContent = message;
}

function signIn(token) {
  state.token = token;
  sessionStorage.setItem(TOKEN_KEY, token);
  $('#signin').hidden = true;
  $('#board').hidden = false;
  void refresh();
}

/**
 * Take the token (and refresh interval) from the #fragment, then drop the fragment from the address bar, so the token
 * is not left on screen, in a bookmark or in a screenshot.
 */
function readFragment() {
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get('token');
  if (token !== null && token.trim() !== '') sessionStorage.setItem(TOKEN_KEY, token.trim());
  const refresh = Number(params.get('refresh'));
  if (Number.isFinite(refresh) && refresh >= 1 && refresh <= 3600) sessionStorage.setItem(REFRESH_KEY, String(refresh));
  if (location.hash !== '') history.replaceState(null, '', location.pathname + location.search);
}

function start() {
  readFragment();
  const refresh = Number(sessionStorage.getItem(REFRESH_KEY));
  if (Number.isFinite(refresh) && refresh >= 1) state.refreshMs = refresh * 1000;
  $('#signin-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const value = $('#token-input').value.trim();
    if (value !== '') signIn(value);
  });
  $('#window').addEventListener('change', (event) => {
    state.since = event.target.value;
    void refresh();
  });
  setInterval(tickElapsed, 1000);
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token === null) {
    $('#signin').hidden = false;
    return;
  }
  signIn(token);
}

start();
