import { Command, CommanderError } from 'commander';
import { configCheckCommand } from './commands/config.ts';
import { queueCommand } from './commands/queue.ts';
import { dashboardCommand, healthCommand, metricsCommand } from './commands/observe.ts';
import { resumeCommand, statusCommand, stopCommand } from './commands/control.ts';
import { runCommand } from './commands/run.ts';
import {
  approveCommand,
  rejectCommand,
  taskAddCommand,
  taskCancelCommand,
  taskListCommand,
  taskRetryCommand,
  taskShowCommand,
} from './commands/task.ts';
import { EXIT_USAGE, reportError } from './output.ts';

type Action<O> = (options: O) => number | Promise<number>;

/**
 * Every leaf command takes `--json`; failures are reported once, here, in the form the command was asked to speak,
 * and become the process exit code.
 */
function leaf<O extends { json?: boolean }>(command: Command, action: Action<O>, setExit: (code: number) => void): Command {
  return command.option('--json', 'print machine-readable JSON').action(async (options: O) => {
    try {
      setExit(await action(options));
    } catch (err) {
      setExit(reportError(err, options.json === true));
    }
  });
}

/** A leaf whose first argument is positional (a task id or title). */
function leafWithArg<O extends { json?: boolean }>(
  command: Command,
  action: (arg: string, options: O) => number | Promise<number>,
  setExit: (code: number) => void,
): Command {
  return command.option('--json', 'print machine-readable JSON').action(async (arg: string, options: O) => {
    try {
      setExit(await action(arg, options));
    } catch (err) {
      setExit(reportError(err, options.json === true));
    }
  });
}

const VAULT_HELP = 'the vault folder (default: $FTE_VAULT)';
const CONFIG_HELP = 'settings file (default: $FTE_CONFIG, else <vault>/.fte/orchestrator.yaml)';

function withVault(command: Command): Command {
  return command.option('--vault <dir>', VAULT_HELP).option('--config <file>', CONFIG_HELP);
}

/** Commands that read a running orchestrator's API when there is one, else the vault; or any API with --endpoint. */
function readsFrom(command: Command): Command {
  return withVault(command)
    .option('--endpoint <url>', 'read from this fte API instead of the vault (e.g. http://127.0.0.1:8787)')
    .option('--token <token>', 'bearer token for --endpoint (default: $FTE_API_TOKEN)')
    .option('--auth <mode>', 'token or sigv4 (AWS credentials; the default for an execute-api URL)');
}

/** Commands that change state on the vault, or on any fte API with --endpoint (the cloud's is SigV4-signed). */
function actsOn(command: Command): Command {
  return withVault(command)
    .option('--endpoint <url>', 'act through this fte API instead of on the vault (e.g. the cloud API URL)')
    .option('--token <token>', 'bearer token for --endpoint (default: $FTE_API_TOKEN)')
    .option('--auth <mode>', 'token or sigv4 (AWS credentials; the default for an execute-api URL)');
}

function watchable(command: Command): Command {
  return command
    .option('--watch', 'refresh in place until interrupted')
    .option('--interval <seconds>', 'seconds between refreshes (default: dashboard.refresh_interval, 5)')
    .option('--count <n>', 'stop after n refreshes');
}

export function buildProgram(setExit: (code: number) => void): Command {
  const program = new Command('fte')
    .description('fte: a prioritised queue of work that Claude Code agents carry out, with human approval for risky work')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride();

  const orchestrator = program
    .command('orchestrator')
    .description('run and inspect the orchestrator of a vault')
    .exitOverride();
  leaf(
    watchable(
      readsFrom(
        orchestrator
          .command('queue')
          .description('the waiting tasks in dispatch order: position, score, wait and ETA (read-only)')
          .option('--verbose', 'show the score breakdown and why approval is needed'),
      ),
    ),
    queueCommand,
    setExit,
  );
  leaf(
    readsFrom(
      orchestrator
        .command('metrics')
        .description('throughput, latency, error rate, cost, per type and over time; CPU and memory of the orchestrator and its agents')
        .option('--since <when>', 'window start: a duration back from now (30m, 24h, 7d) or an ISO date/time', '24h'),
    ),
    metricsCommand,
    setExit,
  );
  leaf(
    readsFrom(orchestrator.command('health').description('every health check with value, threshold and verdict; exit 0 healthy, 1 degraded, 2 unhealthy')),
    healthCommand,
    setExit,
  );
  leaf(
    watchable(
      readsFrom(
        orchestrator
          .command('dashboard')
          .description('status, running tasks, queue head, recent completions and key metrics on one screen')
          .option('--since <when>', 'metrics window start (30m, 24h, 7d or ISO)', '24h')
          .option('--web', 'print the link of the web dashboard the running orchestrator serves (it carries the API token)'),
      ),
    ),
    dashboardCommand,
    setExit,
  );

  leaf(
    withVault(orchestrator.command('run').description('run the orchestrator on a vault until stopped (SIGTERM/SIGINT)'))
      .option('--once', 'work until every task is finished or waits on a person, then exit')
      .option('--dry-run', 'show what would run, in what order and why, changing nothing')
      .option('--api-port <port>', 'serve the HTTP API on this port of 127.0.0.1 (default: api.port, 8787; 0 picks a free one)')
      .option('--no-api', 'do not serve the HTTP API'),
    runCommand,
    setExit,
  );
  leaf(
    actsOn(orchestrator.command('stop').description('stop dispatching new tasks (within one loop turn)'))
      .option('--now', 'also stop running agents and put their tasks back in the queue')
      .option('--reason <text>', 'why, shown by status'),
    stopCommand,
    setExit,
  );
  leaf(actsOn(orchestrator.command('resume').description('resume dispatching (also removes the stop file)')), resumeCommand, setExit);
  leaf(readsFrom(orchestrator.command('status').description('what runs, what waits for approval, and whether dispatch is on')), statusCommand, setExit);

  const task = program.command('task').description('add, list, show, retry and cancel tasks').exitOverride();
  leafWithArg(
    actsOn(task.command('add').argument('<title>', 'what to do').description('queue a new task (writes a note into Needs_Action/)'))
      .option('--urgency <level>', 'critical|high|normal|low|whenever or 1-5')
      .option('--deadline <iso>', 'ISO date or date-time')
      .option('--from <email>', 'who asked')
      .option('--type <type>', 'email, payment, code, research, ...')
      .option('--approval <mode>', 'required or auto (policy may still require approval)')
      .option('--body <text>', 'the task description'),
    taskAddCommand,
    setExit,
  );
  leaf(
    withVault(task.command('list').description('list tasks and their states')).option('--state <states>', 'only these states (comma-separated)'),
    taskListCommand,
    setExit,
  );
  leafWithArg(withVault(task.command('show').argument('<id>').description('a task with its runs and history')), taskShowCommand, setExit);
  leafWithArg(withVault(task.command('retry').argument('<id>').description('requeue a failed or expired task from scratch')), taskRetryCommand, setExit);
  leafWithArg(
    withVault(task.command('cancel').argument('<id>').description('withdraw a task (stops its agent if it runs)')).option('--reason <text>', 'why'),
    taskCancelCommand,
    setExit,
  );
  leafWithArg(actsOn(program.command('approve').argument('<id>').description('approve a task waiting in Pending_Approval/')), approveCommand, setExit);
  leafWithArg(
    actsOn(program.command('reject').argument('<id>').description('reject a task (any state before it finishes)')).option('--reason <text>', 'why'),
    rejectCommand,
    setExit,
  );

  const config = program.command('config').description('check and show settings').exitOverride();
  leaf(
    config
      .command('check')
      .description('validate the settings and print them with defaults filled in')
      .option('--config <file>', 'settings file (default: $FTE_CONFIG, else <vault>/.fte/orchestrator.yaml)')
      .option('--vault <dir>', 'the vault whose .fte/orchestrator.yaml to read'),
    configCheckCommand,
    setExit,
  );

  return program;
}

/** Run the CLI on `argv` (as process.argv) and return the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  let exitCode = 0;
  const program = buildProgram((code) => {
    exitCode = code;
  });
  try {
    await program.parseAsync([...argv]);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are not failures; anything else commander rejects is a usage error.
      return err.exitCode === 0 ? 0 : EXIT_USAGE;
    }
    return reportError(err, argv.includes('--json'));
  }
  return exitCode;
}
