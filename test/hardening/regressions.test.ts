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
  console.log((err as { errno: string }).errno);
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

  it('keywords spelt with Cyrillic or Greek look-alike letters need approval; so does any word mixing those scripts, and a bidi control in a title', () => {
    // Found by the corpus: "раyment" with a Cyrillic р and а, or "wіre" with a Ukrainian і, read as the keyword but
    // matched nothing; and a title's bidi controls, removed when the note is parsed, never reached the policy.
    const config = defaultConfig();
    const decide = (title: string, body: string) => {
      const parsed = parseTaskNote({ id: 'x', content: `---\ntitle: ${JSON.stringify(title)}\napproval: auto\n---\n${body}\n`, fallbackCreated: new Date() });
      if (!parsed.ok) throw parsed.error;
      return approvalDecision(parsed.task, config);
    };
    const disguised: Array<[string, string]> = [
      ['\u0440\u0430yment', 'payment'], // Cyrillic р, а
      ['w\u0456re', 'wire'], // Ukrainian і
      ['W\u0406RE', 'wire'], // its capital
      ['d\u0435pl\u03bfy', 'deploy'], // Cyrillic е, Greek ο
      ['\u0435\u0445\u0435\u0441ute', 'execute'], // Cyrillic е, х, е, с
      ['\u03a1ayment', 'payment'], // Greek capital Ρ
      ['\u0501elete', 'delete'], // Cyrillic ԁ
    ];
    for (const [word, keyword] of disguised) {
      for (const [title, body] of [['Routine', `Please ${word} it today.`], [`Please ${word} it`, 'See the title.']] as const) {
        const reasons = decide(title, body).reasons.join('\n');
        expect({ word, where: title === 'Routine' ? 'body' : 'title', reasons }).toEqual({
          word,
          where: title === 'Routine' ? 'body' : 'title',
          reasons: expect.stringMatching(new RegExp(`mentions .*"${keyword}"[^]*mixes scripts in one word`)),
        });
      }
    }
    // A mixed word that spells no keyword is held all the same, and says which word.
    const mixed = decide('Routine', 'Send the r\u0435port to Ann.');
    expect(mixed.required).toBe(true);
    expect(mixed.reasons).toEqual([expect.stringContaining('"r\u0435port" (Latin + Cyrillic)')]);
    // A zero-width space between the letters does not split the word into single-script pieces.
    expect(decide('Routine', 'p\u200b\u0430\u200by it').reasons.join()).toMatch(/mixes scripts/);
    // Bidi controls in the title, which the parsed title no longer shows.
    for (const title of ['Routine \u202eeriw\u202c note', 'Invoice \u2067approved\u2069', 'Plain \u202atext']) {
      const parsed = parseTaskNote({ id: 'x', content: `---\ntitle: ${JSON.stringify(title)}\n---\nSee the title.\n`, fallbackCreated: new Date() });
      expect(parsed.ok && parsed.task.title).not.toMatch(/[\u202a-\u202e\u2066-\u2069]/);
      expect(parsed.ok && approvalDecision(parsed.task, config).reasons.join()).toMatch(/bidirectional/);
    }
    // Honest text in one script, or in several scripts word by word, runs without a human.
    for (const text of ['Отчёт за неделю для Ann', 'Σύνοψη της εβδομάδας', 'Summarise the 5 µm wafer report', 'Прочитать iPhone-отзывы и report']) {
      expect({ text, reasons: decide(text, text).reasons }).toEqual({ text, reasons: [] });
    }
  });

  it('a cancel of a queued task cut short between the store write and the move is finished at the next start, not re-admitted as <id>-2', async () => {
    // Found by the crash trials: kill -9 of `fte task cancel` after the store recorded the cancel but before the note
    // left Needs_Action/. The next start took the note for new work and ran it as `withdrawn-2`.
    vault = new TestVault(FAST_SETTINGS);
    vault.note('withdrawn', { title: 'Withdrawn before it ran' }, 'stand-in: succeed');
    const service = vault.service();
    expect((await service.admit('withdrawn')).kind).toBe('admitted');
    // The kill, made deterministic: the process "dies" at the rename, after the store's write.
    service.vault.move = () => {
      throw new Error('killed between the store write and the move');
    };
    await expect(service.cancel('withdrawn', 'operator')).rejects.toThrow(/killed/);
    await service.close();
    expect((await readStore(vault.dir)).tasks.map((t) => [t.id, t.state])).toEqual([['withdrawn', 'cancelled']]);
    expect(vault.folders()['Needs_Action']).toEqual(['withdrawn']);

    const r = await runOnceCli(vault);
    expect(r.code, r.stderr).toBe(0);
    expect(vault.folders()).toMatchObject({ Needs_Action: [], Rejected: ['withdrawn'], Done: [] });
    expect((await readStore(vault.dir)).tasks.map((t) => [t.id, t.state])).toEqual([['withdrawn', 'cancelled']]);
    expect(vault.calls()).toEqual([]);

    // A person who moves the cancelled note back afterwards asks for the work again: that is still a new task.
    renameSync(join(vault.dir, 'Rejected', 'withdrawn.md'), join(vault.dir, 'Needs_Action', 'withdrawn.md'));
    expect((await runOnceCli(vault)).code).toBe(0);
    expect(vault.folders()).toMatchObject({ Needs_Action: [], Rejected: [], Done: ['withdrawn-2'] });
    expect((await readStore(vault.dir)).tasks.map((t) => [t.id, t.state]).sort()).toEqual([['withdrawn', 'cancelled'], ['withdrawn-2', 'done']]);
  }, 60_000);

  it('a write that fails for a full disk names the file: a new note, a rewrite, a snapshot, a quarantine note, the iteration journal', () => {
    // Found by the store-fault runs: the disk-full exit said "ENOSPC: no space left on device, write" and nothing
    // else, so an operator could not tell which file system to free.
    vault = new TestVault(FAST_SETTINGS);
    const dir = join(vault.scratch, 'small');
    mkdirSync(dir);
    // A real full disk where this machine lets us mount a tmpfs; else a file-size limit (EFBIG, the same code path).
    const mounted = process.getuid?.() === 0 && process.env['FTE_HARDENING_NO_MOUNT'] !== '1' && tryMount(dir);
    if (mounted) cleanups.push(() => execFileSync('umount', ['-l', dir], { stdio: 'ignore' }));
    for (const folder of ['Needs_Action', 'Done', 'Failed', '.fte/snapshots', '.fte/iterations']) mkdirSync(join(dir, folder), { recursive: true });
    writeFileSync(join(dir, 'Needs_Action', 'pay.md'), `---\ntitle: Pay the supplier\n---\n${'Pay invoice 7. '.repeat(20)}\n`);
    writeFileSync(join(dir, 'Needs_Action', 'bad.md'), '---\ntitle: "unclosed\n---\n');
    writeFileSync(join(dir, 'Done', 'n.md'), 'original\n');
    if (mounted) {
      const fd = openSync(join(dir, 'filler.bin'), 'w');
      try {
        for (;;) writeSync(fd, Buffer.alloc(64 * 1024, 7));
      } catch (err) {
        expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
      } finally {
        closeSync(fd);
      }
    }
    const script = join(vault.scratch, 'writes.mts');
    const lib = (path: string) => JSON.stringify(join(ROOT, 'lib', path));
    writeFileSync(
      script,
      `import { join } from 'node:path';
import { defaultConfig } from ${lib('core/config.ts')};
import { IterationJournal } from ${lib('local/iteration-journal.ts')};
import { MemoryTaskStore } from ${lib('local/memory-store.ts')};
import { TaskService } from ${lib('local/task-service.ts')};
const dir = process.argv[2] as string;
const service = new TaskService(dir, new MemoryTaskStore(), defaultConfig());
const journal = new IterationJournal(join(dir, '.fte', 'iterations'));
const record = { attempt: 1, iteration: 1, startedAt: new Date().toISOString(), endedAt: new Date().toISOString(), durationMs: 1, costUsd: 0, numTurns: 1, sessionId: 's'.repeat(100), ok: true, errorClass: null, promiseSeen: false };
const writes: Record<string, () => unknown> = {
  create: () => service.vault.create('Needs_Action', 'new', 'x'.repeat(4096)),
  rewrite: () => service.vault.rewrite('Done', 'n', 'x'.repeat(4096)),
  snapshot: () => service.admit('pay'),
  quarantine: () => service.admit('bad'),
  journal: () => journal.append('pay', record),
  checkpoint: () => journal.saveCheckpoint('pay', { attempt: 1, iteration: 1, sessionId: 's'.repeat(100) }),
};
const out: Record<string, unknown> = {};
for (const [name, write] of Object.entries(writes)) {
  try {
    await write();
    out[name] = 'written';
  } catch (err) {
    const e = err as { code?: string; errno?: string; path?: string; message: string };
    out[name] = { code: e.code, errno: e.errno, path: e.path, message: e.message };
  }
}
console.log(JSON.stringify(out));
`,
    );
    const command = mounted ? [process.execPath] : ['prlimit', '--fsize=64', process.execPath];
    const [bin, ...args] = command as [string, ...string[]];
    const out = JSON.parse(execFileSync(bin, [...args, '--import', 'tsx', script, dir], { cwd: ROOT, encoding: 'utf8' })) as Record<string, unknown>;
    const errno = mounted ? 'ENOSPC' : 'EFBIG';
    const expected = {
      create: join(dir, 'Needs_Action', 'new.md'),
      rewrite: join(dir, 'Done', 'n.md'),
      snapshot: join(dir, '.fte', 'snapshots', 'pay.md'),
      quarantine: join(dir, 'Failed', 'bad.error.md'),
      journal: join(dir, '.fte', 'iterations', 'pay.jsonl'),
      checkpoint: join(dir, '.fte', 'iterations', 'pay.checkpoint.json'),
    };
    for (const [name, path] of Object.entries(expected)) {
      expect({ name, result: out[name] }).toEqual({
        name,
        result: { code: 'FILE_WRITE_FAILED', errno, path, message: expect.stringMatching(new RegExp(`^cannot write ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: ${errno}`)) },
      });
    }
    // Nothing half-written is left to be taken for a whole note.
    expect(readdirSync(join(dir, 'Needs_Action'))).toEqual(['pay.md']);
    expect(readFileSync(join(dir, 'Done', 'n.md'), 'utf8')).toBe('original\n');
    console.log(`write faults by ${mounted ? 'a full tmpfs (ENOSPC)' : 'prlimit --fsize (EFBIG)'}`);
  }, 60_000);
});

/** Mount a small tmpfs at `dir`; false when this machine does not allow it. */
function tryMount(dir: string): boolean {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
