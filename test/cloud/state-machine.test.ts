import { beforeAll, describe, expect, it } from 'vitest';
import { RECORD_STATES, STATE_NAMES, runFailedStateName } from '../../lib/cloud/task-state-machine.ts';
import { RUNNER_PAUSED_EXIT_CODE, runnerExitCode } from '../../lib/cloud/runner-exit-codes.ts';
import type { Config } from '../../lib/core/config.ts';
import { ERROR_CLASSES } from '../../lib/core/retry.ts';
import { TRANSITIONS } from '../../lib/core/state-machine.ts';
import type { TaskEventType, TaskState } from '../../lib/core/state-machine.ts';
import type { ExecutionInput } from '../../lambda/step-contract.ts';
import { renderDefinition, successors } from './asl.ts';
import type { AslDefinition, AslState } from './asl.ts';
import { localMachine } from './local-sfn.ts';
import type { Json, LocalHandler, LocalMachine } from './local-sfn.ts';
import { StepDouble, namedError } from './step-double.ts';
import type { RecordedTransition } from './step-double.ts';
import { TEST_CONFIG_YAML, lambdaConfig, synthFteStack } from './synth.ts';

/**
 * The synthesized state machine against the core transition table (lib/core/state-machine.ts). The definition is taken
 * from the template `cdk synth` produces and EXECUTED with aws-local-stepfunctions: here against an environment that
 * may answer every question every way (stop flag, approval, run outcome, retry decision), to derive every transition
 * the machine can record; test/cloud/executions.test.ts runs the concrete scenarios against the real step handler.
 */

/**
 * Transitions of the table the machine never records, and why. Everything else an engine or a timer does must be
 * recordable by the machine — the exploration below proves it is.
 */
const NOT_RECORDED_BY_THE_MACHINE: Readonly<Partial<Record<TaskEventType, string>>> = {
  approve: 'a human decision: the API records it when it answers the approval wait; the machine only reads the answer',
  reject: 'a human decision, recorded by the API like approve; the machine ends at Rejected',
  cancel: 'an operator action (API or CLI) at any time; the machine notices at its next step and ends at Superseded',
  requeue: 'an operator revives a failed or expired task; the scheduler then starts a new execution',
};

/** Which task states each terminal state of the machine may leave a task in. */
const TERMINAL_TASK_STATES: Readonly<Record<string, readonly TaskState[]>> = {
  [STATE_NAMES.done]: ['done'],
  [STATE_NAMES.failed]: ['failed'],
  [STATE_NAMES.expired]: ['expired'],
  [STATE_NAMES.rejected]: ['rejected'],
  [STATE_NAMES.stopped]: ['needs_action', 'approved'],
  [STATE_NAMES.paused]: ['needs_action', 'approved'],
  [STATE_NAMES.superseded]: ['cancelled'],
};

let config: Config;
let definition: AslDefinition;
let machine: LocalMachine;
/** Every state any execution in this file entered. */
const visitedAnywhere = new Set<string>();

beforeAll(() => {
  const { template } = synthFteStack({ configYaml: TEST_CONFIG_YAML });
  config = lambdaConfig(template);
  definition = renderDefinition(template);
  machine = localMachine(definition);
}, 60_000);

function state(name: string): AslState {
  const found = definition.States[name];
  if (found === undefined) throw new Error(`no state ${name}`);
  return found;
}

function stepPayload(s: AslState): Record<string, unknown> | null {
  const payload = s.Parameters?.['Payload'];
  return payload !== null && typeof payload === 'object' ? (payload as Record<string, unknown>) : null;
}

const isStepTask = (s: AslState): boolean =>
  s.Type === 'Task' && (s.Resource ?? '').includes(':states:::lambda:invoke');
const isRunTask = (s: AslState): boolean => s.Type === 'Task' && s.Resource === 'arn:aws:states:::ecs:runTask.sync';

// ---- The environment that answers every way

/** Picks answers from a script and remembers how many answers each question had, to enumerate every path. */
class Chooser {
  private readonly trace: { choice: number; count: number }[] = [];

  constructor(private readonly script: readonly number[]) {}

  pick<T>(options: readonly T[]): T {
    const choice = this.script[this.trace.length] ?? 0;
    this.trace.push({ choice, count: options.length });
    return options[choice] as T;
  }

  /** The script of the next path in depth-first order, or null when every path has run. */
  next(): number[] | null {
    for (let k = this.trace.length - 1; k >= 0; k--) {
      const { choice, count } = this.trace[k] as { choice: number; count: number };
      if (choice + 1 < count) return [...this.trace.slice(0, k).map((t) => t.choice), choice + 1];
    }
    return null;
  }
}

const APPROVAL_ANSWERS = ['approve', 'reject', 'timeout', 'unreadable', 'wait-fails'] as const;
/** `pauses`: the persistence loop stopped between iterations (stop flag, daily budget) and exited with the pause code. */
const RUN_OUTCOMES = ['succeeds', 'fails', 'pauses', 'operator-cancels'] as const;

function stoppedTask(exitCode: number): Json {
  return { Containers: [{ Name: 'runner', ExitCode: exitCode, LastStatus: 'STOPPED' }], StoppedReason: 'Essential container in task exited' };
}

/** How runTask.sync reports a container that exited non-zero: States.TaskFailed, the task description as the cause. */
function containerFailed(exitCode: number): Error {
  return namedError('States.TaskFailed', JSON.stringify(stoppedTask(exitCode)));
}

interface Exploration {
  readonly executions: number;
  readonly recorded: Map<string, RecordedTransition>;
  readonly violations: string[];
}

const START_CASES: readonly { name: string; approvalRequired: boolean; approved: boolean }[] = [
  { name: 'needs no approval', approvalRequired: false, approved: false },
  { name: 'needs approval', approvalRequired: true, approved: false },
  { name: 'restarts approved', approvalRequired: true, approved: true },
];

async function explore(): Promise<Exploration> {
  const recorded = new Map<string, RecordedTransition>();
  const violations: string[] = [];
  let executions = 0;
  for (const start of START_CASES) {
    let script: number[] | null = [];
    while (script !== null) {
      const chooser: Chooser = new Chooser(script);
      const double = new StepDouble({
        config,
        taskId: 'task-1',
        approvalRequired: start.approvalRequired,
        approved: start.approved,
        stopFlag: () => chooser.pick([false, true]),
        // Bounded: a retry only while attempts remain, so every loop ends.
        retryChoice: (status) => status.attempts < config.retry.max_attempts && chooser.pick([true, false]),
      });
      const where = () => `[${start.name}; script ${JSON.stringify(script)}]`;
      const lambda: LocalHandler = (input) => ({ StatusCode: 200, Payload: double.handle(payloadOf(input)) as unknown as Json });
      const run = (kind: 'planning' | 'executing'): LocalHandler => () => {
        if (double.status.state !== kind) violations.push(`${where()} a run started while the task was ${double.status.state}`);
        if (kind === 'executing' && double.status.approvalRequired && double.status.approval === null) {
          violations.push(`${where()} an execution started without an approval`);
        }
        const outcome = chooser.pick(RUN_OUTCOMES);
        if (outcome === 'fails') throw containerFailed(runnerExitCode('agent_error'));
        if (outcome === 'pauses') throw containerFailed(RUNNER_PAUSED_EXIT_CODE);
        if (outcome === 'operator-cancels') double.humanDoes({ type: 'cancel', by: 'operator' });
        return stoppedTask(0);
      };
      const handlers: Record<string, LocalHandler> = {};
      for (const [name, s] of Object.entries(definition.States)) if (isStepTask(s)) handlers[name] = lambda;
      handlers[STATE_NAMES.runPlan] = run('planning');
      handlers[STATE_NAMES.runExecute] = run('executing');
      handlers[STATE_NAMES.awaitApproval] = (input): Json => {
        const answer = chooser.pick(APPROVAL_ANSWERS);
        // Not a transient error (those are retried): the wait itself failed, so nobody can answer it.
        if (answer === 'wait-fails') throw namedError('NotAwaitingApprovalError', 'the token could not be stored');
        double.handle(payloadOf(input));
        switch (answer) {
          case 'approve':
            double.humanDoes({ type: 'approve', by: 'operator' });
            return { decision: 'approve', by: 'operator' };
          case 'reject':
            double.humanDoes({ type: 'reject', by: 'operator', reason: 'no' });
            return { decision: 'reject', by: 'operator' };
          case 'timeout':
            throw namedError('States.Timeout', 'the approval wait timed out');
          case 'unreadable':
            return { answer: 'maybe' };
        }
        throw new Error(`unknown answer ${String(answer)}`);
      };

      const input: ExecutionInput = {
        taskId: 'task-1',
        attempt: 1,
        state: start.approved ? 'approved' : 'needs_action',
        approvalRequired: start.approvalRequired,
        firstEvent: start.approvalRequired && !start.approved ? 'plan' : 'execute',
      };
      const result = await machine.run(input as unknown as Json, { handlers });
      executions += 1;
      for (const name of result.visited) visitedAnywhere.add(name);
      for (const t of double.recorded) recorded.set(`${t.from} -${t.event}-> ${t.to}`, t);
      for (const refusal of double.refused) {
        if (refusal.from !== 'cancelled') violations.push(`${where()} the core refused ${refusal.event} from ${refusal.from}`);
      }
      const last = result.visited.at(-1) ?? '';
      const allowed = TERMINAL_TASK_STATES[last];
      if (allowed === undefined) violations.push(`${where()} ended in ${last}, which is not a terminal state`);
      else if (!allowed.includes(double.status.state)) {
        violations.push(`${where()} ended in ${last} with the task ${double.status.state}`);
      }
      if ((result.error !== null) !== (last === STATE_NAMES.failed)) {
        violations.push(`${where()} ended in ${last} with execution error ${JSON.stringify(result.error)}`);
      }
      script = chooser.next();
    }
  }
  return { executions, recorded, violations };
}

function payloadOf(input: Json): unknown {
  return input !== null && typeof input === 'object' && !Array.isArray(input) ? input['Payload'] : undefined;
}

// ---- The tests

describe('the synthesized definition', () => {
  it('is JSONPath, and every Task is the step Lambda or a Fargate run', () => {
    expect(definition.QueryLanguage ?? 'JSONPath').toBe('JSONPath');
    const actions = new Set(['transition', 'check_stop', 'await_approval', 'decide_retry']);
    for (const [name, s] of Object.entries(definition.States)) {
      if (s.Type !== 'Task') continue;
      if (isRunTask(s)) {
        expect([STATE_NAMES.runPlan, STATE_NAMES.runExecute]).toContain(name);
        continue;
      }
      expect(isStepTask(s), name).toBe(true);
      expect(String(s.Parameters?.['FunctionName']), name).toMatch(/function:Step/);
      expect(actions.has(String(stepPayload(s)?.['action'])), name).toBe(true);
    }
  });

  it('records every state change with a transition step, each naming its event', () => {
    const found: Record<string, string> = {};
    for (const [name, s] of Object.entries(definition.States)) {
      const payload = stepPayload(s);
      if (payload?.['action'] !== 'transition') continue;
      const event = payload['event'] as { type?: string } | undefined;
      found[name] = event?.type ?? (payload['event.$'] === '$.decision.event' ? 'decided' : 'unknown');
      // A retried step must find its own write, not fail as a stale duplicate.
      expect(String(payload['stepKey.$']), name).toContain('$$.State.EnteredTime');
    }
    expect(found).toEqual(RECORD_STATES);
  });

  it('passes TASK_ID and MODE to the runner container', () => {
    for (const [name, mode] of [[STATE_NAMES.runPlan, 'plan'], [STATE_NAMES.runExecute, 'execute']] as const) {
      const overrides = (state(name).Parameters?.['Overrides'] as { ContainerOverrides: { Name: string; Environment: Record<string, string>[] }[] })
        .ContainerOverrides;
      expect(overrides).toEqual([
        { Name: 'runner', Environment: [{ Name: 'TASK_ID', 'Value.$': '$.taskId' }, { Name: 'MODE', Value: mode }] },
      ]);
    }
  });

  it('lets no approval wait hang: it times out after approval.timeout into an expiry, as does any failure of it', () => {
    const waits = Object.entries(definition.States).filter(([, s]) => (s.Resource ?? '').endsWith('.waitForTaskToken'));
    expect(waits.map(([name]) => name)).toEqual([STATE_NAMES.awaitApproval]);
    for (const [, s] of waits) {
      expect(s.TimeoutSeconds).toBe(config.approval.timeout);
      expect(stepPayload(s)?.['token.$']).toBe('$$.Task.Token');
      expect(s.Catch).toEqual([
        { ErrorEquals: ['States.Timeout'], ResultPath: '$.caught', Next: STATE_NAMES.recordExpire },
        { ErrorEquals: ['States.ALL'], ResultPath: '$.caught', Next: STATE_NAMES.recordExpire },
      ]);
    }
    expect(state(STATE_NAMES.recordExpire).Next).toBe(STATE_NAMES.expired);
    // The whole execution is bounded too, and by less than the year Step Functions would allow.
    expect(definition.TimeoutSeconds).toBeGreaterThan(config.approval.timeout);
    expect(definition.TimeoutSeconds).toBeLessThanOrEqual(365 * 24 * 3600);
  });

  it('reads the stop flag right before every execution: CheckStop is the only Task on any way into RecordExecute', () => {
    const predecessors = new Map<string, string[]>();
    for (const [name, s] of Object.entries(definition.States)) {
      for (const next of successors(s)) predecessors.set(next, [...(predecessors.get(next) ?? []), name]);
    }
    const lastTasks = new Set<string>();
    const seen = new Set<string>();
    const walk = (name: string): void => {
      for (const before of predecessors.get(name) ?? []) {
        if (seen.has(before)) continue;
        seen.add(before);
        if (state(before).Type === 'Task') lastTasks.add(before);
        else walk(before);
      }
    };
    walk(STATE_NAMES.recordExecute);
    expect([...lastTasks]).toEqual([STATE_NAMES.checkStop]);
    expect(state(STATE_NAMES.dispatch).Choices?.[0]).toEqual({
      Variable: '$.stop.stopped',
      BooleanEquals: true,
      Next: STATE_NAMES.stopped,
    });
  });

  it('retries transient AWS errors per class with backoff, a delay cap and full jitter, never a failed run', () => {
    for (const [name, s] of Object.entries(definition.States)) {
      if (s.Type !== 'Task') continue;
      const retriers = s.Retry ?? [];
      const expected = isRunTask(s)
        ? ['ECS.AmazonECSException', 'ECS.ServerException', 'ECS.ThrottlingException']
        : ['Lambda.ServiceException', 'Lambda.TooManyRequestsException', 'Lambda.SdkClientException'];
      for (const error of expected) {
        const retrier = retriers.find((r) => r.ErrorEquals.includes(error));
        expect(retrier, `${name} retries ${error}`).toBeDefined();
        expect(retrier?.BackoffRate, name).toBeGreaterThan(1);
        expect(retrier?.MaxDelaySeconds, name).toBeGreaterThan(0);
        expect(retrier?.JitterStrategy, name).toBe('FULL');
      }
      // Attempts of a run belong to the core retry policy (DecideRetry), so no blanket retrier may repeat a run.
      for (const retrier of retriers) {
        expect(retrier.ErrorEquals, name).not.toContain('States.ALL');
        expect(retrier.ErrorEquals, name).not.toContain('States.TaskFailed');
        expect(retrier.ErrorEquals, name).not.toContain('States.Timeout');
      }
    }
  });

  it('maps each runner exit code to its error class (lib/cloud/runner-exit-codes.ts)', () => {
    const rules = state(STATE_NAMES.classifyExitCode).Choices ?? [];
    for (const errorClass of ERROR_CLASSES) {
      const rule = rules.find((r) => r['NumericEquals'] === runnerExitCode(errorClass));
      expect(rule?.Next, errorClass).toBe(runFailedStateName(errorClass));
      expect(state(runFailedStateName(errorClass)).Parameters?.['class']).toBe(errorClass);
    }
  });
});

describe('the transitions the machine can record', () => {
  let exploration: Exploration;

  beforeAll(async () => {
    exploration = await explore();
  }, 120_000);

  it('were derived by executing every path: every answer to every question, every retry decision', () => {
    // The count follows from the graph (the retry bound keeps it finite); the coverage checks below are the proof.
    expect(exploration.executions).toBeGreaterThan(50);
    expect(exploration.executions).toBeLessThan(20_000);
    console.info(`explored ${exploration.executions} executions; the machine recorded ${exploration.recorded.size} distinct transitions`);
  });

  it('never tries a transition the core refuses, and ends every path with the task in the matching state', () => {
    expect(exploration.violations).toEqual([]);
  });

  it('are all in the core table', () => {
    for (const t of exploration.recorded.values()) {
      expect(TRANSITIONS.some((d) => d.from === t.from && d.event === t.event && d.to === t.to), `${t.from} -${t.event}-> ${t.to}`).toBe(true);
    }
  });

  it('cover every engine and timer transition of the table, interrupt (a paused loop) included', () => {
    const notRecorded = new Set(Object.keys(NOT_RECORDED_BY_THE_MACHINE));
    const expected = TRANSITIONS.filter((t) => !notRecorded.has(t.event)).map((t) => `${t.from} -${t.event}-> ${t.to}`);
    expect([...exploration.recorded.keys()].sort()).toEqual([...new Set(expected)].sort());
    // The exclusions are exactly the human transitions.
    const human = new Set(TRANSITIONS.filter((t) => t.actor === 'human').map((t) => t.event));
    expect([...notRecorded].sort()).toEqual([...human].sort());
    expect([...exploration.recorded.values()].filter((t) => t.event === 'interrupt').map((t) => `${t.from}>${t.to}`).sort()).toEqual([
      'executing>approved',
      'executing>needs_action',
      'planning>needs_action',
    ]);
  });

  it('leave unvisited only the ways a run can fail that the scenarios cover', () => {
    const classification = new Set<string>([
      STATE_NAMES.runTimedOut,
      STATE_NAMES.runErrored,
      STATE_NAMES.runLost,
      STATE_NAMES.runExitedAbnormally,
      ...ERROR_CLASSES.filter((c) => c !== 'agent_error').map(runFailedStateName),
    ]);
    const unvisited = Object.keys(definition.States).filter((name) => !visitedAnywhere.has(name));
    expect(unvisited.filter((name) => !classification.has(name))).toEqual([]);
  });
});

describe('failure classification', () => {
  /** Run a task that needs no approval whose one execution run ends as `run` does; return what DecideRetry got. */
  async function classify(run: LocalHandler): Promise<{ class: string; message: string }> {
    const errors: { class: string; message: string }[] = [];
    const double = new StepDouble({ config, taskId: 'task-1', approvalRequired: false, retryChoice: () => false });
    const handlers: Record<string, LocalHandler> = {};
    for (const [name, s] of Object.entries(definition.States)) {
      if (!isStepTask(s)) continue;
      handlers[name] = (input) => {
        const payload = payloadOf(input) as { action?: string; error?: { class: string; message: string } };
        if (payload.action === 'decide_retry' && payload.error !== undefined) errors.push(payload.error);
        return { StatusCode: 200, Payload: double.handle(payload) as unknown as Json };
      };
    }
    handlers[STATE_NAMES.runExecute] = run;
    handlers[STATE_NAMES.runPlan] = run;
    const input: ExecutionInput = { taskId: 'task-1', attempt: 1, state: 'needs_action', approvalRequired: false, firstEvent: 'execute' };
    const result = await machine.run(input as unknown as Json, { handlers });
    for (const name of result.visited) visitedAnywhere.add(name);
    expect(result.error?.name).toBe('TaskFailed');
    expect(double.status.state).toBe('failed');
    expect(errors).toHaveLength(1);
    return errors[0] as { class: string; message: string };
  }

  it('takes the class the runner chose from its exit code, for every class', async () => {
    for (const errorClass of ERROR_CLASSES) {
      const error = await classify(() => {
        throw containerFailed(runnerExitCode(errorClass));
      });
      expect(error.class).toBe(errorClass);
    }
  });

  it('calls an unknown exit code, a container without one, or a non-zero exit reported as success a crash', async () => {
    expect(await classify(() => { throw containerFailed(137); })).toEqual({ class: 'crash', message: 'the runner container exited with code 137' });
    expect((await classify(() => { throw namedError('States.TaskFailed', JSON.stringify({ Containers: [{ Name: 'runner' }] })); })).message)
      .toMatch(/without an exit code/);
    expect(await classify(() => stoppedTask(3))).toEqual({ class: 'crash', message: 'the runner container exited with code 3' });
    expect((await classify(() => ({ Containers: [] }))).class).toBe('crash');
  });

  it('calls a run past its time limit a timeout, and a run ECS could not start a crash naming the error', async () => {
    expect((await classify(() => { throw namedError('States.Timeout', ''); })).class).toBe('timeout');
    const notStarted = await classify(() => { throw namedError('ECS.AccessDeniedException', 'not allowed'); });
    expect(notStarted).toEqual({ class: 'crash', message: 'the run could not complete: ECS.AccessDeniedException' });
    // A cause that is not a task description is never parsed (StringToJson on it would end the execution uncaught).
    expect((await classify(() => { throw namedError('States.TaskFailed', 'Task failed to start'); })).class).toBe('crash');
  });

  it('leaves no state of the definition unvisited by this file', () => {
    expect(Object.keys(definition.States).filter((name) => !visitedAnywhere.has(name))).toEqual([]);
  });
});
