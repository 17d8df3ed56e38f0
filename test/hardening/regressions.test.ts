import { execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, lstatSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { approvalDecision } from '../../lib/core/approval.ts';
import { defaultConfig } from '../../lib/core/config.ts';
import { parseTaskNote } from '../../lib/core/parse-task.ts';
import { Engine } from '../../lib/local/engine.ts';
import { processIsAlive } from '../../lib/local/process-group.ts';
import { FAST_SETTINGS, TestVault } from '../e2e/harness.ts';
import { fte, OrchestratorProcess, processesMentioning, readStandInLog, readStore, ROOT, sleep, waitUntil } from './support.ts';

/** Faults the hardening runs found in lib/local, each pinned by the smallest reproduction. */

let vault: TestVault;
const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
  vault?.cleanup();
});

const runOnceCli = (v: TestVault) => fte(v.dir, v.env, ['orchestrator', 'run', '--once', '--no-api', '--json']);

describe('regressions found by the hardening runs', () => {
  it('an agent pid file that cannot be written stops the loop with an error and stops the agent (no unfindable orphan)', async () => {
    // Found with a full disk: writeFileSync of `.fte/run/<id>.pid` threw inside the child's 'spawn' event, the
    // orchestrator died of an uncaught exception, and the agent ran on with no pid file for a restart to find.
    vault = new TestVault(FAST_SETTINGS.replace('max_concurrent_tasks: 1', 'max_concurrent_tasks: 2'));
    vault.note('first', { title: 'First', urgency: 'critical' }, 'stand-in: slow 4000');
    vault.note('second', { title: 'Second', urgency: 'low' }, 'stand-in: slow 4000');
    // A folder where the pid file of `first` goes: the write fails (EISDIR), as it would with ENOSPC.
    mkdirSync(join(vault.dir, '.fte', 'run', 'first.pid'), { recursive: true });
    const r = await runOnceCli(vault);
    expect(r.code).toBe(1);
    const error = (JSON.parse(r.stderr.trim().split('\n').at(-1) as string) as { error: { code: string; message: string } }).error;
    expect(error.code).toBe('EISDIR');
    expect(error.message).toContain('first.pid');
    expect(r.stderr).not.toMatch(/at .*engine\.ts/); // a reported error, not an uncaught exception's stack
    await waitUntil(() => processesMentioning(vault.scratch).length === 0, 3000, 'no agent left').catch(() => {});
    expect(processesMentioning(vault.scratch)).toEqual([]);
    // It did not wait for the 4 s agents to finish: they were stopped, and none reported a success.
    expect(readStandInLog(vault.env['FTE_STAND_IN_LOG'] as string).filter((c) => c.exitCode === 0)).toEqual([]);

    // With the fault gone, the next start recovers both and finishes them.
    rmSync(join(vault.dir, '.fte', 'run', 'first.pid'), { recursive: true });
    expect((await runOnceCli(vault)).code).toBe(0);
    expect(vault.folders()['Done']).toEqual(['first', 'second']);
  }, 60_000);

  it('a finished task whose note a crash left in In_Progress/ is put in its folder at the next start; its stale pid file goes, unsignalled', async () => {
    // Found by the crash trials: kill -9 between the store's `succeed` and the note's move left a done task in
    // In_Progress/ for good (reconciliation looks at open tasks only), and its pid file in .fte/run.
    vault = new TestVault(FAST_SETTINGS);
    vault.note('paid', { title: 'Finished before the crash' }, 'stand-in: succeed');
    expect((await runOnceCli(vault)).code).toBe(0);
    renameSync(join(vault.dir, 'Done', 'paid.md'), join(vault.dir, 'In_Progress', 'paid.md'));
    // The stale pid file names a process that is not the agent any more (here: a bystander in its own group).
    const bystander = spawn('sleep', ['30'], { detached: true, stdio: 'ignore' });
    cleanups.push(() => bystander.kill('SIGKILL'));
    const pid = bystander.pid as number;
    writeFileSync(join(vault.dir, '.fte', 'run', 'paid.pid'), `${pid}\n`);
    const r = await runOnceCli(vault);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('"event":"repaired"');
    expect(vault.folders()['Done']).toEqual(['paid']);
    expect(vault.folders()['In_Progress']).toEqual([]);
    expect(readdirSync(join(vault.dir, '.fte', 'run'))).toEqual([]);
    expect(processIsAlive(pid)).toBe(true);
    expect((await readStore(vault.dir)).tasks.map((t) => t.state)).toEqual(['done']);
  }, 60_000);

  it('a note rewrite that fails half-way (file too large / disk full) leaves the note as it was and no temp file', () => {
    vault = new TestVault(FAST_SETTINGS);
    const script = join(vault.scratch, 'rewrite.ts');
    writeFileSync(
      script,
      `import { Vault } from ${JSON.stringify(join(ROOT, 'lib', 'local', 'vault.ts'))};
const v = new Vault(process.argv[2] as string);
v.ensure();
try {
  v.rewrite('Done', 'n', 'x'.repeat(200_000));
  console.log('written');
} catch (err) {
  console.log((err as NodeJS.ErrnoException).code);
}
`,
    );
    mkdirSync(join(vault.dir, 'Done'), { recursive: true });
    writeFileSync(join(vault.dir, 'Done', 'n.md'), 'original\n');
    // A file-size limit makes the write fail part-way, as a full disk does (EFBIG instead of ENOSPC).
    const out = execFileSync('prlimit', ['--fsize=16384', process.execPath, '--import', 'tsx', script, vault.dir], { cwd: ROOT, encoding: 'utf8' });
    expect(out.trim()).toBe('EFBIG');
    expect(readdirSync(join(vault.dir, 'Done'))).toEqual(['n.md']);
    expect(readFileSync(join(vault.dir, 'Done', 'n.md'), 'utf8')).toBe('original\n');
    expect(existsSync(join(vault.dir, 'Done', 'n.md'))).toBe(true);
  });

  it('hostile files fte used to mishandle: a named pipe, links, a folder, a planted link in Failed/, a stray same-name note, an over-long prompt', async () => {
    // Found by the hostile-input corpus. Before: a named pipe blocked the loop for good (open() waits for a writer, and
    // SIGTERM could not stop it); a link out of the vault was read and its target's text became a task; a quarantine
    // note was written through a dangling link planted in Failed/, creating a file outside the vault; a new note named
    // like a stray note in Done/ ran as that note's task and left two notes of one name; a note of more than 128 KiB
    // was retried as a "crash" (spawn E2BIG) until its attempts ran out.
    vault = new TestVault(FAST_SETTINGS);
    const inbox = join(vault.dir, 'Needs_Action');
    const outside = join(vault.scratch, 'outside');
    mkdirSync(outside);
    writeFileSync(join(outside, 'secret.md'), '---\ntitle: SECRET\n---\nsecret\n');
    execFileSync('mkfifo', [join(inbox, 'pipe.md')]);
    symlinkSync(join(outside, 'secret.md'), join(inbox, 'link-out.md'));
    symlinkSync(join(outside, 'nothing-here.md'), join(inbox, 'link-dangling.md'));
    mkdirSync(join(inbox, 'folder.md'));
    mkdirSync(join(vault.dir, 'Failed'), { recursive: true });
    symlinkSync(join(outside, 'written-through.md'), join(vault.dir, 'Failed', 'bad.error.md'));
    writeFileSync(join(inbox, 'bad.md'), '---\ntitle: "unclosed\n---\n');
    mkdirSync(join(vault.dir, 'Done'), { recursive: true });
    writeFileSync(join(vault.dir, 'Done', 'report.md'), '---\ntitle: A stray note, never admitted\n---\n');
    vault.note('report', { title: 'A new note with that name' });
    vault.note('long', { title: 'Too long to pass' }, 'word '.repeat(40_000));

    const r = await fte(vault.dir, vault.env, ['orchestrator', 'run', '--once', '--no-api', '--json'], { timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(0);
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { event: string; taskId?: string; reason?: string; message: string });
    const quarantined = Object.fromEntries(events.filter((e) => e.event === 'quarantined').map((e) => [e.taskId, e.reason]));
    expect(quarantined).toMatchObject({ pipe: 'not_a_file', 'link-out': 'not_a_file', 'link-dangling': 'not_a_file', folder: 'not_a_file', bad: 'bad_yaml' });
    expect(readdirSync(inbox)).toEqual([]);
    // Nothing was read through the link, nothing written through the planted one.
    expect(events.some((e) => e.message.includes('SECRET'))).toBe(false);
    expect(readdirSync(outside)).toEqual(['secret.md']);
    expect(lstatSync(join(vault.dir, 'Failed', 'bad.error.md')).isSymbolicLink()).toBe(true);
    expect(readdirSync(join(vault.dir, 'Failed')).filter((n) => n.startsWith('bad-2'))).toEqual(['bad-2.error.md', 'bad-2.md']);
    // The stray note stays; the new one ran under a free name.
    expect(readFileSync(join(vault.dir, 'Done', 'report.md'), 'utf8')).toContain('A stray note');
    expect(vault.folders()['Done']).toEqual(['report', 'report-2']);
    const dump = await readStore(vault.dir);
    expect(dump.tasks.find((t) => t.id === 'report-2')?.state).toBe('done');
    // The over-long note failed once, as what it is, without a retry.
    const long = dump.tasks.find((t) => t.id === 'long');
    expect({ state: long?.state, errorClass: long?.lastError?.class, attempts: long?.attempts }).toEqual({ state: 'failed', errorClass: 'invalid_task', attempts: 1 });
    expect(long?.lastError?.message).toMatch(/operating system allows for one argument/);
  }, 60_000);

  it('approval keywords hidden by invisible characters, compatibility forms or accents still need approval; bidi controls do', () => {
    // Found by the corpus: "wi\u200bre" (a zero-width space) reads "wire" but matched no keyword.
    const config = defaultConfig();
    const decide = (title: string, body: string) => {
      const parsed = parseTaskNote({ id: 'x', content: `---\ntitle: ${JSON.stringify(title)}\napproval: auto\n---\n${body}\n`, fallbackCreated: new Date() });
      if (!parsed.ok) throw parsed.error;
      return approvalDecision(parsed.task, config);
    };
    for (const body of ['Please wi\u200bre the money.', 'Make the trans\u200dfer.', 'Settle the pay\u00adment.', 'De\u2060lete the records.', 'ｗｉｒｅ it', '𝐰𝐢𝐫𝐞 it', 'the tránsfer', 'wi\ufe0fre it', 'Pay\u{e0041}ment']) {
      expect({ body, required: decide('Routine', body).required }).toEqual({ body, required: true });
      expect({ title: body, required: decide(body, 'See the title.').required }).toEqual({ title: body, required: true });
    }
    expect(decide('Routine', 'Note \u202eeriw\u202c here.').reasons.join()).toMatch(/bidirectional/);
    // Nothing changes for plain text, accented keywords configured by a user still match their own spelling.
    expect(decide('Summarise the café menu', 'Résumé attached.').required).toBe(false);
    const custom = { ...config, approval: { ...config.approval, keywords: ['überweisung'] } };
    const parsed = parseTaskNote({ id: 'y', content: 'Bitte die Überweisung heute.', fallbackCreated: new Date() });
    expect(parsed.ok && approvalDecision(parsed.task, custom).required).toBe(true);
    // Titles lose invisible characters rather than gaining spaces.
    const t = parseTaskNote({ id: 'z', content: '---\ntitle: "wi\\u200bre"\n---\n', fallbackCreated: new Date() });
    expect(t.ok && t.task.title).toBe('wire');
  });

  it('an offset beyond ±14:00 is not a date; an alias to an undefined anchor is bad YAML, not an alias bomb', () => {
    const parse = (fm: string) => parseTaskNote({ id: 'x', content: `---\n${fm}\n---\nbody\n`, fallbackCreated: new Date() });
    for (const offset of ['+14:30', '-14:01', '+14:59']) {
      const r = parse(`deadline: 2026-01-01T10:00:00${offset}`);
      expect({ offset, reason: r.ok ? 'ok' : r.error.reason }).toEqual({ offset, reason: 'invalid_field' });
    }
    for (const offset of ['+14:00', '-14:00', '-12:00', '+05:45']) expect(parse(`deadline: 2026-01-01T10:00:00${offset}`).ok).toBe(true);
    const alias = parse('title: *nowhere');
    expect(alias.ok ? 'ok' : alias.error.reason).toBe('bad_yaml');
    const bomb = parse(`a: &a [1, 1]\nb: &b [${'*a, '.repeat(9)}*a]\nc: &c [${'*b, '.repeat(9)}*b]`);
    expect(bomb.ok ? 'ok' : bomb.error.reason).toBe('yaml_alias_limit');
  });

  it('a note written in place, in pieces, is read once it is complete: not quarantined as empty, not admitted cut short', async () => {
    // Found by the crash trials: the watch fired on the note's creation, the loop read it before its first byte was
    // written and quarantined it as empty (the writer's later bytes then landed in Failed/).
    vault = new TestVault(FAST_SETTINGS);
    const o = new OrchestratorProcess(vault.dir, vault.env);
    cleanups.push(() => o.child.kill('SIGKILL'));
    await waitUntil(() => o.has('start'), 15_000, 'start');
    await sleep(300);
    const fd = openSync(join(vault.dir, 'Needs_Action', 'slow.md'), 'w');
    await sleep(120);
    writeSync(fd, '---\ntitle: Written');
    await sleep(120);
    writeSync(fd, ' in pieces\n---\nSummarise nothing; this is the whole note.\n');
    closeSync(fd);
    await waitUntil(() => o.has('done', 'slow') || o.has('quarantined'), 15_000, 'the note to be handled').catch((err: Error) => {
      throw new Error(`${err.message}; events: ${JSON.stringify(o.lines)}; stderr: ${o.stderr}`);
    });
    expect(o.lines.filter((l) => l.event === 'quarantined')).toEqual([]);
    expect(o.lines.find((l) => l.event === 'admitted')?.message).toContain('Written in pieces');
    o.child.kill('SIGTERM');
    expect((await o.exited).code).toBe(0);
  }, 30_000);

  it('a move that loses a race with the CLI (the note is already where it is going) does not stop the loop', async () => {
    // Found by the crash trials: `fte approve` moved a note into Approved/ between the loop's look at the vault and its
    // own rename; the rename refused to overwrite (VaultConflictError) and the orchestrator exited on it.
    vault = new TestVault(FAST_SETTINGS);
    vault.note('raced', { title: 'Raced' });
    writeFileSync(join(vault.dir, '.claude_stop'), ''); // admit, reconcile, but dispatch nothing
    const service = vault.service();
    cleanups.push(() => void service.close());
    const engine = new Engine(service, {});
    // The note was written just now: it is read once it has been left alone for a moment.
    for (let i = 0; i < 50 && (await service.store.get('raced')) === null; i++) {
      await engine.tick();
      await sleep(50);
    }
    expect((await service.mustGet('raced')).state).toBe('needs_action');
    // A person drags the queued note to Done/ (not a decision): reconcile moves it back. Just before its rename, another
    // process puts it back first.
    renameSync(join(vault.dir, 'Needs_Action', 'raced.md'), join(vault.dir, 'Done', 'raced.md'));
    const move = service.vault.move.bind(service.vault);
    let raced = 0;
    service.vault.move = (id, from, to) => {
      if (raced++ === 0) renameSync(join(vault.dir, from, `${id}.md`), join(vault.dir, to, `${id}.md`));
      return move(id, from, to);
    };
    await engine.tick();
    expect(raced).toBeGreaterThan(0);
    expect(vault.folders()['Needs_Action']).toEqual(['raced']);
    // And placing a note that someone else already moved to its folder is not an error either.
    const record = await service.mustGet('raced');
    raced = 0;
    service.vault.move = (id, from, to) => {
      if (raced++ === 0) renameSync(join(vault.dir, from, `${id}.md`), join(vault.dir, to, `${id}.md`));
      return move(id, from, to);
    };
    renameSync(join(vault.dir, 'Needs_Action', 'raced.md'), join(vault.dir, 'Failed', 'raced.md'));
    expect(service.placeNote(record)).toBe('Needs_Action');
    expect(vault.folders()['Needs_Action']).toEqual(['raced']);
  }, 30_000);
});
