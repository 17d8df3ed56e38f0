import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isTerminal } from '../../lib/core/state-machine.ts';
import { folderOf, VAULT_FOLDERS } from '../../lib/core/vault-layout.ts';
import {
  fte,
  fteEnv,
  OrchestratorProcess,
  processesMentioning,
  readStore,
  treeDiff,
  treeSnapshot,
  waitUntil,
} from './support.ts';

/**
 * Store faults (issue 7): a corrupted database, a read-only `.fte/`, a full disk. `fte orchestrator run` must stop
 * with a clear error (STORE_UNAVAILABLE, or the file system's own code for a full disk) and change nothing it cannot
 * finish: no folders made, no note moved, no agent left running; and after the fault is gone the vault is whole.
 */

const SETTINGS = `
orchestrator:
  max_concurrent_tasks: 3
  poll_interval: 1
  heartbeat_interval: 1
  claude_timeout: 30
  kill_grace_period: 1
retry:
  max_attempts: 3
  initial_backoff: 0.2
  max_backoff: 0.5
`;

interface Scenario {
  scratch: string;
  vault: string;
  env: NodeJS.ProcessEnv;
}

const undo: Array<() => void> = [];
const scratches: string[] = [];
afterEach(() => {
  for (const u of undo.splice(0).reverse()) {
    try {
      u();
    } catch {
      // best effort
    }
  }
  for (const s of scratches.splice(0)) rmSync(s, { recursive: true, force: true });
});

function scenario(prepare?: (vault: string) => void): Scenario {
  const scratch = mkdtempSync(join(tmpdir(), 'fte-store-'));
  scratches.push(scratch);
  const vault = join(scratch, 'vault');
  mkdirSync(vault);
  prepare?.(vault);
  mkdirSync(join(vault, '.fte'), { recursive: true });
  mkdirSync(join(vault, 'Needs_Action'), { recursive: true });
  writeFileSync(join(vault, '.fte', 'orchestrator.yaml'), SETTINGS);
  mkdirSync(join(scratch, 'stand-in'));
  return { scratch, vault, env: fteEnv(join(scratch, 'stand-in')) };
}

function note(vault: string, id: string, body: string): void {
  writeFileSync(join(vault, 'Needs_Action', `${id}.md`), `---\ntitle: "Job ${id}"\n---\n${body}\n`);
}

function errorOf(stderr: string): { code: string; message: string } {
  const line = stderr.trim().split('\n').filter((l) => l.startsWith('{')).at(-1);
  expect(line, `a JSON error on stderr, got: ${stderr}`).toBeDefined();
  return (JSON.parse(line as string) as { error: { code: string; message: string } }).error;
}

const runOnce = (s: Scenario) => fte(s.vault, s.env, ['orchestrator', 'run', '--once', '--no-api', '--json'], { timeoutMs: 60_000 });

/** Every note is in exactly one folder, the folder of its task's state, and every task is terminal. */
async function expectWholeVault(vault: string, ids: string[]): Promise<void> {
  const dump = await readStore(vault);
  const where = new Map<string, string[]>();
  for (const folder of VAULT_FOLDERS) {
    const dir = join(vault, folder);
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir)) {
      // Nothing half-written left behind (fte writes notes through a dot-temp file and a rename).
      expect(name.startsWith('.'), `stray file ${folder}/${name}`).toBe(false);
      if (name.endsWith('.md') && !name.endsWith('.error.md')) where.set(name.slice(0, -3), [...(where.get(name.slice(0, -3)) ?? []), folder]);
    }
  }
  expect(dump.tasks.map((t) => t.id).sort()).toEqual([...ids].sort());
  for (const t of dump.tasks) {
    expect({ id: t.id, terminal: isTerminal(t.state) }).toEqual({ id: t.id, terminal: true });
    expect({ id: t.id, folders: where.get(t.id) }).toEqual({ id: t.id, folders: [folderOf(t.state)] });
  }
}

/**
 * Make `dir` read-only for the fte processes: chmod when not root; when root (who ignores modes), a read-only bind
 * mount, or else the immutable attribute. FTE_HARDENING_NO_MOUNT=1 takes the unprivileged paths (chmod, prlimit) even
 * as root — chmod then does not bind root, so the read-only test needs a non-root user.
 */
function makeReadOnly(dir: string): string {
  if (process.getuid?.() !== 0 || process.env['FTE_HARDENING_NO_MOUNT'] === '1') {
    for (const name of readdirSync(dir)) chmodSync(join(dir, name), statSync(join(dir, name)).isDirectory() ? 0o555 : 0o444);
    chmodSync(dir, 0o555);
    undo.push(() => {
      chmodSync(dir, 0o755);
      for (const name of readdirSync(dir)) chmodSync(join(dir, name), 0o755);
    });
    return 'chmod';
  }
  try {
    execFileSync('mount', ['--bind', dir, dir], { stdio: 'ignore' });
    undo.push(() => execFileSync('umount', [dir], { stdio: 'ignore' }));
    execFileSync('mount', ['-o', 'remount,bind,ro', dir], { stdio: 'ignore' });
    return 'read-only bind mount';
  } catch {
    execFileSync('chattr', ['+i', dir], { stdio: 'ignore' });
    undo.push(() => execFileSync('chattr', ['-i', dir], { stdio: 'ignore' }));
    return 'chattr +i';
  }
}

/** Mount a small tmpfs at `dir` (root only); null when this machine does not allow it. */
function tryTmpfs(dir: string, size: string): boolean {
  if (process.getuid?.() !== 0 || process.env['FTE_HARDENING_NO_MOUNT'] === '1') return false;
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'ignore' });
    undo.push(() => execFileSync('umount', ['-l', dir], { stdio: 'ignore' }));
    return true;
  } catch {
    return false;
  }
}

/** Fill the file system holding `dir` until a write fails with ENOSPC. */
function fillDisk(dir: string): string {
  const path = join(dir, 'filler.bin');
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(64 * 1024, 7);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (err) {
    expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
  } finally {
    closeSync(fd);
  }
  return path;
}

describe('store faults: a clear error, a safe stop, nothing lost', () => {
  it('a database file of garbage bytes: STORE_UNAVAILABLE, and the vault exactly as it was', async () => {
    const s = scenario();
    for (let i = 0; i < 5; i++) note(s.vault, `job-${i}`, 'stand-in: succeed');
    writeFileSync(join(s.vault, '.fte', 'fte.db'), randomBytes(64 * 1024));
    const before = treeSnapshot(s.vault);
    const r = await runOnce(s);
    expect(r.code).toBe(1);
    const error = errorOf(r.stderr);
    expect(error.code).toBe('STORE_UNAVAILABLE');
    expect(error.message).toMatch(/fte\.db.*not a database/);
    expect(treeDiff(before, treeSnapshot(s.vault))).toEqual([]);
    // The CLI says the same, and changes nothing either.
    const list = await fte(s.vault, s.env, ['task', 'list', '--json']);
    expect(list.code).toBe(1);
    expect(errorOf(list.stderr).code).toBe('STORE_UNAVAILABLE');
    expect(treeDiff(before, treeSnapshot(s.vault))).toEqual([]);
  }, 60_000);

  it('a database whose pages were overwritten, or which was cut short: STORE_UNAVAILABLE, notes untouched', async () => {
    for (const damage of ['overwrite', 'truncate'] as const) {
      const s = scenario();
      for (let i = 0; i < 30; i++) note(s.vault, `old-${i}`, `stand-in: succeed\n${'padding '.repeat(200)}`);
      expect((await runOnce(s)).code).toBe(0);
      const db = join(s.vault, '.fte', 'fte.db');
      const size = statSync(db).size;
      expect(size).toBeGreaterThan(4 * 4096);
      if (damage === 'overwrite') {
        // Keep the header page (so it still opens as a database) and overwrite every other page with garbage.
        const fd = openSync(db, 'r+');
        writeSync(fd, randomBytes(size - 4096), 0, size - 4096, 4096);
        closeSync(fd);
      } else {
        truncateSync(db, Math.floor(size / 2));
      }
      for (let i = 0; i < 3; i++) note(s.vault, `new-${i}`, 'stand-in: succeed');
      const before = treeSnapshot(s.vault, { skip: (rel) => rel.startsWith('.fte') });
      const r = await runOnce(s);
      expect({ damage, code: r.code }).toEqual({ damage, code: 1 });
      expect(errorOf(r.stderr).code).toBe('STORE_UNAVAILABLE');
      expect(treeDiff(before, treeSnapshot(s.vault, { skip: (rel) => rel.startsWith('.fte') }))).toEqual([]);
      expect(existsSync(join(s.vault, '.fte', 'orchestrator.pid'))).toBe(false);
    }
  }, 90_000);

  it('a read-only .fte/ directory, fresh or with a database: STORE_UNAVAILABLE, the vault exactly as it was', async () => {
    // Fresh: no database yet.
    const fresh = scenario();
    note(fresh.vault, 'job-1', 'stand-in: succeed');
    const method = makeReadOnly(join(fresh.vault, '.fte'));
    const before = treeSnapshot(fresh.vault);
    const r1 = await runOnce(fresh);
    expect(r1.code, r1.stderr).toBe(1);
    expect(errorOf(r1.stderr).code).toBe('STORE_UNAVAILABLE');
    expect(treeDiff(before, treeSnapshot(fresh.vault))).toEqual([]);

    // With a database that a first run made.
    const used = scenario();
    note(used.vault, 'job-1', 'stand-in: succeed');
    expect((await runOnce(used)).code).toBe(0);
    note(used.vault, 'job-2', 'stand-in: succeed');
    makeReadOnly(join(used.vault, '.fte'));
    const before2 = treeSnapshot(used.vault);
    const r2 = await runOnce(used);
    expect(r2.code, r2.stderr).toBe(1);
    expect(errorOf(r2.stderr).code).toBe('STORE_UNAVAILABLE');
    expect(treeDiff(before2, treeSnapshot(used.vault))).toEqual([]);
    console.log(`read-only .fte/ made by: ${method}`);
  }, 60_000);

  it('a disk that fills up mid-run: stops its agents, exits with a clear error; once space is freed nothing is lost', async () => {
    // Root with mount rights: the whole vault on a small tmpfs, filled mid-run (a real ENOSPC for every file fte
    // writes). Otherwise: the orchestrator's file-size limit is dropped mid-run with prlimit (EFBIG on the database).
    let filler: string | null = null;
    const s = scenario((vault) => {
      filler = tryTmpfs(vault, '16m') ? '' : null;
    });
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) {
      ids.push(`job-${String(i).padStart(2, '0')}`);
      note(s.vault, ids[i] as string, `stand-in: slow ${400 + 150 * i}\n${'padding '.repeat(100)}`);
    }
    const o = new OrchestratorProcess(s.vault, s.env);
    await waitUntil(() => o.lines.filter((l) => l.event === 'done').length >= 2, 30_000, 'two tasks done');
    await waitUntil(() => existsSync(join(s.vault, '.fte', 'run')) && readdirSync(join(s.vault, '.fte', 'run')).length > 0, 10_000, 'agents running');
    let method: string;
    if (filler !== null) {
      filler = fillDisk(s.vault);
      method = 'tmpfs filled to ENOSPC';
    } else {
      const wal = join(s.vault, '.fte', 'fte.db-wal');
      const limit = Math.max(statSync(join(s.vault, '.fte', 'fte.db')).size, existsSync(wal) ? statSync(wal).size : 0);
      execFileSync('prlimit', ['--pid', String(o.pid), `--fsize=${limit}`]);
      method = `prlimit --fsize=${limit} (EFBIG)`;
    }
    const exit = await Promise.race([o.exited, new Promise<null>((r) => setTimeout(() => r(null), 30_000))]);
    expect(exit, `the orchestrator should stop on a full disk; events: ${o.lines.map((l) => l.event).join(',')}`).not.toBeNull();
    expect(exit?.code).toBe(1);
    const error = errorOf(o.stderr);
    // FILE_WRITE_FAILED: a note, snapshot or journal write, which names its file (the errno stays in the message).
    expect(['STORE_UNAVAILABLE', 'FILE_WRITE_FAILED', 'ENOSPC', 'EFBIG']).toContain(error.code);
    expect(error.message.length).toBeGreaterThan(10);
    if (error.code === 'FILE_WRITE_FAILED') expect(error.message).toMatch(new RegExp(`^cannot write ${s.vault}/.*: (ENOSPC|EFBIG)`));
    // Its agents were stopped, not left to finish work nobody will record.
    expect(processesMentioning(s.scratch)).toEqual([]);
    const aborted = o.lines.filter((l) => l.event === 'abort').length;
    expect(aborted).toBeGreaterThan(0);
    console.log(`disk full by ${method}: exit ${exit?.code}, ${error.code}: ${error.message}; ${aborted} agents stopped`);

    // Space again: a restart finishes the work, and every note is where its state says, once.
    if (filler) rmSync(filler);
    const again = await runOnce(s);
    expect(again.code, again.stderr).toBe(0);
    await expectWholeVault(s.vault, ids);
    const dump = await readStore(s.vault);
    expect(dump.tasks.every((t) => t.state === 'done')).toBe(true);
  }, 120_000);

  it('a disk already full at start: STORE_UNAVAILABLE before anything is touched', async () => {
    let mounted = false;
    const s = scenario((vault) => {
      mounted = tryTmpfs(vault, '1m');
    });
    note(s.vault, 'job-1', 'stand-in: succeed');
    let command: string[] | undefined;
    if (mounted) fillDisk(s.vault);
    // Without root: a file-size limit of 0 bytes on the orchestrator (the database cannot grow past its empty file).
    else command = ['prlimit', '--fsize=0', process.execPath];
    const before = treeSnapshot(s.vault, { skip: (rel) => rel === 'filler.bin' });
    const r = await fte(s.vault, s.env, ['orchestrator', 'run', '--once', '--no-api', '--json'], { ...(command ? { command } : {}) });
    expect(r.code, r.stderr).toBe(1);
    expect(['STORE_UNAVAILABLE', 'FILE_WRITE_FAILED', 'ENOSPC', 'EFBIG']).toContain(errorOf(r.stderr).code);
    const after = treeSnapshot(s.vault, { skip: (rel) => rel === 'filler.bin' || rel.startsWith('.fte/fte.db') });
    expect(treeDiff(new Map([...before].filter(([k]) => !k.startsWith('.fte/fte.db'))), after)).toEqual([]);
  }, 60_000);
});
