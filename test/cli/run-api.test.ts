import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { healthSchema, queueSchema, statusSchema, taskActionResponseSchema } from '../../lib/app/contracts.ts';
import { ApiClient } from '../../lib/api/client.ts';
import { API_DISCOVERY_FILE, API_TOKEN_FILE, readApiDiscovery } from '../../lib/local/http-server.ts';
import { tempDir, writeNote, removeTempDirs } from '../api/fixtures.ts';

/**
 * `fte orchestrator run` serves the API for as long as it runs: the real CLI in a child process, the stand-in agent,
 * a real socket.
 */

const ROOT = resolve(import.meta.dirname, '..', '..');
const FTE = join(ROOT, 'bin', 'fte.js');
const STAND_IN = join(ROOT, 'examples', 'stand-in-claude.mjs');

interface Running {
  child: ChildProcess;
  events: Array<Record<string, unknown>>;
  waitFor(event: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
}

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.pid !== undefined) child.kill('SIGKILL');
});

function vault(): string {
  const dir = tempDir('fte-run-');
  mkdirSync(join(dir, '.fte'), { recursive: true });
  mkdirSync(join(dir, 'Needs_Action'), { recursive: true });
  // Quick turns, so the test does not wait on the default poll interval.
  writeFileSync(join(dir, '.fte', 'orchestrator.yaml'), 'orchestrator:\n  poll_interval: 1\n  heartbeat_interval: 1\n');
  return dir;
}

function start(dir: string, args: readonly string[]): Running {
  const scratch = tempDir('fte-run-scratch-');
  const child = spawn(process.execPath, [FTE, 'orchestrator', 'run', '--vault', dir, '--json', ...args], {
    env: { ...process.env, FTE_CLAUDE_COMMAND: STAND_IN, FTE_STAND_IN_STATE: join(scratch, 'state'), NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const events: Array<Record<string, unknown>> = [];
  const waiters: Array<{ event: string; resolve: (e: Record<string, unknown>) => void }> = [];
  let buffer = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    buffer += chunk;
    let newline: number;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      if (line.trim() === '') continue;
      const event = JSON.parse(line) as Record<string, unknown>;
      events.push(event);
      for (const w of waiters.filter((w) => w.event === event['event'])) w.resolve(event);
    }
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolveExit) => child.on('exit', (code) => resolveExit(code)));
  return {
    child,
    events,
    exited,
    waitFor(event, timeoutMs = 15_000) {
      const seen = events.find((e) => e['event'] === event);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolveEvent, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${event} event within ${timeoutMs} ms; events: ${JSON.stringify(events)}; stderr: ${stderr}`)), timeoutMs);
        waiters.push({ event, resolve: (e) => { clearTimeout(timer); resolveEvent(e); } });
      });
    },
  };
}

describe('fte orchestrator run serves the API', () => {
  it('on 127.0.0.1 with the vault’s token while it runs, and takes it down on exit', async () => {
    const dir = vault();
    writeNote(dir, 'Needs_Action', 'pay-invoice', { title: 'Pay the invoice', type: 'payment' }, 'stand-in: succeed');
    const run = start(dir, ['--api-port', '0']);
    const api = await run.waitFor('api');
    const url = /API on (http:\/\/127\.0\.0\.1:\d+)/.exec(String(api['message']))?.[1];
    expect(url).toBeDefined();
    const discovery = readApiDiscovery(join(dir, '.fte'));
    expect(discovery).toMatchObject({ url, pid: run.child.pid });
    const token = readFileSync(join(dir, '.fte', API_TOKEN_FILE), 'utf8').trim();
    expect((await fetch(`${url}/status`)).status).toBe(401);

    const client = new ApiClient({ baseUrl: url as string, token });
    const status = statusSchema.parse(await client.status());
    expect(status.orchestrator).toMatchObject({ running: true, pid: run.child.pid });
    // The payment plans first and then waits for a human; approving over the API wakes the loop, which executes it.
    await run.waitFor('awaiting_approval');
    const approved = taskActionResponseSchema.parse(await client.approve('pay-invoice'));
    expect(approved.state).toBe('approved');
    await run.waitFor('done');
    expect(healthSchema.parse(await client.health()).checks.find((c) => c.name === 'scheduler')?.status).toBe('healthy');
    expect(queueSchema.parse(await client.queue()).tasks).toEqual([]);
    const metrics = await client.metrics({ since: new Date(Date.now() - 3_600_000), until: new Date() });
    expect(metrics.completed).toBe(1);
    expect(metrics.resources.orchestrator?.pid).toBe(run.child.pid);

    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    expect(existsSync(join(dir, '.fte', API_DISCOVERY_FILE))).toBe(false);
    await expect(fetch(`${url}/status`)).rejects.toThrow();
  });

  it('still serves during --once, and runs on without an API when the port is taken', async () => {
    const taken: Server = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
    try {
      const port = (taken.address() as { port: number }).port;
      const dir = vault();
      writeNote(dir, 'Needs_Action', 'write-notes', { title: 'Write the notes' }, 'stand-in: succeed');
      const run = start(dir, ['--once', '--api-port', String(port)]);
      expect(await run.exited).toBe(0);
      expect(run.events.map((e) => e['event'])).toEqual(expect.arrayContaining(['api_unavailable', 'done', 'exit']));
      expect(String(run.events.find((e) => e['event'] === 'api_unavailable')?.['message'])).toMatch(/in use/);

      const once = vault();
      writeNote(once, 'Needs_Action', 'one', { title: 'One' }, 'stand-in: slow 1500');
      const served = start(once, ['--once', '--api-port', '0']);
      const api = await served.waitFor('api');
      const url = /API on (\S+)/.exec(String(api['message']))?.[1] as string;
      await served.waitFor('dispatch');
      const token = readFileSync(join(once, '.fte', API_TOKEN_FILE), 'utf8').trim();
      const status = await new ApiClient({ baseUrl: url, token }).status();
      expect(status.running.map((r) => r.id)).toEqual(['one']);
      expect(await served.exited).toBe(0);
      expect(existsSync(join(once, '.fte', API_DISCOVERY_FILE))).toBe(false);
    } finally {
      taken.close();
    }
  });

  it('does not serve with --no-api', async () => {
    const dir = vault();
    const run = start(dir, ['--once', '--no-api']);
    expect(await run.exited).toBe(0);
    expect(run.events.some((e) => String(e['event']).startsWith('api'))).toBe(false);
    expect(existsSync(join(dir, '.fte', API_TOKEN_FILE))).toBe(false);
  });
});

afterAll(removeTempDirs);
