import { beforeAll, describe, expect, it } from 'vitest';
import { STATE_NAMES } from '../../lib/cloud/task-state-machine.ts';
import { runnerExitCode } from '../../lib/cloud/runner-exit-codes.ts';
import type { Config } from '../../lib/core/config.ts';
import type { ExecutionInput } from '../../lambda/step-contract.ts';
import { renderDefinition } from './asl.ts';
import type { AslState } from './asl.ts';
import { localMachine } from './local-sfn.ts';
import type { Json, LocalHandler, LocalMachine } from './local-sfn.ts';
import { StepDouble, namedError } from './step-double.ts';
import { TEST_CONFIG_YAML, lambdaConfig, synthFteStack } from './synth.ts';

/**
 * State transitions per task, for the cost section of docs/DEPLOYMENT.md. Standard workflows bill every state entered
 * (Task, Choice, Pass, Succeed, Fail alike), so the synthesized definition is executed for each path a task takes and
 * the entered states counted. If the machine changes, these numbers change, and so must the document.
 */

let config: Config;
let machine: LocalMachine;
let stepTasks: string[];

beforeAll(() => {
  const { template } = synthFteStack({ configYaml: TEST_CONFIG_YAML });
  config = lambdaConfig(template);
  const definition = renderDefinition(template);
  machine = localMachine(definition);
  stepTasks = Object.entries(definition.States)
    .filter(([, s]: [string, AslState]) => s.Type === 'Task' && (s.Resource ?? '').includes(':states:::lambda:invoke'))
    .map(([name]) => name);
}, 60_000);

function stoppedTask(exitCode: number): Json {
  return { Containers: [{ Name: 'runner', ExitCode: exitCode, LastStatus: 'STOPPED' }], StoppedReason: 'Essential container in task exited' };
}

function payloadOf(input: Json): unknown {
  return input !== null && typeof input === 'object' && !Array.isArray(input) ? input['Payload'] : undefined;
}

interface Path {
  readonly approvalRequired: boolean;
  readonly stopped?: boolean;
  readonly answer?: 'approve' | 'reject' | 'timeout';
  /** How many runs fail (agent error, retryable) before one succeeds; more than max_attempts exhausts the retries. */
  readonly failures?: number;
}

/** The states one execution enters along a path. */
async function visit(path: Path): Promise<string[]> {
  const double = new StepDouble({
    config,
    taskId: 'task-1',
    approvalRequired: path.approvalRequired,
    stopFlag: () => path.stopped === true,
  });
  let failures = path.failures ?? 0;
  const lambda: LocalHandler = (input) => ({ StatusCode: 200, Payload: double.handle(payloadOf(input)) as unknown as Json });
  const run: LocalHandler = () => {
    if (failures > 0) {
      failures -= 1;
      throw namedError('States.TaskFailed', JSON.stringify(stoppedTask(runnerExitCode('agent_error'))));
    }
    return stoppedTask(0);
  };
  const handlers: Record<string, LocalHandler> = { [STATE_NAMES.runPlan]: run, [STATE_NAMES.runExecute]: run };
  for (const name of stepTasks) handlers[name] = lambda;
  handlers[STATE_NAMES.awaitApproval] = (input): Json => {
    double.handle(payloadOf(input));
    if (path.answer === 'timeout') throw namedError('States.Timeout', 'the approval wait timed out');
    const decision = path.answer ?? 'approve';
    double.humanDoes(decision === 'approve' ? { type: 'approve', by: 'operator' } : { type: 'reject', by: 'operator', reason: 'no' });
    return { decision, by: 'operator' };
  };
  const input: ExecutionInput = {
    taskId: 'task-1',
    attempt: 1,
    state: 'needs_action',
    approvalRequired: path.approvalRequired,
    firstEvent: path.approvalRequired ? 'plan' : 'execute',
  };
  const result = await machine.run(input as unknown as Json, { handlers });
  return result.visited;
}

describe('state transitions per task (docs/DEPLOYMENT.md, cost)', () => {
  it('match the numbers the cost section prices', async () => {
    const paths: Record<string, Path> = {
      'no approval, succeeds': { approvalRequired: false },
      'approval, approved, succeeds': { approvalRequired: true },
      'approval, rejected': { approvalRequired: true, answer: 'reject' },
      'approval, expired': { approvalRequired: true, answer: 'timeout' },
      'stop flag set at start': { approvalRequired: false, stopped: true },
      'no approval, one failed run, then succeeds': { approvalRequired: false, failures: 1 },
      'no approval, every run fails (max_attempts 3)': { approvalRequired: false, failures: 99 },
    };
    const counts: Record<string, number> = {};
    const ends: Record<string, string | undefined> = {};
    for (const [name, path] of Object.entries(paths)) {
      const visited = await visit(path);
      counts[name] = visited.length;
      ends[name] = visited.at(-1);
    }
    console.info('State transitions per path:', JSON.stringify(counts));
    expect(ends['no approval, succeeds']).toBe(STATE_NAMES.done);
    expect(ends['approval, approved, succeeds']).toBe(STATE_NAMES.done);
    expect(ends['approval, rejected']).toBe(STATE_NAMES.rejected);
    expect(ends['approval, expired']).toBe(STATE_NAMES.expired);
    expect(ends['stop flag set at start']).toBe(STATE_NAMES.stopped);
    expect(ends['no approval, one failed run, then succeeds']).toBe(STATE_NAMES.done);
    expect(ends['no approval, every run fails (max_attempts 3)']).toBe(STATE_NAMES.failed);
    expect(counts).toEqual({
      'no approval, succeeds': 7,
      'approval, approved, succeeds': 16,
      'approval, rejected': 9,
      'approval, expired': 9,
      'stop flag set at start': 3,
      'no approval, one failed run, then succeeds': 21,
      'no approval, every run fails (max_attempts 3)': 40,
    });
  });
});
