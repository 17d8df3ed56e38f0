import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dashboardSchema, errorResponseSchema, healthSchema, metricsSchema, queueSchema } from '../../lib/app/contracts.ts';
import { defaultConfig } from '../../lib/core/config.ts';
import { createLocalBackend } from '../../lib/local/api-backend.ts';
import { API_DISCOVERY_FILE, API_TOKEN_FILE, startApiServer, type RunningApiServer } from '../../lib/local/http-server.ts';
import { MemoryTaskStore } from '../../lib/local/memory-store.ts';
import { TaskService } from '../../lib/local/task-service.ts';
import { naiveMetrics, newTask, seedHistory, tempDir, writeNote, type Seeded, removeTempDirs } from '../api/fixtures.ts';
import { PLAIN, runCli } from './run-cli.ts';

/**
 * `fte orchestrator metrics | health | queue | dashboard` against temp vaults populated through TaskService and
 * store.apply, checked number for number against the seeding's ledger.
 */

const HOUR = 3_600_000;
const config = defaultConfig();
const ANSI = /\u001b\[/;

let vault: string;
let seeded: Seeded;

/** A vault with a SQLite store, a seeded history, notes for the waiting tasks and one new and one malformed note. */
async function seededVault(tasks: number): Promise<{ vault: string; seeded: Seeded }> {
  const dir = tempDir('fte-cli-');
  const service = TaskService.open(dir, config);
  try {
    const result = await seedHistory(service.store, { now: new Date(), tasks, seed: 7, spanMs: 6 * HOUR });
    writeNote(dir, 'Needs_Action', 'fresh-note', { title: 'A note nobody admitted', urgency: 'critical' });
    writeFileSync(join(dir, 'Needs_Action', 'broken.md'), '---\nurgency: hgih\n---\nbody\n');
    // Admitted through the service, as the engine or `fte task add` would.
    writeNote(dir, 'Needs_Action', 'admitted-note', { title: 'Admitted by the service', type: 'research' });
    const admitted = await service.admit('admitted-note');
    if (admitted.kind !== 'admitted') throw new Error(`admission failed: ${admitted.kind}`);
    return { vault: dir, seeded: result };
  } finally {
    await service.close();
  }
}

beforeAll(async () => {
  ({ vault, seeded } = await seededVault(400));
});

function parseError(stderr: string): { code: string; message: string } {
  return errorResponseSchema.parse(JSON.parse(stderr.trim().split('\n').pop() as string)).error;
}

describe('fte orchestrator metrics', () => {
  it('--json prints the metrics contract with every figure of the window', async () => {
    const { code, stdout, stderr } = await runCli(['orchestrator', 'metrics', '--vault', vault, '--since', '3h', '--json']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const m = metricsSchema.parse(JSON.parse(stdout));
    expect(Date.parse(m.until) - Date.parse(m.since)).toBe(3 * HOUR);
    const naive = naiveMetrics(seeded.ledger, Date.parse(m.since), Date.parse(m.until));
    expect(naive.completed).toBeGreaterThan(20);
    expect([m.completed, m.failed, m.retried]).toEqual([naive.completed, naive.failed, naive.retried]);
    expect(m.errorRate).toBe(Math.round(naive.errorRate * 1e6) / 1e6);
    expect(m.throughputPerHour).toBe(Math.round((naive.completed / 3) * 1e6) / 1e6);
    expect(m.latencyMs).toEqual(naive.latency);
    expect(m.costUsd).toBeCloseTo(naive.costUsd, 6);
    for (const [type, t] of Object.entries(naive.byType)) {
      expect(m.byType[type]).toMatchObject({ completed: t.completed, failed: t.failed, latencyMs: { p50: t.p50, p95: t.p95 } });
    }
    expect(m.series.reduce((s, b) => s + b.completed, 0)).toBe(naive.completed);
    // The contract's keys, exactly as issue 4 promises them.
    for (const key of ['since', 'until', 'completed', 'failed', 'throughputPerHour', 'errorRate', 'latencyMs', 'costUsd', 'byType', 'series', 'resources']) {
      expect(JSON.parse(stdout)).toHaveProperty(key);
    }
  });

  it('takes an ISO start', async () => {
    const since = new Date(Date.now() - 2 * HOUR).toISOString();
    const m = metricsSchema.parse(JSON.parse((await runCli(['orchestrator', 'metrics', '--vault', vault, '--since', since, '--json'])).stdout));
    expect(m.since).toBe(since);
    expect(m.completed).toBe(naiveMetrics(seeded.ledger, Date.parse(m.since), Date.parse(m.until)).completed);
  });

  it('refuses a bad --since with exit 2 and a JSON error', async () => {
    for (const since of ['yesterday', '2999-01-01', '-3h']) {
      const { code, stderr } = await runCli(['orchestrator', 'metrics', '--vault', vault, '--since', since, '--json']);
      expect(code).toBe(2);
      expect(parseError(stderr).code).toBe('SINCE_INVALID');
    }
  });

  it('prints a readable report, coloured only when colour is wanted', async () => {
    const plain = await runCli(['orchestrator', 'metrics', '--vault', vault, '--since', '3h'], PLAIN);
    expect(plain.code).toBe(0);
    expect(plain.stdout).not.toMatch(ANSI);
    expect(plain.stdout).toMatch(/^metrics .* \(3h\)$/m);
    expect(plain.stdout).toMatch(/^completed \d+ {2}failed \d+/m);
    expect(plain.stdout).toMatch(/^latency avg /m);
    expect(plain.stdout).toMatch(/^by type:$/m);
    expect(plain.stdout).toMatch(/^trend \(/m);
    const coloured = await runCli(['orchestrator', 'metrics', '--vault', vault], { NO_COLOR: undefined, FORCE_COLOR: '1' });
    expect(coloured.stdout).toMatch(/\u001b\[32m/);
    const noColorWins = await runCli(['orchestrator', 'metrics', '--vault', vault], { NO_COLOR: '1', FORCE_COLOR: '1' });
    expect(noColorWins.stdout).not.toMatch(ANSI);
  });
});

describe('fte orchestrator health', () => {
  async function vaultWith(setup: (service: TaskService) => Promise<void>): Promise<string> {
    const dir = tempDir('fte-health-');
    const service = TaskService.open(dir, config);
    try {
      await setup(service);
    } finally {
      await service.close();
    }
    return dir;
  }

  it('exits 0 when healthy, 1 when degraded, 2 when unhealthy — JSON or not', async () => {
    const healthy = await vaultWith((s) => s.store.heartbeat('test', new Date()));
    const degraded = await vaultWith(async (s) => {
      await s.store.heartbeat('test', new Date());
      await s.store.setStop(true, 'maintenance', new Date());
    });
    const unhealthy = await vaultWith(async (s) => {
      await s.store.heartbeat('test', new Date(Date.now() - 10 * 60_000));
    });
    for (const [dir, status, exit] of [[healthy, 'healthy', 0], [degraded, 'degraded', 1], [unhealthy, 'unhealthy', 2]] as const) {
      const json = await runCli(['orchestrator', 'health', '--vault', dir, '--json']);
      expect(json.code).toBe(exit);
      const report = healthSchema.parse(JSON.parse(json.stdout));
      expect(report.status).toBe(status);
      expect(report.checks.map((c) => c.name)).toContain('backlog');
      const human = await runCli(['orchestrator', 'health', '--vault', dir], PLAIN);
      expect(human.code).toBe(exit);
      expect(human.stdout).toMatch(new RegExp(`^health: ${status.toUpperCase()}$`, 'm'));
    }
  });

  it('counts the backlog from the store and the new notes', async () => {
    const dir = await vaultWith(async (s) => {
      await s.store.heartbeat('test', new Date());
      for (let i = 0; i < 25; i++) await s.store.create(newTask(`t${i}`, new Date()), new Date());
    });
    writeNote(dir, 'Needs_Action', 'extra', { title: 'one more' });
    const { code, stdout } = await runCli(['orchestrator', 'health', '--vault', dir, '--json']);
    const backlog = healthSchema.parse(JSON.parse(stdout)).checks.find((c) => c.name === 'backlog');
    expect(backlog).toMatchObject({ status: 'degraded', value: 26, threshold: 20 });
    expect(code).toBe(1);
  });

  it('exits 2 when health cannot be read at all', async () => {
    const missing = await runCli(['orchestrator', 'health', '--vault', join(tempDir(), 'nope'), '--json']);
    expect(missing.code).toBe(2);
    expect(parseError(missing.stderr).code).toBe('USAGE');
    const unreachable = await runCli(['orchestrator', 'health', '--endpoint', 'http://127.0.0.1:9', '--token', 'x', '--json']);
    expect(unreachable.code).toBe(2);
    expect(parseError(unreachable.stderr).code).toBe('API_UNAVAILABLE');
  });

  it('colours the verdict: green healthy, red unhealthy', async () => {
    const dir = await vaultWith((s) => s.store.heartbeat('test', new Date()));
    const green = await runCli(['orchestrator', 'health', '--vault', dir], { NO_COLOR: undefined, FORCE_COLOR: '1' });
    expect(green.stdout).toContain('\u001b[32mHEALTHY\u001b[39m');
    const red = await runCli(['orchestrator', 'health', '--vault', tempDir()], { NO_COLOR: undefined, FORCE_COLOR: '1' });
    expect(red.stdout).toContain('\u001b[31mUNHEALTHY\u001b[39m');
  });
});

describe('fte orchestrator queue', () => {
  it('reads the store’s queue, with the new and the malformed notes, wait and ETA on every row', async () => {
    const { code, stdout } = await runCli(['orchestrator', 'queue', '--vault', vault, '--json']);
    expect(code).toBe(0);
    const raw = JSON.parse(stdout) as { tasks: Array<Record<string, unknown>> };
    const queue = queueSchema.parse(raw);
    const waiting = [...seeded.states.values()].filter((s) => s === 'needs_action').length + 1; // + admitted-note
    expect(queue.tasks.length).toBe(waiting + 1); // + fresh-note
    for (const row of raw.tasks) {
      for (const key of ['position', 'id', 'title', 'score', 'breakdown', 'waitSeconds', 'etaSeconds']) expect(row).toHaveProperty(key);
      expect(Object.keys(row['breakdown'] as object).sort()).toEqual(['ageBoost', 'deadline', 'sender', 'urgency']);
    }
    expect(queue.tasks.find((t) => t.id === 'fresh-note')).toMatchObject({ state: null, breakdown: { urgency: 5 } });
    expect(queue.tasks.find((t) => t.id === 'admitted-note')).toMatchObject({ state: 'needs_action', type: 'research' });
    expect(queue.invalid).toEqual([expect.objectContaining({ id: 'broken', reason: 'invalid_field' })]);
    // Recent completions exist, so every row has an ETA, and they never decrease down the queue.
    const etas = queue.tasks.map((t) => t.etaSeconds as number);
    expect(etas.every((e) => Number.isInteger(e) && e > 0)).toBe(true);
    expect(etas).toEqual([...etas].sort((a, b) => a - b));
  });

  it('parses Needs_Action/ read-only when the vault has no store', async () => {
    const dir = tempDir('fte-notes-');
    mkdirSync(join(dir, 'Needs_Action'));
    writeNote(dir, 'Needs_Action', 'low', { title: 'Low', urgency: 'low' });
    writeNote(dir, 'Needs_Action', 'high', { title: 'High', urgency: 'high' });
    const { code, stdout } = await runCli(['orchestrator', 'queue', '--vault', dir, '--json']);
    expect(code).toBe(0);
    const queue = queueSchema.parse(JSON.parse(stdout));
    expect(queue.tasks.map((t) => [t.id, t.state, t.etaSeconds])).toEqual([['high', null, null], ['low', null, null]]);
    expect(existsSync(join(dir, '.fte'))).toBe(false);
    const table = await runCli(['orchestrator', 'queue', '--vault', dir, '--verbose'], PLAIN);
    expect(table.stdout.split('\n')[0]).toMatch(/^#\s+ID\s+TITLE\s+SCORE\s+WAIT\s+ETA\s+U\s+D\s+S\s+AGE\s+APPROVAL$/);
  });

  it('--watch --count refreshes: one JSON document per line, or one table per frame', async () => {
    const json = await runCli(['orchestrator', 'queue', '--vault', vault, '--watch', '--interval', '0.2', '--count', '2', '--json']);
    expect(json.code).toBe(0);
    const lines = json.stdout.trim().split('\n');
    expect(lines).toHaveLength(2);
    for (const line of lines) queueSchema.parse(JSON.parse(line));
    const human = await runCli(['orchestrator', 'queue', '--vault', vault, '--watch', '--interval', '0.2', '--count', '2'], PLAIN);
    expect(human.stdout.match(/^queue · /gm)).toHaveLength(2);
    expect(human.stdout).not.toMatch(ANSI); // not a terminal: frames follow each other, no cursor movement
  });

  it('refuses a bad --interval or --count with exit 2', async () => {
    expect((await runCli(['orchestrator', 'queue', '--vault', vault, '--watch', '--interval', '0'])).code).toBe(2);
    expect((await runCli(['orchestrator', 'queue', '--vault', vault, '--watch', '--count', 'many'])).code).toBe(2);
  });
});

describe('fte orchestrator dashboard', () => {
  it('--json prints the dashboard bundle', async () => {
    const { code, stdout } = await runCli(['orchestrator', 'dashboard', '--vault', vault, '--json']);
    expect(code).toBe(0);
    const d = dashboardSchema.parse(JSON.parse(stdout));
    expect(d.queue.head.length).toBe(10);
    expect(d.recent.length).toBe(10);
    expect(d.status.running.length).toBe([...seeded.states.values()].filter((s) => s === 'executing').length);
  });

  it('shows status, running tasks, the queue head, recent completions and key metrics', async () => {
    const { code, stdout } = await runCli(['orchestrator', 'dashboard', '--vault', vault], PLAIN);
    expect(code).toBe(0);
    for (const heading of [/^orchestrator /m, /^RUNNING \(\d+\)$/m, /^QUEUE \(\d+ waiting/m, /^RECENT \(10\)$/m, /^METRICS /m]) expect(stdout).toMatch(heading);
    expect(stdout).toMatch(/awaiting approval task-\d+/);
  });

  it('--watch --count 2 draws two frames', async () => {
    const { code, stdout } = await runCli(['orchestrator', 'dashboard', '--vault', vault, '--watch', '--interval', '0.2', '--count', '2', '--json']);
    expect(code).toBe(0);
    expect(stdout.trim().split('\n').map((l) => dashboardSchema.parse(JSON.parse(l)).queue.total)).toHaveLength(2);
  });
});

describe('reading through an API', () => {
  let server: RunningApiServer;
  let apiVault: string;

  beforeAll(async () => {
    // The vault's store says one thing; the API advertised in its .fte/api.json says another. The CLI must ask the API.
    ({ vault: apiVault } = await seededVault(20));
    const store = new MemoryTaskStore();
    await store.create(newTask('only-in-the-api', new Date()), new Date());
    await store.heartbeat('api', new Date());
    const service = new TaskService(tempDir(), store, config);
    server = await startApiServer({ backend: createLocalBackend(service, { orchestratorPid: process.pid }), stateDir: join(apiVault, '.fte'), port: 0 });
  });

  afterAll(async () => {
    await server.close();
  });

  it('uses the running orchestrator’s API that .fte/api.json names', async () => {
    const queue = queueSchema.parse(JSON.parse((await runCli(['orchestrator', 'queue', '--vault', apiVault, '--json'])).stdout));
    expect(queue.tasks.map((t) => t.id)).toContain('only-in-the-api');
    const dashboard = await runCli(['orchestrator', 'dashboard', '--vault', apiVault], PLAIN);
    expect(dashboard.stdout).toContain(`${server.url} (orchestrator pid ${process.pid})`);
    const metrics = metricsSchema.parse(JSON.parse((await runCli(['orchestrator', 'metrics', '--vault', apiVault, '--json'])).stdout));
    expect(metrics.resources.orchestrator?.pid).toBe(process.pid);
    const health = await runCli(['orchestrator', 'health', '--vault', apiVault, '--json']);
    expect(health.code).toBe(0);
  });

  it('--endpoint reads any fte API, with --token or $FTE_API_TOKEN', async () => {
    const other = tempDir();
    const withFlag = await runCli(['orchestrator', 'queue', '--endpoint', server.url, '--token', server.token, '--json'], { FTE_VAULT: other });
    expect(queueSchema.parse(JSON.parse(withFlag.stdout)).tasks.map((t) => t.id)).toEqual(['only-in-the-api']);
    const withEnv = await runCli(['orchestrator', 'health', '--endpoint', server.url, '--json'], { FTE_API_TOKEN: server.token });
    expect(withEnv.code).toBe(0);
    const denied = await runCli(['orchestrator', 'metrics', '--endpoint', server.url, '--token', 'wrong', '--json'], { FTE_API_TOKEN: undefined });
    expect(denied.code).toBe(1);
    expect(parseError(denied.stderr).code).toBe('UNAUTHORIZED');
    const badUrl = await runCli(['orchestrator', 'queue', '--endpoint', 'not a url', '--json']);
    expect(badUrl.code).toBe(2);
  });

  it('falls back to the store when the advertised API does not answer', async () => {
    const { vault: stale } = await seededVault(5);
    // A live pid (this process) but a port nobody listens on: the orchestrator just exited, say.
    writeFileSync(join(stale, '.fte', API_DISCOVERY_FILE), JSON.stringify({ url: 'http://127.0.0.1:9', pid: process.pid }));
    writeFileSync(join(stale, '.fte', API_TOKEN_FILE), `${'c'.repeat(64)}\n`);
    const { code, stdout } = await runCli(['orchestrator', 'queue', '--vault', stale, '--json']);
    expect(code).toBe(0);
    expect(queueSchema.parse(JSON.parse(stdout)).tasks.map((t) => t.id)).toContain('fresh-note');
  });
});

afterAll(removeTempDirs);
