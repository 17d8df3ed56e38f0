import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type {
  AddTaskRequest,
  AddTaskResponse,
  InvalidNote,
  ResumeResponse,
  StopResponse,
  TaskActionResponse,
} from '../app/contracts.ts';
import type { KnownTasks, NoteScan, ReadSources } from '../app/reads.ts';
import { taskToWire } from '../app/wire.ts';
import { combineBackend, storeReads, type ApiActions, type ApiBackend, type ApiReads, type Caller } from '../api/backend.ts';
import type { Config } from '../core/config.ts';
import { DEFAULT_PARSE_LIMITS, parseTaskNote } from '../core/parse-task.ts';
import type { TaskRecord, TaskStore } from '../core/store.ts';
import type { TaskDoc } from '../core/task.ts';
import { folderOf } from '../core/vault-layout.ts';
import { requestStopNow } from './engine.ts';
import { MemoryTaskStore } from './memory-store.ts';
import { listNoteIds, readNote } from './notes.ts';
import { ResourceSampler } from './resources.ts';
import { SqliteTaskStore } from './sqlite-store.ts';
import type { TaskService } from './task-service.ts';
import { buildTaskNote, slugFromTitle } from './task-note.ts';
import { Vault } from './vault.ts';
import { processIsAlive } from './process-group.ts';

/**
 * The local runtime's ApiBackend: reads from the vault's store plus what only a machine with the vault can see (the
 * stop file, notes not admitted yet, the agents' processes), writes through TaskService so a task moves in the store
 * and in the vault exactly as `fte approve` or a file move would move it.
 */

export const DB_FILE = 'fte.db';

/** The pid of the orchestrator holding the vault's lock, if that process is alive. */
export function liveOrchestratorPid(stateDir: string): number | null {
  let pid: number;
  try {
    pid = Number(readFileSync(join(stateDir, 'orchestrator.pid'), 'utf8').split('\n')[0]);
  } catch {
    return null;
  }
  return Number.isInteger(pid) && pid > 0 && processIsAlive(pid) ? pid : null;
}

/** Parse the notes of Needs_Action/ the store does not know, read-only: what an orchestrator would admit next. */
export async function scanUnadmittedNotes(vaultDir: string, known: KnownTasks): Promise<NoteScan> {
  const folder = join(vaultDir, 'Needs_Action');
  const docs: TaskDoc[] = [];
  const invalid: InvalidNote[] = [];
  const ids = listNoteIds(folder);
  const stored = await known(ids);
  for (const id of ids) {
    if (stored.has(id)) continue;
    const note = readNote(folder, id, DEFAULT_PARSE_LIMITS.maxBytes);
    if (note === null) continue;
    const parsed = parseTaskNote({ id, content: note.content, fallbackCreated: note.mtime });
    if (parsed.ok) docs.push(parsed.task);
    else invalid.push({ id, error: parsed.error.message, reason: parsed.error.reason });
  }
  return { docs, invalid };
}

export interface LocalSourcesOptions {
  readonly vaultDir: string;
  readonly config: Config;
  readonly store: TaskStore;
  readonly clock?: () => Date;
  /** Set when the orchestrator itself serves: its own pid, known without reading the lock file. */
  readonly orchestratorPid?: number;
  readonly sampler?: ResourceSampler;
}

export function localReadSources(options: LocalSourcesOptions): ReadSources {
  const vault = new Vault(options.vaultDir);
  const { config } = options;
  const clock = options.clock ?? (() => new Date());
  const sampler = options.sampler ?? new ResourceSampler(vault.stateDir);
  const ownPid = options.orchestratorPid;
  return {
    store: options.store,
    config,
    clock,
    location: vault.root,
    stopFilePresent: () => vault.stopFilePresent(config.orchestrator.stop_hook_file),
    orchestratorProcess: () => {
      if (ownPid !== undefined) return { running: true, pid: ownPid };
      const pid = liveOrchestratorPid(vault.stateDir);
      return { running: pid !== null, pid };
    },
    resources: () => sampler.sample({ now: clock(), ...(ownPid !== undefined ? { orchestratorPid: ownPid } : {}) }),
    unadmittedNotes: (known) => scanUnadmittedNotes(vault.root, known),
    taskLocation: (record: TaskRecord) => {
      const folder = folderOf(record.state);
      return { folder, notePath: vault.notePath(folder, record.id) };
    },
  };
}

/** The write side over TaskService. `onChange` wakes an orchestrator in the same process (Engine.poke). */
export class LocalActions implements ApiActions {
  constructor(
    private readonly service: TaskService,
    private readonly onChange: () => void = () => {},
    private readonly clock: () => Date = () => new Date(),
  ) {}

  private action(record: TaskRecord): TaskActionResponse {
    this.onChange();
    return { id: record.id, state: record.state, task: taskToWire(record) };
  }

  /**
   * Write the note into Needs_Action/ and admit it. The note is parsed before it is written, so a bad field (a
   * deadline that is no date, a sender without an address) is refused with TaskParseError and leaves no file behind.
   */
  async addTask(input: AddTaskRequest, _caller: Caller): Promise<AddTaskResponse> {
    const now = this.clock();
    const content = buildTaskNote(input, now);
    const check = parseTaskNote({ id: 'task', content: Buffer.from(content, 'utf8'), fallbackCreated: now });
    if (!check.ok) throw check.error;
    const { vault } = this.service;
    const id = vault.freeName(slugFromTitle(input.title));
    vault.create('Needs_Action', id, content);
    const result = await this.service.admit(id);
    if (result.kind === 'quarantined') throw result.error;
    // 'known' or 'gone': an orchestrator in this process or another one admitted the note first. Either way the task
    // is in the store now, under the id the admission gave it.
    const record = await this.service.mustGet(result.kind === 'admitted' ? result.id : id);
    this.onChange();
    return { id: record.id, task: taskToWire(record) };
  }

  async approve(id: string, caller: Caller): Promise<TaskActionResponse> {
    return this.action(await this.service.approve(id, caller.actor));
  }

  async reject(id: string, caller: Caller, reason?: string): Promise<TaskActionResponse> {
    return this.action(await this.service.reject(id, caller.actor, reason));
  }

  async stop(options: { now: boolean; reason?: string }, caller: Caller): Promise<StopResponse> {
    const reason = options.reason ?? `${caller.actor} stopped dispatch${options.now ? ' and running agents' : ''}`;
    const control = await this.service.store.setStop(true, reason, this.clock());
    // The running orchestrator reads the flag every turn; the marker tells it to stop its agents too.
    if (options.now) requestStopNow(this.service.vault.stateDir);
    this.onChange();
    return { stopped: true, now: options.now, reason: control.stopReason };
  }

  async resume(_caller: Caller): Promise<ResumeResponse> {
    await this.service.store.setStop(false, null, this.clock());
    const stopFile = this.service.vault.stopFilePath(this.service.config.orchestrator.stop_hook_file);
    const hadFile = existsSync(stopFile);
    // Resuming means resuming: a stop file left behind would keep the queue stopped with the flag cleared.
    if (hadFile) rmSync(stopFile, { force: true });
    this.onChange();
    return { stopped: false, removedStopFile: hadFile };
  }
}

/** The backend an orchestrator serves: its own store, its own process, and a hook that wakes its loop. */
export function createLocalBackend(
  service: TaskService,
  options: { orchestratorPid?: number; onChange?: () => void; clock?: () => Date } = {},
): ApiBackend {
  const clock = options.clock ?? (() => new Date());
  const reads = storeReads(
    localReadSources({
      vaultDir: service.vault.root,
      config: service.config,
      store: service.store,
      clock,
      ...(options.orchestratorPid !== undefined ? { orchestratorPid: options.orchestratorPid } : {}),
    }),
  );
  return combineBackend(reads, new LocalActions(service, options.onChange, clock));
}

export interface OpenedReads {
  readonly reads: ApiReads;
  /** 'store' when the vault has a database, 'notes' when only its Needs_Action/ notes could be read. */
  readonly source: 'store' | 'notes';
  close(): Promise<void>;
}

/**
 * The read side of a vault for a CLI command when no API is up, changing nothing: the database is opened read-only,
 * and a vault that has none (no orchestrator ever ran on it) reads as an empty store plus its Needs_Action/ notes.
 */
export function openLocalReads(vaultDir: string, config: Config, clock?: () => Date): OpenedReads {
  const dbPath = join(vaultDir, '.fte', DB_FILE);
  const hasDb = existsSync(dbPath);
  const store: TaskStore = hasDb ? SqliteTaskStore.open(dbPath, { readonly: true }) : new MemoryTaskStore();
  const reads = storeReads(localReadSources({ vaultDir, config, store, ...(clock !== undefined ? { clock } : {}) }));
  return { reads, source: hasDb ? 'store' : 'notes', close: () => store.close() };
}
