import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { createServer, connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { healthSchema, metricsSchema, queueSchema, statusSchema } from '../../lib/app/contracts.ts';
import { ApiClient, ApiRequestError, ApiUnavailableError } from '../../lib/api/client.ts';
import { createLocalBackend } from '../../lib/local/api-backend.ts';
import {
  API_DISCOVERY_FILE,
  API_TOKEN_FILE,
  ApiServerError,
  ensureApiToken,
  readApiDiscovery,
  startApiServer,
  type RunningApiServer,
} from '../../lib/local/http-server.ts';
import { SqliteTaskStore } from '../../lib/local/sqlite-store.ts';
import { MAX_BODY_BYTES } from '../../lib/api/app.ts';
import { tempDir, removeTempDirs } from './fixtures.ts';
import { NOW, buildScenario, type Scenario } from './scenario.ts';
import { parseExposition } from './prometheus-parse.ts';

/** The API over a real socket: the node server, the loopback binding, the token file and the discovery file. */

let scenario: Scenario;
let server: RunningApiServer;
let stateDir: string;

beforeEach(async () => {
  // The SQLite store the orchestrator really uses, in the scenario's vault.
  const dir = tempDir();
  scenario = await buildScenario({ store: SqliteTaskStore.open(join(dir, 'fte.db')) });
  stateDir = scenario.service.vault.stateDir;
  server = await startApiServer({ backend: scenario.backend, stateDir, port: 0 });
});

afterEach(async () => {
  await server.close();
  await scenario.service.close();
});

function rawRequest(options: { method: string; path: string; headers?: Record<string, string>; chunks?: string[] }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: server.port, method: options.method, path: options.path, headers: options.headers ?? {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    for (const chunk of options.chunks ?? []) req.write(chunk);
    req.end();
  });
}

describe('the local API server', () => {
  it('listens on 127.0.0.1 only', async () => {
    expect(server.host).toBe('127.0.0.1');
    expect(server.server.address()).toMatchObject({ address: '127.0.0.1', family: 'IPv4' });
    expect(server.url).toBe(`http://127.0.0.1:${server.port}`);
    // Where the machine has another interface, the port is closed there.
    const external = Object.values(networkInterfaces()).flat().find((i) => i !== undefined && i.family === 'IPv4' && !i.internal);
    if (external !== undefined) {
      const outcome = await new Promise<string>((resolve) => {
        const socket = connect({ host: external.address, port: server.port });
        socket.once('connect', () => {
          socket.destroy();
          resolve('connected');
        });
        socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
      });
      expect(outcome).toBe('ECONNREFUSED');
    }
  });

  it('requires the bearer token from .fte/api-token', async () => {
    const anonymous = await fetch(`${server.url}/status`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toBe('Bearer realm="fte"');
    expect(await anonymous.json()).toEqual({ error: { code: 'UNAUTHORIZED', message: expect.any(String) } });
    const token = readFileSync(join(stateDir, API_TOKEN_FILE), 'utf8').trim();
    expect(token).toBe(server.token);
    const authorised = await fetch(`${server.url}/status`, { headers: { authorization: `Bearer ${token}` } });
    expect(authorised.status).toBe(200);
    expect(statusSchema.parse(await authorised.json()).counts.done).toBe(3);
  });

  it('keeps the token in a 0600 file of 32 random bytes, made once and then reused', async () => {
    const path = join(stateDir, API_TOKEN_FILE);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(server.token).toMatch(/^[0-9a-f]{64}$/);
    expect(ensureApiToken(stateDir)).toBe(server.token);
    const other = tempDir();
    expect(ensureApiToken(other)).not.toBe(server.token);
  });

  it('narrows a token file readable by others to 0600, and refuses one that holds no token', () => {
    const path = join(stateDir, API_TOKEN_FILE);
    chmodSync(path, 0o644);
    expect(ensureApiToken(stateDir)).toBe(server.token);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    writeFileSync(path, 'not a token\n');
    expect(() => ensureApiToken(stateDir)).toThrow(ApiServerError);
  });

  it('advertises itself in .fte/api.json while serving, and removes it on close', async () => {
    const discovery = JSON.parse(readFileSync(join(stateDir, API_DISCOVERY_FILE), 'utf8')) as Record<string, unknown>;
    expect(discovery).toMatchObject({ url: server.url, pid: process.pid });
    expect(readApiDiscovery(stateDir)).toMatchObject({ url: server.url, pid: process.pid });
    expect(statSync(join(stateDir, API_DISCOVERY_FILE)).mode & 0o777).toBe(0o600);
    await server.close();
    expect(existsSync(join(stateDir, API_DISCOVERY_FILE))).toBe(false);
    await expect(fetch(`${server.url}/status`)).rejects.toThrow();
  });

  it('leaves another process’s discovery file alone, and ignores one whose process is gone', async () => {
    const path = join(stateDir, API_DISCOVERY_FILE);
    writeFileSync(path, JSON.stringify({ url: 'http://127.0.0.1:1', pid: 2 ** 22 + 12345 }));
    expect(readApiDiscovery(stateDir)).toBeNull();
    writeFileSync(path, JSON.stringify({ url: 'http://127.0.0.1:1', pid: process.ppid }));
    await server.close();
    expect(existsSync(path)).toBe(true);
  });

  it('reports a port in use as API_PORT_IN_USE', async () => {
    const error = await startApiServer({ backend: scenario.backend, stateDir: tempDir(), port: server.port, advertise: false }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ApiServerError);
    expect((error as ApiServerError).code).toBe('API_PORT_IN_USE');
  });

  it('refuses oversized bodies on the socket, declared or streamed in chunks', async () => {
    const auth = { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' };
    const big = JSON.stringify({ title: 'x', body: 'y'.repeat(MAX_BODY_BYTES) });
    const declared = await rawRequest({ method: 'POST', path: '/tasks', headers: { ...auth, 'content-length': String(Buffer.byteLength(big)) }, chunks: [big] });
    expect(declared.status).toBe(413);
    expect(JSON.parse(declared.body)).toMatchObject({ error: { code: 'PAYLOAD_TOO_LARGE' } });
    const chunks = Array.from({ length: 20 }, () => 'y'.repeat(8 * 1024));
    const streamed = await rawRequest({ method: 'POST', path: '/tasks', headers: { ...auth, 'transfer-encoding': 'chunked' }, chunks });
    expect(streamed.status).toBe(413);
    const malformed = await rawRequest({ method: 'POST', path: '/tasks', headers: auth, chunks: ['{"title":'] });
    expect(malformed.status).toBe(400);
    expect(JSON.parse(malformed.body)).toMatchObject({ error: { code: 'INVALID_JSON' } });
  });

  it('serves Prometheus text a scraper accepts', async () => {
    const response = await fetch(`${server.url}/metrics/prometheus`, { headers: { authorization: `Bearer ${server.token}` } });
    expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(parseExposition(await response.text()).value('fte_tasks_succeeded_total')).toBe(3);
  });

  it('can be started on a port chosen in advance', async () => {
    const free = await new Promise<number>((resolve) => {
      const probe = createServer();
      probe.listen(0, '127.0.0.1', () => {
        const port = (probe.address() as { port: number }).port;
        probe.close(() => resolve(port));
      });
    });
    const second = await startApiServer({ backend: scenario.backend, stateDir: tempDir(), port: free });
    try {
      expect(second.port).toBe(free);
    } finally {
      await second.close();
    }
  });
});

describe('ApiClient over the socket', () => {
  it('reads every report, validated by the same contracts', async () => {
    const client = new ApiClient({ baseUrl: `${server.url}/`, token: server.token });
    expect((await client.status()).counts.done).toBe(3);
    expect(queueSchema.parse(await client.queue()).tasks.map((t) => t.id)).toEqual(['approved-f', 'queued-g', 'note-i', 'queued-h']);
    const metrics = metricsSchema.parse(await client.metrics({ since: new Date(NOW.getTime() - 24 * 3_600_000), until: NOW }));
    expect(metrics.completed).toBe(2);
    expect(metrics.since).toBe(new Date(NOW.getTime() - 24 * 3_600_000).toISOString());
    expect(healthSchema.parse(await client.health()).status).toBe('healthy');
    expect((await client.dashboard({ since: new Date(NOW.getTime() - 3_600_000), until: NOW })).queue.total).toBe(4);
    expect((await client.task('done-a')).runs).toHaveLength(1);
    expect(await client.prometheus()).toMatch(/^# HELP fte_tasks /);
  });

  it('writes through the API: add, approve, reject, stop, resume', async () => {
    const client = new ApiClient({ baseUrl: server.url, token: server.token });
    const added = await client.addTask({ title: 'From the client' });
    expect(added.task.state).toBe('needs_action');
    expect((await client.approve('pending-e', { actor: 'ignored' })).state).toBe('approved');
    expect((await client.reject('queued-h', { actor: 'ignored' }, 'not now')).task.reason).toBe('not now');
    expect(await client.stop({ now: false, reason: 'lunch' })).toEqual({ stopped: true, now: false, reason: 'lunch' });
    expect((await client.status()).stop.stopped).toBe(true);
    expect(await client.resume()).toEqual({ stopped: false, removedStopFile: false });
  });

  it('passes the server’s error code on, and tells an unreachable API apart', async () => {
    const client = new ApiClient({ baseUrl: server.url, token: server.token });
    const notFound = await client.task('ghost').catch((err: unknown) => err);
    expect(notFound).toBeInstanceOf(ApiRequestError);
    expect(notFound).toMatchObject({ code: 'TASK_NOT_FOUND', status: 404 });
    expect(await client.approve('queued-g', { actor: 'x' }).catch((err: unknown) => err)).toMatchObject({ code: 'INVALID_TRANSITION', status: 409 });
    expect(await new ApiClient({ baseUrl: server.url, token: 'wrong' }).status().catch((err: unknown) => err)).toMatchObject({ code: 'UNAUTHORIZED', status: 401 });
    await server.close();
    const gone = await client.status().catch((err: unknown) => err);
    expect(gone).toBeInstanceOf(ApiUnavailableError);
  });
});

describe('the orchestrator’s own backend', () => {
  it('reports its own process as the running orchestrator, with its CPU and memory', async () => {
    const own = await startApiServer({
      backend: createLocalBackend(scenario.service, { orchestratorPid: process.pid, clock: () => NOW }),
      stateDir: tempDir(),
      port: 0,
    });
    try {
      const client = new ApiClient({ baseUrl: own.url, token: own.token });
      const status = await client.status();
      expect(status.orchestrator).toMatchObject({ running: true, pid: process.pid });
      const { resources } = await client.metrics({ since: new Date(NOW.getTime() - 3_600_000), until: NOW });
      expect(resources.available).toBe(true);
      expect(resources.orchestrator?.pid).toBe(process.pid);
      expect(resources.orchestrator?.rssBytes).toBeGreaterThan(10 * 1024 * 1024);
      expect(resources.orchestrator?.cpuSeconds).toBeGreaterThan(0);
      expect(resources.totalRssBytes).toBeGreaterThanOrEqual(resources.orchestrator?.rssBytes ?? 0);
    } finally {
      await own.close();
    }
  });
});

afterAll(removeTempDirs);
