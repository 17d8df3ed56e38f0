import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, type Stats } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { approvalDecision } from '../../lib/core/approval.ts';
import { buildClaudeArgs, buildPrompt } from '../../lib/core/claude-invocation.ts';
import { withoutSections } from '../../lib/core/note-sections.ts';
import { parseTaskNote } from '../../lib/core/parse-task.ts';
import { folderOf, VAULT_FOLDERS } from '../../lib/core/vault-layout.ts';
import { loadConfig } from '../../lib/local/config-file.ts';
import { writeCorpus, type CorpusEntry } from './corpus.ts';
import {
  callsByPid,
  fteEnv,
  OrchestratorProcess,
  processesMentioning,
  readStandInLog,
  readStore,
  sleep,
  table,
  treeDiff,
  treeSnapshot,
  waitUntil,
  type EventLine,
} from './support.ts';

/**
 * Hostile input (issue 7): the orchestrator, as its own process with the stand-in agent, over a corpus of more than
 * 1,000 hostile task files (test/hardening/corpus.ts). The loop keeps running; every bad file is quarantined to
 * Failed/ with `<name>.error.md` giving its reason; no file is written outside the vault; nothing runs a shell (the
 * agent gets exactly fte's argv, the prompt as one element, byte for byte what fte built); and no task that the
 * approval policy holds back — judged on its original text, by the policy and by the corpus's own labels — runs.
 */

const SETTINGS = `
orchestrator:
  max_concurrent_tasks: 10
  poll_interval: 1
  heartbeat_interval: 1
  claude_timeout: 20
  kill_grace_period: 1
  shutdown_timeout: 5
retry:
  max_attempts: 1
`;

const scratches: string[] = [];
afterAll(() => {
  for (const s of scratches) rmSync(s, { recursive: true, force: true });
});

describe('hostile input: 1,000+ hostile task files', () => {
  it('quarantines every bad file with its reason, runs the rest without a shell or an approval bypass, writes nothing outside the vault', async () => {
    const scratch = mkdtempSync(join(tmpdir(), 'fte-hostile-'));
    scratches.push(scratch);
    // The vault's parent holds only the vault, the corpus's "outside" files and the canary folder; the stand-in's
    // state and log live elsewhere so that the parent must not change at all.
    const parent = join(scratch, 'parent');
    const vault = join(parent, 'vault');
    const canaryDir = join(parent, 'canary');
    const outsideDir = join(parent, 'outside');
    const standInDir = mkdtempSync(join(tmpdir(), 'fte-hostile-agent-'));
    scratches.push(standInDir);
    mkdirSync(join(vault, '.fte'), { recursive: true });
    mkdirSync(canaryDir);
    writeFileSync(join(vault, '.fte', 'orchestrator.yaml'), SETTINGS);
    const env = fteEnv(standInDir);
    const corpus = writeCorpus(vault, { canaryDir, outsideDir });
    expect(corpus.entries.length).toBeGreaterThanOrEqual(1000);

    const parentBefore = treeSnapshot(parent, { skip: (rel) => rel === 'vault' || rel.startsWith(`vault/`) });
    const ignoredBefore = new Map(corpus.entries.filter((e) => e.expect.kind === 'ignore').map((e) => [e.name, lstatSync(join(vault, 'Needs_Action', e.name)).mtimeMs]));
    const started = Date.now();

    const o = new OrchestratorProcess(vault, env);
    const quarantines = corpus.entries.filter((e) => e.expect.kind === 'quarantine');
    const inbox = (): string[] => readdirSync(join(vault, 'Needs_Action')).filter((n) => !n.startsWith('.'));
    let settled = false;
    const deadline = Date.now() + 150_000;
    while (!settled && Date.now() < deadline && o.child.exitCode === null) {
      await sleep(500);
      if (o.lines.filter((l) => l.event === 'quarantined').length < quarantines.length) continue;
      if (inbox().length > 0) continue;
      const dump = await readStore(vault).catch(() => null);
      settled = dump !== null && dump.tasks.every((t) => ['done', 'failed', 'pending_approval'].includes(t.state));
    }
    expect(o.child.exitCode, `the orchestrator died: ${o.stderr.slice(-2000)}`).toBeNull();
    expect(settled, `not settled; inbox: ${inbox().slice(0, 10).join(', ')}`).toBe(true);
    const settledMs = Date.now() - started;

    // The loop is still alive after all of it: a plain note dropped now is done.
    writeFileSync(join(vault, 'Needs_Action', 'zz-sentinel.md'), '---\ntitle: Sentinel\n---\nstand-in: succeed\n');
    await waitUntil(() => o.has('done', 'zz-sentinel'), 20_000, 'the sentinel note to be done');
    o.child.kill('SIGTERM');
    const exit = await o.exited;
    expect(exit.code).toBe(0);
    expect(o.lines.filter((l) => l.event === 'unparsed')).toEqual([]);

    const dump = await readStore(vault);
    const records = new Map(dump.tasks.map((t) => [t.id, t]));
    const { config } = loadConfig({ vault, env });

    // ---- Every bad file: quarantined once, with its reason, its note and a regular-file error note in Failed/.
    const quarantinedEvents = new Map<string, EventLine[]>();
    for (const l of o.lines) if (l.event === 'quarantined') quarantinedEvents.set(l.taskId as string, [...(quarantinedEvents.get(l.taskId as string) ?? []), l]);
    const problems: string[] = [];
    for (const e of quarantines) {
      const id = e.name.slice(0, -3);
      const events = quarantinedEvents.get(id) ?? [];
      if (events.length !== 1) {
        problems.push(`${JSON.stringify(e.name)}: ${events.length} quarantine events`);
        continue;
      }
      const event = events[0] as EventLine;
      const reason = e.expect.kind === 'quarantine' ? e.expect.reason : undefined;
      if (reason !== undefined && event['reason'] !== reason) problems.push(`${JSON.stringify(e.name)}: reason ${String(event['reason'])}, expected ${reason}`);
      const as = /to Failed\/(.*)\.md: /s.exec(event.message)?.[1];
      if (as === undefined) {
        problems.push(`${JSON.stringify(e.name)}: no target in "${event.message}"`);
        continue;
      }
      const noteEntry = lstatOrNull(join(vault, 'Failed', `${as}.md`));
      const errorEntry = lstatOrNull(join(vault, 'Failed', `${as}.error.md`));
      if (noteEntry === null) problems.push(`${JSON.stringify(e.name)}: Failed/${as}.md missing`);
      if (errorEntry === null || !errorEntry.isFile()) problems.push(`${JSON.stringify(e.name)}: Failed/${as}.error.md missing or not a regular file`);
      else if (!readFileSync(join(vault, 'Failed', `${as}.error.md`), 'utf8').includes(`reason: ${String(event['reason'])}`)) problems.push(`${as}.error.md does not give the reason`);
      if (records.has(id)) problems.push(`${JSON.stringify(e.name)}: quarantined but in the store`);
    }

    // ---- Every good file: admitted and at rest where expected; ignored files untouched.
    const where = new Map<string, string[]>();
    for (const folder of VAULT_FOLDERS) {
      for (const name of readdirSync(join(vault, folder))) {
        if (!name.endsWith('.md') || name.startsWith('.') || name.endsWith('.error.md')) continue;
        where.set(name.slice(0, -3), [...(where.get(name.slice(0, -3)) ?? []), folder]);
      }
    }
    const admitted = corpus.entries.filter((e) => e.expect.kind === 'admit');
    for (const e of admitted) {
      if (e.expect.kind !== 'admit') continue;
      const id = e.expect.renamedTo ?? e.name.slice(0, -3);
      const record = records.get(id);
      if (record === undefined) {
        problems.push(`${JSON.stringify(e.name)}: not admitted as ${id}`);
        continue;
      }
      if (record.state !== e.expect.state) problems.push(`${JSON.stringify(e.name)}: ${record.state}, expected ${e.expect.state} (${record.lastError?.message ?? ''})`);
      if (e.expect.errorClass && record.lastError?.class !== e.expect.errorClass) problems.push(`${JSON.stringify(e.name)}: error ${record.lastError?.class}, expected ${e.expect.errorClass}`);
      const folders = where.get(id) ?? [];
      if (folders.length !== 1 || folders[0] !== folderOf(record.state)) problems.push(`${JSON.stringify(e.name)}: in ${folders.join(', ') || 'no folder'}, state ${record.state}`);
    }
    for (const [name, mtime] of ignoredBefore) {
      const st = lstatOrNull(join(vault, 'Needs_Action', name));
      if (st === null || st.mtimeMs !== mtime) problems.push(`${JSON.stringify(name)}: a dot-file was touched`);
    }
    // The stray notes planted beside the corpus are where they were, and were never run.
    for (const plant of ['Done/stray-collide.md', 'Approved/stray-pay.md']) if (!existsSync(join(vault, plant))) problems.push(`${plant} moved`);

    // ---- Nothing outside the vault: the parent is as it was, no canary, nothing written through a planted link.
    const outside = treeDiff(parentBefore, treeSnapshot(parent, { skip: (rel) => rel === 'vault' || rel.startsWith(`vault/`) }));
    expect(outside).toEqual([]);
    expect(readdirSync(canaryDir)).toEqual([]);
    expect(readdirSync(vault).sort()).toEqual(['.fte', ...VAULT_FOLDERS].sort());

    // ---- No shell: the agent got exactly fte's argv, with the prompt as one element, byte for byte what fte built.
    const calls = [...callsByPid(readStandInLog(env['FTE_STAND_IN_LOG'] as string)).values()];
    const contentOf = new Map<string, CorpusEntry>();
    for (const e of admitted) contentOf.set(e.expect.kind === 'admit' && e.expect.renamedTo ? e.expect.renamedTo : e.name.slice(0, -3), e);
    let argvChecked = 0;
    let promptsChecked = 0;
    for (const c of calls) {
      if (c.taskId === 'zz-sentinel') continue;
      const kind = c.planning ? 'plan' : 'execute';
      const expectedArgv = buildClaudeArgs(config, { kind, prompt: 'prompt' }).map((a) => (a === 'prompt' ? '<prompt>' : a));
      if (JSON.stringify(c.argv) !== JSON.stringify(expectedArgv)) problems.push(`agent pid ${c.pid} (${c.taskId}): argv ${JSON.stringify(c.argv)}`);
      else argvChecked++;
      const entry = contentOf.get(c.taskId ?? '');
      if (entry?.content === undefined) {
        problems.push(`agent run for an unknown task ${JSON.stringify(c.taskId)}`);
        continue;
      }
      const parsed = parseTaskNote({ id: c.taskId as string, content: entry.content, fallbackCreated: new Date() });
      if (!parsed.ok) {
        problems.push(`agent ran ${c.taskId}, which does not parse`);
        continue;
      }
      const prompt = buildPrompt({
        kind,
        task: { ...parsed.task, body: withoutSections(parsed.task.body) },
        notePath: join(vault, 'In_Progress', `${c.taskId}.md`),
        plan: null,
        ...(kind === 'execute' ? { completionPromise: config.orchestrator.completion_promise } : {}),
      });
      if (createHash('sha256').update(prompt).digest('hex') !== c.promptSha256) problems.push(`${c.taskId}: the prompt the agent got is not the one fte built`);
      else promptsChecked++;

      // ---- Approval: nothing the policy or the corpus holds back was executed (nobody approved anything).
      if (!c.planning && (approvalDecision(parsed.task, config).required || entry.needsApproval)) {
        problems.push(`${c.taskId}: executed without approval`);
      }
    }
    const waiting = admitted.filter((e) => e.needsApproval);
    for (const e of waiting) {
      const id = e.expect.kind === 'admit' && e.expect.renamedTo ? e.expect.renamedTo : e.name.slice(0, -3);
      if (records.get(id)?.state !== 'pending_approval') problems.push(`${id}: needs approval but is ${records.get(id)?.state}`);
      if (dump.history.some((h) => h.taskId === id && h.event === 'execute')) problems.push(`${id}: an execute event without approval`);
    }
    expect(processesMentioning(standInDir)).toEqual([]);
    expect(problems).toEqual([]);

    // ---- The figures
    const byCategory = new Map<string, { files: number; quarantined: number; done: number; waiting: number; failed: number; ignored: number }>();
    for (const e of corpus.entries) {
      const row = byCategory.get(e.category) ?? { files: 0, quarantined: 0, done: 0, waiting: 0, failed: 0, ignored: 0 };
      row.files++;
      if (e.expect.kind === 'quarantine') row.quarantined++;
      else if (e.expect.kind === 'ignore') row.ignored++;
      else if (e.expect.state === 'done') row.done++;
      else if (e.expect.state === 'pending_approval') row.waiting++;
      else row.failed++;
      byCategory.set(e.category, row);
    }
    const rows = [...byCategory].map(([c, r]) => [c, r.files, r.quarantined, r.done, r.waiting, r.failed, r.ignored]);
    const total = corpus.entries.length;
    console.log(
      `hostile input: ${total} files, settled in ${(settledMs / 1000).toFixed(1)} s; ${calls.length} agent runs, argv checked ${argvChecked}, ` +
        `prompts checked byte for byte ${promptsChecked}; ${waiting.length} tasks held for approval, none executed; nothing outside the vault\n` +
        table(['category', 'files', 'quarantined', 'done', 'awaiting approval', 'failed (invalid_task)', 'ignored (dot-files)'], rows),
    );
  }, 240_000);
});

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch {
    return null;
  }
}
