import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { dashboardSchema, type DashboardReport } from '../../lib/app/contracts.ts';
import { validateConfig } from '../../lib/core/config.ts';
import { createLocalBackend } from '../../lib/local/api-backend.ts';
import { startApiServer, type RunningApiServer } from '../../lib/local/http-server.ts';
import { TaskService } from '../../lib/local/task-service.ts';
import { newTask, removeTempDirs, run, tempDir, writeNote } from '../api/fixtures.ts';

/**
 * The web dashboard in a real browser: headless Chromium (the Debian package, driven by playwright-core) against a
 * real local API over a temporary vault with an SQLite store. The page is opened with the link `fte orchestrator
 * dashboard --web` prints, and everything it shows is checked against what the API itself returns.
 */

const CHROMIUM = process.env['FTE_CHROMIUM'] ?? '/usr/bin/chromium';
// This machine's network is closed: without these Chromium stalls on its own background requests.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const XSS_TITLE = '<img src=x onerror="window.__fteXss=1">Pay <b>ACME</b> invoice & "wire" it';
const MIN = 60_000;
const HOUR = 60 * MIN;

let browser: Browser;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    // Not a skip: without a browser the page is untested, and CI must say so loudly.
    throw new Error(
      `Chromium not found at ${CHROMIUM}. The web dashboard tests need it: install the Debian package ` +
        '(`apt-get install -y --no-install-recommends chromium`; .ci/run does this) or set FTE_CHROMIUM to a Chromium binary.',
    );
  }
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  removeTempDirs();
});

interface Fixture {
  service: TaskService;
  server: RunningApiServer;
  vault: string;
}

let fixture: Fixture;
let page: Page;
const pageErrors: string[] = [];

/**
 * A vault as an orchestrator leaves it after a day's work, with times relative to now (the page asks for the last
 * 24 h): a dozen finished tasks spread over the day (two dead-lettered), one agent running, two tasks waiting for
 * approval (one with a hostile title), two in the queue.
 */
async function buildVault(): Promise<Fixture> {
  const vault = tempDir('fte-web-');
  const config = validateConfig({ orchestrator: { max_concurrent_tasks: 2 } });
  const service = TaskService.open(vault, config);
  const { store } = service;
  const now = Date.now();
  const at = (msAgo: number): Date => new Date(now - msAgo);

  for (let i = 0; i < 12; i++) {
    const id = `done-${String(i).padStart(2, '0')}`;
    const end = 20 * HOUR - i * 100 * MIN;
    const durationMs = 30_000 + i * 15_000;
    await store.create(newTask(id, at(end + HOUR), { title: `Finished task ${i}`, type: i % 2 === 0 ? 'email' : 'code' }), at(end + HOUR));
    await store.apply(id, { type: 'execute' }, at(end + durationMs));
    if (i === 3 || i === 8) {
      await store.apply(id, { type: 'dead_letter', error: { class: 'invalid_task', message: 'cannot be done' } }, at(end), {
        run: run(id, 1, at(end), durationMs, 0.02, { ok: false, errorClass: 'invalid_task' }),
      });
    } else {
      await store.apply(id, { type: 'succeed' }, at(end), { run: run(id, 1, at(end), durationMs, 0.05) });
    }
  }

  await store.create(newTask('running-r', at(30 * MIN), { title: 'Research competitors', type: 'research' }), at(30 * MIN));
  await store.apply('running-r', { type: 'execute' }, at(3 * MIN));

  const approval = { type: 'payment', approvalRequired: true, approvalReasons: ['tasks of type "payment" always need approval'] };
  for (const [id, title] of [['pay-acme', XSS_TITLE], ['refund-bob', 'Refund Bob']] as const) {
    await store.create(newTask(id, at(50 * MIN), { ...approval, title }), at(50 * MIN));
    await store.apply(id, { type: 'plan' }, at(45 * MIN));
    await store.apply(id, { type: 'plan_ready' }, at(44 * MIN), { run: run(id, 1, at(44 * MIN), 10_000, 0.01, { kind: 'plan' }) });
    writeNote(vault, 'Pending_Approval', id, { title, type: 'payment' });
  }

  await store.create(newTask('queued-urgent', at(20 * MIN), { title: 'Urgent thing', urgency: 5 }), at(20 * MIN));
  await store.create(newTask('queued-later', at(40 * MIN), { title: 'Whenever thing', urgency: 1 }), at(40 * MIN));
  writeNote(vault, 'Needs_Action', 'queued-urgent', { title: 'Urgent thing', urgency: 5 });
  writeNote(vault, 'Needs_Action', 'queued-later', { title: 'Whenever thing', urgency: 1 });

  await store.heartbeat('web-test', new Date());
  const backend = createLocalBackend(service, { orchestratorPid: process.pid });
  const server = await startApiServer({ backend, stateDir: service.vault.stateDir, port: 0, advertise: false });
  return { service, server, vault };
}

beforeEach(async () => {
  fixture = await buildVault();
  page = await browser.newPage();
  pageErrors.length = 0;
  page.on('pageerror', (err) => pageErrors.push(err.message));
});

afterEach(async () => {
  await page?.close();
  await fixture.server.close();
  await fixture.service.close();
});

function link(token: string = fixture.server.token): string {
  return `${fixture.server.url}/#token=${token}&refresh=1`;
}

async function apiDashboard(): Promise<DashboardReport> {
  const response = await fetch(`${fixture.server.url}/dashboard?since=24h`, { headers: { authorization: `Bearer ${fixture.server.token}` } });
  return dashboardSchema.parse(await response.json());
}

async function openDashboard(): Promise<void> {
  await page.goto(link());
  await page.waitForSelector('body[data-loaded="true"]', { timeout: 10_000 });
}

async function texts(selector: string): Promise<string[]> {
  return page.locator(selector).allTextContents();
}

describe('the web dashboard (headless Chromium)', () => {
  it('is a page without data: served without the token, while every API route still requires it', async () => {
    const html = await fetch(`${fixture.server.url}/`);
    expect(html.status).toBe(200);
    expect(html.headers.get('content-type')).toMatch(/^text\/html/);
    const csp = html.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(html.headers.get('access-control-allow-origin')).toBeNull();
    const body = await html.text();
    expect(body).not.toContain('Research competitors');
    expect(body).not.toContain(fixture.server.token);
    expect((await fetch(`${fixture.server.url}/dashboard`)).status).toBe(401);
    expect((await fetch(`${fixture.server.url}/tasks/pay-acme/approve`, { method: 'POST' })).status).toBe(401);
  });

  it('shows status, health, running tasks, the queue, approvals, recent completions and metrics as the API reports them', async () => {
    const requests: Array<{ url: string; authorization: string | undefined }> = [];
    page.on('request', (r) => requests.push({ url: r.url(), authorization: r.headers()['authorization'] }));
    await openDashboard();
    const api = await apiDashboard();

    // The token left the address bar, and never travelled in a URL; API calls carried it as a bearer header.
    expect(page.url()).toBe(`${fixture.server.url}/`);
    expect(requests.some((r) => r.url.includes(fixture.server.token))).toBe(false);
    const apiCalls = requests.filter((r) => r.url.includes('/dashboard?'));
    expect(apiCalls.length).toBeGreaterThan(0);
    for (const call of apiCalls) expect(call.authorization).toBe(`Bearer ${fixture.server.token}`);

    await expect.poll(() => page.getAttribute('#orchestrator', 'data-state')).toBe('running');
    expect(await page.getAttribute('#health', 'data-status')).toBe(api.health.status);
    expect(await page.getAttribute('#health', 'class')).toContain({ healthy: 'good', degraded: 'warn', unhealthy: 'bad' }[api.health.status]);

    expect(await texts('#running tbody td.id')).toEqual(['running-r']);
    expect((await texts('#running tbody td.elapsed'))[0]).toMatch(/^\d+ m \d\d s$/);

    expect(api.queue.head.map((q) => q.id)).toEqual(['queued-urgent', 'queued-later']);
    expect(await texts('#queue tbody td.id')).toEqual(api.queue.head.map((q) => q.id));
    expect(await texts('#queue tbody td.score')).toEqual(api.queue.head.map((q) => q.score.toFixed(2)));
    expect(await texts('#queue tbody td.eta')).toHaveLength(2);

    expect(await texts('#approvals tbody td.id')).toEqual(api.status.pendingApproval.map((p) => p.id));
    expect(await page.locator('#approvals button.approve').count()).toBe(2);
    expect(await page.locator('#approvals button.reject').count()).toBe(2);

    expect(api.recent).toHaveLength(10);
    expect(await texts('#recent tbody td.id')).toEqual(api.recent.map((r) => r.id));
    expect(await texts('#recent tbody td.failed')).toEqual(api.recent.filter((r) => r.state === 'failed').map(() => 'failed'));

    const metric = async (name: string): Promise<string> => page.locator(`[data-metric="${name}"] .value`).innerText();
    expect(await metric('completed')).toBe(String(api.metrics.completed));
    expect(await metric('failed')).toBe(String(api.metrics.failed));
    expect(api.metrics.completed).toBe(10);
    expect(await metric('queued')).toBe('2');
    expect(await texts('#checks tbody tr td:first-child')).toEqual(api.health.checks.map((c) => c.name));
    expect(pageErrors).toEqual([]);
  });

  it('draws throughput and latency charts with one element per data point of the API’s series', async () => {
    await openDashboard();
    const { metrics } = await apiDashboard();
    const bars = page.locator('#chart-throughput rect.bar');
    const expectedBars = metrics.series.reduce((n, b) => n + (b.completed > 0 ? 1 : 0) + (b.failed > 0 ? 1 : 0), 0);
    expect(expectedBars).toBeGreaterThan(5);
    expect(await bars.count()).toBe(expectedBars);
    const completedValues = (await page.locator('#chart-throughput rect.bar.completed').evaluateAll((nodes) => nodes.map((n) => Number(n.getAttribute('data-value')))));
    expect(completedValues.reduce((a, b) => a + b, 0)).toBe(metrics.completed);
    const failedValues = await page.locator('#chart-throughput rect.bar.failed').evaluateAll((nodes) => nodes.map((n) => Number(n.getAttribute('data-value'))));
    expect(failedValues.reduce((a, b) => a + b, 0)).toBe(metrics.failed);

    const points = page.locator('#chart-latency circle.point');
    const withLatency = metrics.series.filter((b) => b.completed + b.failed > 0 && b.latencyMsAvg > 0);
    expect(await points.count()).toBe(withLatency.length);
    const plotted = await points.evaluateAll((nodes) => nodes.map((n) => Number(n.getAttribute('data-value'))));
    expect(plotted).toEqual(withLatency.map((b) => b.latencyMsAvg));
    expect(await page.locator('#chart-latency polyline.line').count()).toBe(1);
  });

  it('renders a hostile task title as text', async () => {
    await openDashboard();
    const cell = page.locator('#approvals tr[data-task="pay-acme"] td.title');
    expect(await cell.textContent()).toBe(XSS_TITLE);
    expect(await page.locator('#approvals img, #approvals b').count()).toBe(0);
    expect(await page.locator('img').count()).toBe(0);
    expect(await page.evaluate(() => (globalThis as { __fteXss?: number }).__fteXss)).toBeUndefined();
    expect(pageErrors).toEqual([]);
  });

  it('approves and rejects from the page (two clicks each), and the store moves the tasks on', async () => {
    await openDashboard();
    const approve = page.locator('#approvals tr[data-task="pay-acme"] button.approve');
    await approve.click();
    // One click only arms the button: nothing has changed yet.
    await expect.poll(() => approve.textContent()).toBe('Confirm approve');
    expect((await fixture.service.store.get('pay-acme'))?.state).toBe('pending_approval');
    await approve.click();
    await page.locator('#approvals tr[data-task="pay-acme"]').waitFor({ state: 'detached', timeout: 10_000 });
    expect(await page.locator('#notice').textContent()).toBe('pay-acme: approved');
    const approved = await fixture.service.store.get('pay-acme');
    expect(approved?.state).toBe('approved');
    expect(approved?.approval?.by).toBe('api');
    expect(existsSync(join(fixture.vault, 'Approved', 'pay-acme.md'))).toBe(true);
    // An approved task runs first: it now heads the queue.
    await expect.poll(() => texts('#queue tbody td.id')).toEqual(['pay-acme', 'queued-urgent', 'queued-later']);

    const reject = page.locator('#approvals tr[data-task="refund-bob"] button.reject');
    await reject.click();
    await reject.click();
    await page.locator('#approvals tr[data-task="refund-bob"]').waitFor({ state: 'detached', timeout: 10_000 });
    const rejected = await fixture.service.store.get('refund-bob');
    expect(rejected?.state).toBe('rejected');
    expect(rejected?.reason).toBe('rejected from the web dashboard');
    await expect.poll(() => texts('#recent tbody td.id').then((ids) => ids[0])).toBe('refund-bob');
    expect(pageErrors).toEqual([]);
  });

  it('asks for a token instead of showing anything when the link’s token is wrong', async () => {
    await page.goto(link('0'.repeat(64)));
    await page.locator('#signin').waitFor({ state: 'visible' });
    expect(await page.locator('#board').isHidden()).toBe(true);
    expect(await page.locator('#signin-error').textContent()).toMatch(/refused the token/);
    expect(await page.locator('#approvals tbody tr').count()).toBe(0);
    // The real token, pasted, opens the dashboard.
    await page.fill('#token-input', fixture.server.token);
    await page.click('#signin-form button');
    await page.waitForSelector('body[data-loaded="true"]');
    expect(await texts('#running tbody td.id')).toEqual(['running-r']);
  });

  it('cannot be driven from another origin: no CORS, and a form post carries no token', async () => {
    // An attacker's page on another origin of the same machine.
    const evil: Server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><title>evil</title><p>hello</p>');
    });
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', () => resolve()));
    try {
      const evilUrl = `http://127.0.0.1:${(evil.address() as AddressInfo).port}/`;
      // The victim has the dashboard open (its token in that origin's sessionStorage).
      await openDashboard();
      const attacker = await browser.newPage();
      try {
        await attacker.goto(evilUrl);
        const outcome = await attacker.evaluate(async (api) => {
          const results: string[] = [];
          // A CORS request with a (guessed) token: the preflight gets no Access-Control-Allow-* and fails.
          try {
            await fetch(`${api}/tasks/pay-acme/approve`, { method: 'POST', headers: { authorization: 'Bearer guess', 'content-type': 'application/json' }, body: '{}' });
            results.push('cors: sent');
          } catch {
            results.push('cors: blocked');
          }
          // A "simple" request the browser sends without asking: it reaches the API, which wants a token it lacks.
          await fetch(`${api}/tasks/pay-acme/approve`, { method: 'POST', mode: 'no-cors', body: '{}' });
          results.push('no-cors: sent');
          // Reading the victim's data cross-origin is refused too.
          try {
            await (await fetch(`${api}/dashboard`)).json();
            results.push('read: allowed');
          } catch {
            results.push('read: blocked');
          }
          return results;
        }, fixture.server.url);
        expect(outcome).toEqual(['cors: blocked', 'no-cors: sent', 'read: blocked']);
      } finally {
        await attacker.close();
      }
      expect((await fixture.service.store.get('pay-acme'))?.state).toBe('pending_approval');
    } finally {
      await new Promise<void>((resolve) => evil.close(() => resolve()));
    }
  });
});
