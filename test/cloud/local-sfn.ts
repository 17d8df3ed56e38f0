import { StateMachine } from 'aws-local-stepfunctions';
import type { RunOptions, StateMachineDefinition } from 'aws-local-stepfunctions';
import type { AslDefinition } from './asl.ts';

/**
 * Running a synthesized definition with aws-local-stepfunctions. The package targets Node 22 and calls
 * Promise.withResolvers (Node 22+); this is the three-line polyfill that lets it run on Node 20.
 */
interface PromiseWithResolversConstructor {
  withResolvers?: <T>() => { promise: Promise<T>; resolve: (value: T) => void; reject: (reason: unknown) => void };
}
const promiseConstructor = Promise as unknown as PromiseWithResolversConstructor;
if (typeof promiseConstructor.withResolvers !== 'function') {
  promiseConstructor.withResolvers = <T>() => {
    let resolve!: (value: T) => void;
    let reject!: (reason: unknown) => void;
    const promise = new Promise<T>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Handlers = NonNullable<NonNullable<RunOptions['overrides']>['taskResourceLocalHandlers']>;
export type LocalHandler = (input: Json) => Promise<Json> | Json;

export interface LocalRun {
  /** The execution's output, or null when it failed. */
  readonly output: Json;
  /** Set when the execution failed: the error name and cause its Fail state (or an uncaught error) gave. */
  readonly error: { name: string; message: string } | null;
  /** Every state entered, in order. */
  readonly visited: string[];
}

export interface LocalRunOptions {
  /** One handler per Task state name; a Task without one would call real AWS, so the run refuses to start. */
  readonly handlers: Readonly<Record<string, LocalHandler>>;
  readonly taskToken?: string;
}

/**
 * The context object. The executor fills in only `Execution.Input` and `StartTime`; the machine also reads the execution
 * id and `$$.State.EnteredTime` (for the transition's step key), which Step Functions keeps the same across retries of
 * one state entry and which differs between entries — here a fresh value on every read, which is the same as long as
 * no step is retried after its write.
 */
function localContext(token: string): Record<string, unknown> {
  let entries = 0;
  return {
    Execution: { Id: 'arn:aws:states:us-east-1:123456789012:execution:local:local-run' },
    State: {
      Name: 'local',
      get EnteredTime(): string {
        entries += 1;
        return new Date(Date.UTC(2026, 0, 1) + entries).toISOString();
      },
    },
    Task: { Token: token },
  };
}

/** A definition ready to run many times (building it validates the definition once). */
export interface LocalMachine {
  run(input: Json, options: LocalRunOptions): Promise<LocalRun>;
}

/**
 * Prepare `definition` for local execution. Retries pause 0 ms and Wait states 0 ms: the schedule is asserted on the
 * definition itself; the executor checks the paths it takes.
 */
export function localMachine(definition: AslDefinition): LocalMachine {
  const taskStates = Object.entries(definition.States).filter(([, s]) => s.Type === 'Task').map(([name]) => name);
  // The execution-wide TimeoutSeconds (days) is beyond setTimeout's range and would fire at once; it is asserted on
  // the definition instead.
  const { TimeoutSeconds: _timeout, ...runnable } = definition;
  const machine = new StateMachine(runnable as unknown as StateMachineDefinition, { validationOptions: { checkArn: false } });
  const retryIntervalOverrides = Object.fromEntries(
    Object.entries(definition.States).filter(([, s]) => (s.Retry ?? []).length > 0).map(([name]) => [name, 0]),
  );
  const waitTimeOverrides = Object.fromEntries(
    Object.entries(definition.States).filter(([, s]) => s.Type === 'Wait').map(([name]) => [name, 0]),
  );

  return {
    async run(input, options) {
      const unbound = taskStates.filter((name) => options.handlers[name] === undefined);
      // A Task without a local handler would be sent to the real Lambda service.
      if (unbound.length > 0) throw new Error(`Task states without a local handler: ${unbound.join(', ')}`);
      const execution = machine.run(input, {
        overrides: {
          taskResourceLocalHandlers: options.handlers as unknown as Handlers,
          retryIntervalOverrides,
          waitTimeOverrides,
        },
        context: localContext(options.taskToken ?? 'local-task-token'),
      });
      const visited: string[] = [];
      const logs = (async () => {
        for await (const event of execution.eventLogs) {
          if (event.type === 'StateEntered') visited.push(event.state.name);
        }
      })();
      try {
        const output = (await execution.result) as Json;
        await logs;
        return { output, error: null, visited };
      } catch (err) {
        await logs.catch(() => undefined);
        if (!(err instanceof Error)) throw err;
        const cause = (err as Error & { cause?: unknown }).cause;
        const name = cause instanceof Error ? cause.name : err.name;
        return { output: null, error: { name, message: cause instanceof Error ? cause.message : err.message }, visited };
      }
    },
  };
}

export type { Json };
