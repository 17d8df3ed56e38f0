#!/usr/bin/env node
// A stand-in for Claude Code's headless mode (`claude -p <prompt> --output-format json`), so that fte's whole flow
// runs, and is tested, without an API key. It prints one result object shaped like Claude's and behaves as a
// directive line in the prompt says (the prompt carries the task body):
//
//   stand-in: succeed          default; the result describes what was done (a plan under --permission-mode plan)
//   stand-in: fail             exit 1, is_error true, subtype error_during_execution
//   stand-in: error-exit-0     exit 0 but is_error true (the known trap of headless runs)
//   stand-in: garbage          prints text that is not JSON, exit 0
//   stand-in: crash            writes to stderr, exit 2, no JSON
//   stand-in: hang             never finishes and ignores SIGTERM
//   stand-in: slow <ms>        sleeps, then succeeds
//   stand-in: fork             starts a grandchild that keeps running, then succeeds and exits
//   stand-in: fail-once        fails the first call for this task, then succeeds
//   stand-in: fail-times <n>   fails the first n calls for this task, then succeeds
//   stand-in: rate-limit       is_error true with an API 429 rate-limit message, exit 1
//   stand-in: over-budget      subtype error_max_budget_usd, exit 1
//   stand-in: max-turns        subtype error_max_turns, exit 1
//   stand-in: promise-on <n>   prints the completion promise only on the n-th call of one session (--resume keeps
//                              the session and its directives, so resume prompts need not repeat them)
//   stand-in: cost <usd>       reports this total_cost_usd (combines with any of the above)
//   stand-in: delay <ms>       waits this long before behaving (combines with any of the above)
//
// The first directive other than `cost` wins. Calls are counted in $FTE_STAND_IN_STATE (default
// <tmpdir>/fte-stand-in): per task by a hash of the prompt's `Task file:` line, per session by session id.
// With $FTE_STAND_IN_LOG set, one JSON line per invocation is appended there (pid, argv without the prompt, behaviour,
// start and end times) so tests can count concurrency. Plain Node, no dependencies.

import { spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { appendFileSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const startMs = Date.now();
const DEFAULT_COST = 0.0123;
const DEFAULT_PROMISE = '<promise>DONE</promise>';

const VALUE_FLAGS = new Set([
  '--output-format', '--input-format', '--resume', '-r', '--max-turns', '--model', '--fallback-model',
  '--permission-mode', '--max-budget-usd', '--append-system-prompt', '--system-prompt', '--settings', '--session-id',
]);
const LIST_FLAGS = new Set([
  '--allowedTools', '--allowed-tools', '--disallowedTools', '--disallowed-tools', '--tools', '--mcp-config', '--add-dir',
]);

function parseArgs(argv) {
  const flags = {};
  let prompt = null;
  let promptIndex = -1;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-p' || arg === '--print') continue;
    if (arg.startsWith('--') && arg.includes('=')) {
      const at = arg.indexOf('=');
      flags[arg.slice(0, at)] = arg.slice(at + 1);
    } else if (VALUE_FLAGS.has(arg)) {
      flags[arg] = argv[++i] ?? '';
    } else if (LIST_FLAGS.has(arg)) {
      const values = [];
      while (i + 1 < argv.length && !argv[i + 1].startsWith('-')) values.push(argv[++i]);
      flags[arg] = values;
    } else if (arg.startsWith('-')) {
      // Unknown flags are ignored; Claude Code grows new ones often.
    } else if (prompt === null) {
      prompt = arg;
      promptIndex = i;
    }
  }
  return { flags, prompt, promptIndex };
}

const argv = process.argv.slice(2);
const { flags, prompt, promptIndex } = parseArgs(argv);
const outputFormat = flags['--output-format'] ?? 'text';
const planMode = flags['--permission-mode'] === 'plan';
const stateDir = process.env.FTE_STAND_IN_STATE || join(tmpdir(), 'fte-stand-in');
mkdirSync(stateDir, { recursive: true });

const sha = (text) => createHash('sha256').update(text).digest('hex');

function readState(name, fallback) {
  try {
    return JSON.parse(readFileSync(join(stateDir, `${name}.json`), 'utf8'));
  } catch {
    return fallback;
  }
}

function writeState(name, value) {
  const file = join(stateDir, `${name}.json`);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(value));
  renameSync(tmp, file);
}

const logRecord = {
  pid: process.pid,
  ppid: process.ppid,
  argv: argv.map((a, i) => (i === promptIndex ? '<prompt>' : a)),
  promptLength: prompt?.length ?? 0,
  promptSha256: prompt === null ? null : sha(prompt),
  // Which task and which kind of run, so tests can tell a planning run from an execution without the prompt.
  taskId: prompt === null ? null : (/^Task id: (.*)$/m.exec(prompt)?.[1] ?? null),
  planning: argv.some((a, i) => a === '--permission-mode' && argv[i + 1] === 'plan'),
  startMs,
};

function writeLog(extra) {
  const path = process.env.FTE_STAND_IN_LOG;
  if (!path) return;
  appendFileSync(path, `${JSON.stringify({ ...logRecord, ...extra })}\n`);
}

function exit(code, extra = {}) {
  writeLog({ ...extra, exitCode: code, endMs: Date.now() });
  process.exit(code);
}

if (prompt === null) {
  process.stderr.write('Error: Input must be provided either through stdin or as a prompt argument when using --print\n');
  exit(1, { behaviour: 'no-prompt' });
}

// The session: a resumed one keeps its id and the directives it started with.
const resumeId = flags['--resume'] ?? flags['-r'] ?? null;
const sessionId = resumeId || randomUUID();
const sessionName = `session-${sha(sessionId).slice(0, 32)}`;
const session = readState(sessionName, { directives: null, calls: 0 });
session.calls += 1;

const directiveLines = Array.from(prompt.matchAll(/^[ \t]*stand-in:[ \t]*(\S.*)$/gim), (m) => m[1].trim());
const directives = directiveLines.length > 0 ? directiveLines : (session.directives ?? []);
session.directives = directives;
writeState(sessionName, session);

let cost = DEFAULT_COST;
let delayMs = 0;
let behaviour = null;
let behaviourArg;
for (const directive of directives) {
  const [name, arg] = directive.split(/\s+/);
  const lower = name.toLowerCase();
  if (lower === 'cost') {
    const usd = Number(arg);
    if (Number.isFinite(usd) && usd >= 0) cost = usd;
  } else if (lower === 'delay') {
    delayMs = positiveInt(arg, 0);
  } else if (behaviour === null) {
    behaviour = lower;
    behaviourArg = arg;
  }
}
behaviour ??= 'succeed';
logRecord.behaviour = behaviourArg === undefined ? behaviour : `${behaviour} ${behaviourArg}`;
logRecord.sessionId = sessionId;

const taskLine = /^Task file: .*$/m.exec(prompt)?.[0] ?? prompt;
const taskPath = taskLine.startsWith('Task file: ') ? taskLine.slice('Task file: '.length) : 'the task';
const title = /^Title: (.*)$/m.exec(prompt)?.[1] ?? 'the task';
const completionPromise = /<promise>[^<\n]*<\/promise>/.exec(prompt)?.[0] ?? DEFAULT_PROMISE;
const promptAsksForPromise = /<promise>[^<\n]*<\/promise>/.test(prompt);

function resultObject({ subtype = 'success', isError = false, text, turns = 1 }) {
  return {
    type: 'result',
    subtype,
    is_error: isError,
    duration_ms: Date.now() - startMs,
    duration_api_ms: Math.max(0, Date.now() - startMs - 1),
    num_turns: turns,
    result: text,
    session_id: sessionId,
    total_cost_usd: cost,
    usage: {
      input_tokens: 120,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
      output_tokens: 48,
      server_tool_use: { web_search_requests: 0 },
      service_tier: 'standard',
    },
  };
}

function respond(code, fields, extra = {}) {
  const result = resultObject(fields);
  const text = outputFormat === 'text' ? `${result.result}\n` : `${JSON.stringify(result)}\n`;
  // A pipe is written asynchronously; exiting before the callback could cut the result short.
  process.stdout.write(text, () => exit(code, extra));
}

function succeed(extra = {}, turns = 1) {
  const text = planMode
    ? `Plan for ${taskPath} (stand-in agent, nothing was changed):\n` +
      `1. Read the task note and the files it names.\n2. Do what "${title}" asks.\n3. Report what was done.`
    : `Completed "${title}" from ${taskPath}. (Stand-in agent: nothing was actually changed.)` +
      // A finished agent prints the promise it was asked for, as the prompt tells it to.
      (promptAsksForPromise ? `\n${completionPromise}` : '');
  respond(0, { text, turns }, extra);
}

function failRun(text) {
  respond(1, { subtype: 'error_during_execution', isError: true, text });
}

function positiveInt(value, fallback) {
  const n = Number(value);
  return Number.isInteger(n) && n > 0 ? n : fallback;
}

// `delay <ms>` combines with any behaviour (like `cost`): a slow run of a loop, for tests that act between iterations.
if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));

switch (behaviour) {
  case 'succeed':
    succeed();
    break;
  case 'fail':
    failRun('Simulated failure: the stand-in agent was told to fail.');
    break;
  case 'error-exit-0':
    respond(0, { subtype: 'success', isError: true, text: 'Simulated failure reported with exit code 0.' });
    break;
  case 'garbage':
    process.stdout.write('Thinking about the task...\nthis is not JSON {"type": "result", oops\n', () =>
      exit(0, {}),
    );
    break;
  case 'crash':
    process.stderr.write('stand-in: simulated crash: the agent died without printing a result\n', () => exit(2));
    break;
  case 'hang':
    process.on('SIGTERM', () => {});
    // Logged now: this run never reaches its end.
    writeLog({ endMs: null });
    setInterval(() => {}, 1 << 30);
    break;
  case 'slow':
    setTimeout(() => succeed(), positiveInt(behaviourArg, 1000));
    break;
  case 'fork': {
    // Not detached: it stays in the agent's process group, as a tool's background server would, and it holds the
    // agent's stdout and stderr open.
    const grandchild = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 300000)'], {
      stdio: ['ignore', 'inherit', 'inherit'],
      detached: false,
    });
    grandchild.unref();
    process.stderr.write(`stand-in: grandchild pid ${grandchild.pid}\n`);
    succeed({ grandchildPid: grandchild.pid });
    break;
  }
  case 'fail-once':
  case 'fail-times': {
    const limit = behaviour === 'fail-once' ? 1 : positiveInt(behaviourArg, 1);
    const name = `task-${sha(taskLine).slice(0, 32)}`;
    const calls = readState(name, { calls: 0 }).calls + 1;
    writeState(name, { calls });
    if (calls <= limit) failRun(`Simulated failure ${calls} of ${limit}.`);
    else succeed();
    break;
  }
  case 'rate-limit':
    respond(1, {
      subtype: 'success',
      isError: true,
      text: 'API Error: 429 {"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}',
    });
    break;
  case 'over-budget':
    respond(1, { subtype: 'error_max_budget_usd', isError: true, text: 'Stopped: reached the maximum budget.' });
    break;
  case 'max-turns':
    respond(1, { subtype: 'error_max_turns', isError: true, text: 'Stopped: reached the maximum number of turns.' });
    break;
  case 'promise-on': {
    const target = positiveInt(behaviourArg, 1);
    const text =
      session.calls >= target
        ? `Finished "${title}" on call ${session.calls}.\n${completionPromise}`
        : `Still working on "${title}" (call ${session.calls} of ${target}).`;
    respond(0, { text, turns: session.calls });
    break;
  }
  default:
    process.stderr.write(`stand-in: unknown directive "${behaviour}"\n`, () => exit(3));
}
