import {
  ConditionalCheckFailedException,
  DynamoDBClient,
  ProvisionedThroughputExceededException,
  ResourceNotFoundException,
  TransactionCanceledException,
  TransactWriteItemsCommand,
} from '@aws-sdk/client-dynamodb';
import { DynamoDBServiceException } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand, TransactWriteCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DynamoStoreError, DynamoTaskStore, NotAwaitingApprovalError, transitionUpdate } from '../../lib/aws/dynamodb-store.ts';
import { COUNTS_KEY, historyKey, runKey, stateIndexKey, taskKey } from '../../lib/aws/table-design.ts';
import { InvalidTransitionError, TASK_STATES } from '../../lib/core/state-machine.ts';
import type { TaskEvent, TaskState } from '../../lib/core/state-machine.ts';
import { StoreError } from '../../lib/core/store-error.ts';
import { StaleWriteError, TaskNotFoundError } from '../../lib/core/store.ts';
import type { NewTask, RunRecord, TaskRecord } from '../../lib/core/store.ts';
import type { IterationRecord } from '../../lib/core/persistence.ts';
import { describeTaskStoreContract } from '../contract/task-store.contract.ts';
import { startLocalDynamo } from './local-dynamo.ts';
import type { LocalDynamo } from './local-dynamo.ts';

let local: LocalDynamo;
beforeAll(async () => {
  local = await startLocalDynamo();
});
afterAll(async () => {
  await local.close();
});

describeTaskStoreContract('dynamodb (dynalite)', async () => {
  const tableName = await local.createTable();
  const store = new DynamoTaskStore({ client: local.client, tableName });
  return {
    store,
    cleanup: async () => {
      await store.close();
      await local.deleteTable(tableName);
    },
  };
});

const t0 = new Date('2026-11-25T10:00:00.123Z');
const at = (ms: number): Date => new Date(t0.getTime() + ms);
const EVERYTHING = { since: new Date(0), until: new Date(8.64e15) };

function newTask(id: string, overrides: Partial<NewTask> = {}): NewTask {
  return {
    id, title: `Task ${id}`, type: 'code', sender: null, urgency: 3, deadline: null, created: t0,
    approvalRequired: false, approvalReasons: [], ...overrides,
  };
}

function run(taskId: string, attempt: number, overrides: Partial<RunRecord> = {}): RunRecord {
  return {
    taskId, attempt, kind: 'execute', startedAt: at(1), endedAt: at(2), ok: true, errorClass: null, exitCode: 0,
    durationMs: 1, costUsd: 0.5, numTurns: 1, sessionId: null, logPath: null, ...overrides,
  };
}

interface Seen {
  name: string;
  input: Record<string, unknown>;
}

/** Records every low-level command a client sends, to show which API calls the adapter makes. */
function recordCommands(client: DynamoDBClient): Seen[] {
  const seen: Seen[] = [];
  client.middlewareStack.add(
    (next, context) => async (args) => {
      seen.push({ name: context.commandName ?? '?', input: args.input as Record<string, unknown> });
      return next(args);
    },
    { step: 'initialize', name: 'recordCommands' },
  );
  return seen;
}

/** Holds each client's TransactWriteItems until `parties` of them are waiting, so their reads all happen first. */
function holdTransactionsTogether(clients: DynamoDBClient[]): void {
  let waiting = 0;
  let open: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => (open = resolve));
  for (const client of clients) {
    client.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'TransactWriteItemsCommand') {
          if (++waiting === clients.length) open();
          await gate;
        }
        return next(args);
      },
      { step: 'initialize', name: 'holdTransactionsTogether' },
    );
  }
}

describe('DynamoTaskStore against dynalite', () => {
  let tableName: string;
  let store: DynamoTaskStore;
  const extraClients: DynamoDBClient[] = [];
  const client = (): DynamoDBClient => {
    const c = local.newClient();
    extraClients.push(c);
    return c;
  };

  beforeEach(async () => {
    tableName = await local.createTable();
    store = new DynamoTaskStore({ client: local.client, tableName });
  });

  afterEach(async () => {
    for (const c of extraClients.splice(0)) c.destroy();
    await local.deleteTable(tableName);
  });

  const rawItem = async (key: { pk: string; sk: string }) =>
    (await local.doc.send(new GetCommand({ TableName: tableName, Key: key, ConsistentRead: true }))).Item;

  describe('the test server', () => {
    it('is dynalite, which lacks TransactWriteItems; the proxy in front of it adds it', async () => {
      const direct = local.newClient(local.dynaliteEndpoint, { maxAttempts: 1 });
      extraClients.push(direct);
      const put = { Put: { TableName: tableName, Item: { pk: { S: 'x' }, sk: { S: 'y' } } } };
      await expect(direct.send(new TransactWriteItemsCommand({ TransactItems: [put] }))).rejects.toMatchObject({
        name: 'UnknownOperationException',
      });
      await local.client.send(new TransactWriteItemsCommand({ TransactItems: [put] }));
      expect(await rawItem({ pk: 'x', sk: 'y' })).toEqual({ pk: 'x', sk: 'y' });
    });

    it('rolls a transaction back when a later condition fails, and says which one failed', async () => {
      const err = await local.doc
        .send(
          new TransactWriteCommand({
            TransactItems: [
              { Put: { TableName: tableName, Item: { pk: 'a', sk: 'a', n: 1 } } },
              {
                Put: {
                  TableName: tableName, Item: { pk: 'b', sk: 'b' },
                  ConditionExpression: 'attribute_exists(pk)',
                },
              },
            ],
          }),
        )
        .catch((e: unknown) => e);
      expect(err).toMatchObject({
        name: 'TransactionCanceledException',
        CancellationReasons: [{ Code: 'None' }, { Code: 'ConditionalCheckFailed' }],
      });
      expect(await rawItem({ pk: 'a', sk: 'a' })).toBeUndefined();
      expect(await rawItem({ pk: 'b', sk: 'b' })).toBeUndefined();
    });
  });

  describe('concurrent writers', () => {
    it('lets exactly one of two stores win a race on one task; the other gets StaleWriteError', async () => {
      const races: [TaskEvent, TaskEvent][] = [
        [{ type: 'execute' }, { type: 'cancel', by: 'ops' }],
        // A duplicated Step Functions step: the same event twice must not count two attempts.
        [{ type: 'execute' }, { type: 'execute' }],
      ];
      for (const [i, events] of races.entries()) {
        const id = `race-${i}`;
        await store.create(newTask(id), t0);
        const clients = [client(), client()];
        holdTransactionsTogether(clients);
        const [a, b] = clients.map((c) => new DynamoTaskStore({ client: c, tableName }));
        const results = await Promise.allSettled([
          (a as DynamoTaskStore).apply(id, events[0], at(1)),
          (b as DynamoTaskStore).apply(id, events[1], at(2)),
        ]);
        const won = results.filter((r): r is PromiseFulfilledResult<TaskRecord> => r.status === 'fulfilled');
        const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
        expect(won).toHaveLength(1);
        expect(lost).toHaveLength(1);
        expect(lost[0]?.reason).toBeInstanceOf(StaleWriteError);
        expect(lost[0]?.reason).toMatchObject({ taskId: id, expected: 1, actual: 2 });
        expect(await store.get(id)).toEqual(won[0]?.value);
        expect((await store.get(id))?.attempts).toBeLessThanOrEqual(1);
        expect((await store.history(EVERYTHING)).filter((e) => e.taskId === id)).toHaveLength(1);
      }
    });

    it('refuses, in DynamoDB, a raw write computed from a stale read', async () => {
      await store.create(newTask('t1'), t0);
      const stale = (await store.get('t1')) as TaskRecord;
      await store.apply('t1', { type: 'execute' }, at(1));
      // A writer that bypasses `apply` and sends the conditional update itself, from the version it read earlier.
      const forged: TaskRecord = { ...stale, state: 'cancelled', reason: 'forged', version: stale.version + 1 };
      const update = transitionUpdate(tableName, stale, forged, 'cancel');
      await expect(local.doc.send(new UpdateCommand(update))).rejects.toBeInstanceOf(ConditionalCheckFailedException);
      expect(await store.get('t1')).toMatchObject({ state: 'executing', version: 2, reason: null });
    });

    it('refuses a raw write whose version matches but whose source state does not', async () => {
      await store.create(newTask('t1'), t0);
      const current = (await store.get('t1')) as TaskRecord;
      const pretend: TaskRecord = { ...current, state: 'executing' };
      const update = transitionUpdate(tableName, pretend, { ...pretend, state: 'done', version: 2 }, 'succeed');
      await expect(local.doc.send(new UpdateCommand(update))).rejects.toBeInstanceOf(ConditionalCheckFailedException);
      expect(await store.get('t1')).toEqual(current);
    });

    it('refuses to build a write for a step the transition table forbids, even bypassing applyToRecord', async () => {
      await store.create(newTask('t1'), t0);
      const current = (await store.get('t1')) as TaskRecord;
      const next: TaskRecord = { ...current, state: 'done', version: 2 };
      expect(() => transitionUpdate(tableName, current, next, 'succeed')).toThrow(InvalidTransitionError);
      expect(() => transitionUpdate(tableName, current, { ...next, state: 'executing', version: 3 }, 'execute'))
        .toThrow(RangeError);
    });

    it('writes task, history and run in one transaction: when one part fails nothing is written', async () => {
      await store.create(newTask('t1'), t0);
      await store.apply('t1', { type: 'execute' }, at(1));
      // Occupy the key the next history event will take, so the second action of the transaction fails.
      await local.doc.send(new PutCommand({ TableName: tableName, Item: { ...historyKey(at(2).getTime(), 't1', 3) } }));
      const before = await store.get('t1');
      await expect(store.apply('t1', { type: 'succeed' }, at(2), { run: run('t1', 1) })).rejects.toMatchObject({
        name: 'TransactionCanceledException',
      });
      expect(await store.get('t1')).toEqual(before);
      expect(await store.runs('t1')).toEqual([]);
    });
  });

  describe('applyStep', () => {
    it('replays the same step key as a no-op, but not after any other write, raw ones included', async () => {
      await store.create(newTask('t1'), t0);
      const first = await store.applyStep('t1', 'exec#1', { type: 'execute' }, at(1));
      expect(await store.applyStep('t1', 'exec#1', { type: 'execute' }, at(2))).toEqual(first);
      expect(await store.history(EVERYTHING)).toHaveLength(1);
      await expect(store.applyStep('t1', 'exec#2', { type: 'execute' }, at(3))).rejects.toBeInstanceOf(InvalidTransitionError);

      // A writer outside the store (the runner saving its cost) moves the version and leaves the key.
      await local.doc.send(new UpdateCommand({
        TableName: tableName, Key: taskKey('t1'), UpdateExpression: 'ADD #v :one',
        ExpressionAttributeNames: { '#v': 'version' }, ExpressionAttributeValues: { ':one': 1 },
      }));
      await expect(store.applyStep('t1', 'exec#1', { type: 'execute' }, at(4))).rejects.toBeInstanceOf(InvalidTransitionError);
      await expect(store.applyStep('t1', '', { type: 'succeed' }, at(5))).rejects.toBeInstanceOf(RangeError);
    });
  });

  describe('recordRun', () => {
    it('saves a run without a transition, keeping the cost the sum of the runs and moving the version', async () => {
      await store.create(newTask('t1'), t0);
      await store.apply('t1', { type: 'execute' }, at(1));
      const stale = (await store.get('t1')) as TaskRecord;
      const saved = await store.recordRun(run('t1', 1, { costUsd: 1.5 }), { result: 'all done', pk: 'ignored' });
      expect(saved).toMatchObject({ state: 'executing', costUsd: 1.5, version: 3 });
      expect(await store.get('t1')).toEqual(saved);
      expect(await rawItem(runKey('t1', 1, 'execute'))).toMatchObject({ result: 'all done', pk: 'TASK#t1' });
      expect(await store.recordRun(run('t1', 1, { costUsd: 2 }))).toMatchObject({ costUsd: 2, version: 4 });
      expect(await store.history(EVERYTHING)).toHaveLength(1);
      // A transition computed before the run was saved is refused; one computed after it keeps the cost.
      await expect(
        local.doc.send(new UpdateCommand(transitionUpdate(tableName, stale, { ...stale, state: 'done', version: stale.version + 1 }, 'succeed'))),
      ).rejects.toBeInstanceOf(ConditionalCheckFailedException);
      expect(await store.apply('t1', { type: 'succeed' }, at(2))).toMatchObject({ state: 'done', costUsd: 2, version: 5 });
      await expect(store.recordRun(run('ghost', 1))).rejects.toBeInstanceOf(TaskNotFoundError);
    });
  });

  describe('items', () => {
    it('stores dates as epoch milliseconds and keys the task, its runs and its history as designed', async () => {
      await store.create(newTask('t#1', { created: at(-7), deadline: at(86_400_001) }), t0);
      await store.apply('t#1', { type: 'execute' }, at(1), { lease: { owner: 'sfn', pid: null, expiresAt: at(9) } });
      await store.apply('t#1', { type: 'succeed' }, at(2), { run: run('t#1', 1) });

      expect(await rawItem(taskKey('t#1'))).toMatchObject({
        pk: 'TASK#t#1', sk: 'TASK', entity: 'task', state: 'done',
        gsi1pk: 'STATE#done', gsi1sk: `00${at(2).getTime()}#t#1`,
        created: at(-7).getTime(), deadline: at(86_400_001).getTime(), stateSince: at(2).getTime(),
        leaseOwner: null, version: 3,
      });
      expect(await rawItem(runKey('t#1', 1, 'execute'))).toMatchObject({
        pk: 'TASK#t#1', sk: 'RUN#000001#execute', startedAt: at(1).getTime(), costUsd: 0.5,
      });
      expect(await rawItem(historyKey(at(2).getTime(), 't#1', 3))).toMatchObject({
        pk: 'HIST#2026-11-25', sk: `00${at(2).getTime()}#t#1#000000003`, event: 'succeed', at: at(2).getTime(),
      });
    });

    it('sets a TTL on history items when a retention is configured', async () => {
      const retaining = new DynamoTaskStore({ client: local.client, tableName, historyRetentionDays: 30 });
      await retaining.create(newTask('t1'), t0);
      await retaining.apply('t1', { type: 'execute' }, at(1));
      const item = await rawItem(historyKey(at(1).getTime(), 't1', 2));
      expect(item?.['ttl']).toBe(Math.ceil(at(1).getTime() / 1000) + 30 * 86_400);
      await store.apply('t1', { type: 'succeed' }, at(2));
      expect(await rawItem(historyKey(at(2).getTime(), 't1', 3))).not.toHaveProperty('ttl');
    });

    it('fails loudly on an item altered by hand', async () => {
      await store.create(newTask('t1'), t0);
      await local.doc.send(new UpdateCommand({
        TableName: tableName, Key: taskKey('t1'), UpdateExpression: 'SET #s = :s',
        ExpressionAttributeNames: { '#s': 'state' }, ExpressionAttributeValues: { ':s': 'limbo' },
      }));
      await expect(store.get('t1')).rejects.toBeInstanceOf(StoreError);
      await expect(store.get('t1')).rejects.toThrow(/limbo/);
    });
  });

  describe('reads', () => {
    it('lists tasks of a state from the byState index and all tasks with a scan, across pages', async () => {
      const watched = client();
      const seen = recordCommands(watched);
      const store = new DynamoTaskStore({ client: watched, tableName });
      const big = 'x'.repeat(100_000);
      for (let i = 0; i < 12; i++) {
        await store.create(newTask(`t${String(i).padStart(2, '0')}`, { approvalReasons: [big], created: at(i) }), t0);
      }
      await store.apply('t03', { type: 'execute' }, at(100));
      seen.length = 0;

      const queued = await store.list({ states: ['needs_action'] });
      expect(queued.map((r) => r.id)).toEqual(['t00', 't01', 't02', 't04', 't05', 't06', 't07', 't08', 't09', 't10', 't11']);
      const queries = seen.filter((s) => s.name === 'QueryCommand');
      expect(queries.length).toBeGreaterThanOrEqual(2);
      expect(queries.every((q) => q.input['IndexName'] === 'byState')).toBe(true);
      expect(seen.some((s) => s.name === 'ScanCommand')).toBe(false);

      seen.length = 0;
      expect(await store.list()).toHaveLength(12);
      expect(seen.filter((s) => s.name === 'ScanCommand').length).toBeGreaterThanOrEqual(2);
      expect(await store.countByState(['needs_action', 'executing'])).toBe(12);
      expect(await store.countByState(['executing'])).toBe(1);
    });

    it('reads history from the day partitions a window covers, or one scan for a very long window', async () => {
      const watched = client();
      const seen = recordCommands(watched);
      const store = new DynamoTaskStore({ client: watched, tableName });
      const day1 = new Date('2026-11-24T23:59:59.999Z');
      const day2 = new Date('2026-11-25T00:00:00.000Z');
      const day3 = new Date('2026-11-26T12:00:00.000Z');
      for (const id of ['a', 'b', 'c']) await store.create(newTask(id), t0);
      await store.apply('a', { type: 'execute' }, day1);
      await store.apply('b', { type: 'execute' }, day2);
      await store.apply('c', { type: 'execute' }, day3);
      seen.length = 0;

      const window = await store.history({ since: day1, until: day3 });
      expect(window.map((e) => e.taskId)).toEqual(['a', 'b']);
      const partitions = seen
        .filter((s) => s.name === 'QueryCommand')
        .map((s) => (s.input['ExpressionAttributeValues'] as Record<string, unknown>)[':pk']);
      expect(partitions.sort()).toEqual(['HIST#2026-11-24', 'HIST#2026-11-25', 'HIST#2026-11-26']);

      seen.length = 0;
      const all = await store.history({ since: new Date('2020-01-01T00:00:00Z'), until: new Date('2030-01-01T00:00:00Z') });
      expect(all.map((e) => e.taskId)).toEqual(['a', 'b', 'c']);
      expect(seen.map((s) => s.name)).toEqual(['ScanCommand']);
    });
  });

  describe('state counts and the latest tasks', () => {
    type Counts = Record<TaskState, number>;
    const truth = async (): Promise<Counts> => {
      const counts = Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as Counts;
      for (const r of await store.list()) counts[r.state] += 1;
      return counts;
    };
    /** What the Queries a client sends read: the items DynamoDB scanned for them, not only those it returned. */
    const scannedByQueries = (watched: DynamoDBClient): { scanned: number } => {
      const total = { scanned: 0 };
      watched.middlewareStack.add(
        (next, context) => async (args) => {
          const result = await next(args);
          if (context.commandName === 'QueryCommand') total.scanned += (result.output as { ScannedCount?: number }).ScannedCount ?? 0;
          return result;
        },
        { step: 'initialize', name: 'scannedByQueries' },
      );
      return total;
    };

    it('moves the counters only with writes that commit, under concurrent conditional transitions, and reads them with one GetItem', async () => {
      expect(Object.values(await store.stateCounts()).every((n) => n === 0)).toBe(true);
      const ids = Array.from({ length: 12 }, (_, i) => `t${i}`);
      const racers = [client(), client(), client()];
      const stores = racers.map((c) => new DynamoTaskStore({ client: c, tableName }));
      // Every id admitted twice at once: one create counts, the other admits nothing.
      const created = await Promise.all(ids.flatMap((id) => stores.slice(0, 2).map((s) => s.create(newTask(id), t0))));
      expect(created.filter(Boolean)).toHaveLength(ids.length);

      // Three stores read t0 at version 1 and then all write it: one transition commits, two fail their condition.
      holdTransactionsTogether(racers);
      const raced = await Promise.allSettled(stores.map((s) => s.apply('t0', { type: 'execute' }, at(1))));
      expect(raced.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      expect(raced.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason)).toEqual([
        expect.any(StaleWriteError), expect.any(StaleWriteError),
      ]);

      // Then a free-for-all: execute and cancel racing per task, stale expected versions, an invalid transition.
      const outcomes = await Promise.allSettled(ids.slice(1).flatMap((id, i) => [
        (stores[i % 3] as DynamoTaskStore).apply(id, { type: 'execute' }, at(2)),
        (stores[(i + 1) % 3] as DynamoTaskStore).apply(id, { type: 'cancel', by: 'ops' }, at(2)),
        (stores[(i + 2) % 3] as DynamoTaskStore).apply(id, { type: 'execute' }, at(3), { expectedVersion: 0 }),
        store.apply(id, { type: 'succeed' }, at(3)).catch((err: unknown) => {
          if (err instanceof InvalidTransitionError) return null;
          throw err;
        }),
      ]));
      const failures = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
      expect(failures.length).toBeGreaterThanOrEqual(ids.length - 1);
      for (const f of failures) expect(f.reason).toBeInstanceOf(StaleWriteError);

      const watched = client();
      const seen = recordCommands(watched);
      const counts = await new DynamoTaskStore({ client: watched, tableName }).stateCounts();
      expect(counts).toEqual(await truth());
      expect(counts.executing + counts.cancelled + counts.done).toBe(ids.length);
      expect(seen.map((s) => s.name)).toEqual(['GetItemCommand']);
    });

    it('reads about `limit` index entries for the latest tasks, however many finished before them', async () => {
      for (let i = 0; i < 40; i++) {
        const id = `t${String(i).padStart(2, '0')}`;
        await store.create(newTask(id), t0);
        await store.apply(id, { type: 'execute' }, at(1));
        // t36..t39 finish at the same millisecond: the cut at 3 falls among them.
        await store.apply(id, { type: 'succeed' }, at(10 + Math.min(i, 36)));
      }
      await store.stateCounts(); // whatever a first read of a table costs is paid here, not below
      const watched = client();
      const seen = recordCommands(watched);
      const reads = scannedByQueries(watched);
      const reader = new DynamoTaskStore({ client: watched, tableName });
      const latest = await reader.listLatest({ states: ['done'], limit: 3 });
      expect(latest.map((r) => r.id)).toEqual(['t36', 't37', 't38', 't39']);
      expect(reads.scanned).toBeLessThanOrEqual(2 * (3 + 1));
      // A store's first listing checks once that the table's index keys are current (the counts item says so).
      expect(seen.filter((s) => s.name !== 'QueryCommand').map((s) => s.name)).toEqual(['GetItemCommand']);
      expect(seen.filter((s) => s.name === 'QueryCommand').every((s) => s.input['ScanIndexForward'] === false)).toBe(true);

      reads.scanned = 0;
      seen.length = 0;
      const one = await reader.listLatest({ states: ['done', 'failed'], limit: 1 });
      expect(seen.every((s) => s.name === 'QueryCommand')).toBe(true);
      expect(one.map((r) => r.id)).toEqual(['t36', 't37', 't38', 't39']);
      expect(reads.scanned).toBeLessThanOrEqual(6 + 2);
    });

    it('counts a table written before the counters once through the index, re-keying its old entries, without double counting', async () => {
      for (const id of ['a', 'b', 'c', 'd']) await store.create(newTask(id, { created: at(-1000) }), t0);
      await store.apply('a', { type: 'execute' }, at(1));
      await store.apply('a', { type: 'succeed' }, at(50));
      await store.apply('b', { type: 'execute' }, at(1));
      await store.apply('b', { type: 'succeed' }, at(40));
      // As an older version left them: index entries keyed by creation, and counters holding only some deltas.
      for (const id of ['a', 'b']) {
        await local.doc.send(new UpdateCommand({
          TableName: tableName, Key: taskKey(id), UpdateExpression: 'SET gsi1sk = :old',
          ExpressionAttributeValues: { ':old': stateIndexKey('done', at(id === 'a' ? -1000 : -999).getTime(), id).gsi1sk },
        }));
      }
      await local.doc.send(new PutCommand({ TableName: tableName, Item: { ...COUNTS_KEY, writes: 2, count_done: 1 } }));

      // Reader B's count is overtaken by a transition: its stored count would miss it, so it counts again.
      const watched = client();
      const seen = recordCommands(watched);
      let interleaved = false;
      watched.middlewareStack.add(
        (next, context) => async (args) => {
          if (context.commandName === 'QueryCommand' && !interleaved) {
            interleaved = true;
            await store.apply('c', { type: 'execute' }, at(60));
          }
          return next(args);
        },
        { step: 'initialize', name: 'interleave' },
      );
      const readerB = new DynamoTaskStore({ client: watched, tableName });
      const [fromA, fromB] = await Promise.all([new DynamoTaskStore({ client: client(), tableName }).stateCounts(), readerB.stateCounts()]);
      const expected = await truth();
      expect(expected).toMatchObject({ done: 2, executing: 1, needs_action: 1 });
      expect(fromB).toEqual(expected);
      expect(fromA.done).toBe(2);
      // B's first baseline was refused (a write came in between), so it counted again.
      expect(seen.filter((s) => s.name === 'QueryCommand').length).toBeGreaterThan(TASK_STATES.length);
      expect(await rawItem(COUNTS_KEY)).toMatchObject({ baseline: true, count_done: 2, count_executing: 1, count_needs_action: 1 });
      expect(await store.stateCounts()).toEqual(expected);

      // The old entries now sort by when their task finished, so the latest is the latest.
      expect((await rawItem(taskKey('a')))?.['gsi1sk']).toBe(stateIndexKey('done', at(50).getTime(), 'a').gsi1sk);
      expect((await store.listLatest({ states: ['done'], limit: 1 })).map((r) => r.id)).toEqual(['a']);
      await store.apply('c', { type: 'succeed' }, at(70));
      expect(await store.stateCounts()).toEqual(await truth());
    });
  });

  describe('cloud attributes', () => {
    it('keeps the approval token only while the task is pending approval', async () => {
      await store.create(newTask('t1', { approvalRequired: true }), t0);
      await expect(store.setApprovalToken('t1', 'token-1')).rejects.toBeInstanceOf(NotAwaitingApprovalError);
      await store.apply('t1', { type: 'plan' }, at(1));
      await store.apply('t1', { type: 'plan_ready' }, at(2));
      await store.setApprovalToken('t1', 'token-1');
      expect(await store.getApprovalToken('t1')).toBe('token-1');
      // The token never leaks into the port's record.
      expect(await store.get('t1')).not.toHaveProperty('taskToken');
      await store.apply('t1', { type: 'approve', by: 'bob' }, at(3));
      expect(await store.getApprovalToken('t1')).toBeNull();
      await expect(store.getApprovalToken('ghost')).rejects.toBeInstanceOf(TaskNotFoundError);
      await expect(store.setApprovalToken('ghost', 'x')).rejects.toBeInstanceOf(TaskNotFoundError);
    });

    it('keeps the note body in its own item, written with the task and never replaced by a redelivery', async () => {
      expect(await store.createWithBody(newTask('t1'), '# Do it\n\nbody ✓', t0)).toBe(true);
      expect(await store.createWithBody(newTask('t1', { title: 'other' }), 'replaced?', at(5))).toBe(false);
      expect(await store.getTaskBody('t1')).toBe('# Do it\n\nbody ✓');
      expect((await store.get('t1'))?.title).toBe('Task t1');
      expect(await rawItem(taskKey('t1'))).not.toHaveProperty('body');
      await store.putTaskBody('t1', 'v2');
      expect(await store.getTaskBody('t1')).toBe('v2');
      await expect(store.putTaskBody('ghost', 'x')).rejects.toBeInstanceOf(TaskNotFoundError);
      expect(await store.getTaskBody('ghost')).toBeNull();
      // The body item is not a task: listing stays a list of tasks.
      expect((await store.list()).map((r) => r.id)).toEqual(['t1']);
    });

    it('keeps a concurrency cap on the control item beside the stop flag', async () => {
      expect(await store.cloudControl()).toMatchObject({ concurrencyCap: null, stopRequested: false });
      await store.setConcurrencyCap(2);
      await store.setStop(true, 'night', at(1));
      expect(await store.cloudControl()).toMatchObject({ concurrencyCap: 2, stopRequested: true, stopReason: 'night' });
      expect(await store.control()).not.toHaveProperty('concurrencyCap');
      await expect(store.setConcurrencyCap(-1)).rejects.toBeInstanceOf(RangeError);
    });

    it('records quarantined documents apart from tasks', async () => {
      await store.quarantine({
        id: 'bad', reason: 'bad_yaml', field: null, message: 'not YAML', receivedAt: at(3), excerpt: 'x'.repeat(10_000),
      });
      expect(await store.getQuarantined('bad')).toMatchObject({ id: 'bad', reason: 'bad_yaml', receivedAt: at(3) });
      expect((await store.getQuarantined('bad'))?.excerpt).toHaveLength(4_096);
      expect(await store.list()).toEqual([]);
      expect(await store.getQuarantined('good')).toBeNull();
    });
  });

  describe('unavailability', () => {
    it('turns a missing table into STORE_UNAVAILABLE naming the table', async () => {
      const missing = new DynamoTaskStore({ client: local.client, tableName: 'no-such-table' });
      const err = await missing.get('t1').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DynamoStoreError);
      expect(err).toBeInstanceOf(StoreError);
      expect(err).toMatchObject({ code: 'STORE_UNAVAILABLE', reason: 'table_missing', transient: false });
      expect((err as Error).message).toMatch(/table no-such-table does not exist.*during get/);
      expect((err as Error).cause).toBeInstanceOf(ResourceNotFoundException);
    });

    it('turns an unreachable endpoint into a transient STORE_UNAVAILABLE', async () => {
      const nowhere = local.newClient('http://127.0.0.1:9', { maxAttempts: 1 });
      extraClients.push(nowhere);
      const err = await new DynamoTaskStore({ client: nowhere, tableName }).control().catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'STORE_UNAVAILABLE', reason: 'network', transient: true });
    });

    it('refuses calls after close', async () => {
      const closing = new DynamoTaskStore({ client: local.client, tableName });
      await closing.close();
      await expect(closing.get('t1')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
      expect(await store.get('t1')).toBeNull();
    });
  });

  describe('the persistence loop\'s journal', () => {
    const record = (attempt: number, iteration: number, extra: Partial<IterationRecord> = {}): IterationRecord => ({
      attempt, iteration, startedAt: '2026-01-01T00:00:00.000Z', endedAt: '2026-01-01T00:00:01.500Z', durationMs: 1_500,
      costUsd: 0.0123, numTurns: 2, sessionId: 'sess-1', ok: true, errorClass: null, promiseSeen: false, ...extra,
    });

    it('reads iterations back as written, in attempt then iteration order, beside the task and not as tasks', async () => {
      await store.create(newTask('t1'), t0);
      const written = [record(10, 1), record(2, 11, { ok: false, errorClass: 'timeout', numTurns: null, sessionId: null }), record(2, 3, { promiseSeen: true })];
      for (const r of written) await store.appendIteration('t1', r);
      expect(await store.iterations('t1')).toEqual([written[2], written[1], written[0]]);
      expect(await store.iterations('other')).toEqual([]);
      // The journal lives in the task's partition; task listings and runs do not see it.
      expect((await store.list()).map((t) => t.id)).toEqual(['t1']);
      expect(await store.runs('t1')).toEqual([]);
    });

    it('keeps one checkpoint per task; clearing it leaves no session to resume', async () => {
      expect(await store.checkpoint('t1')).toBeNull();
      await store.saveCheckpoint('t1', { attempt: 1, iteration: 1, sessionId: 'a' });
      await store.saveCheckpoint('t1', { attempt: 1, iteration: 2, sessionId: 'a' });
      expect(await store.checkpoint('t1')).toEqual({ attempt: 1, iteration: 2, sessionId: 'a' });
      await store.clearCheckpoint('t1');
      expect(await store.checkpoint('t1')).toBeNull();
    });

    it('keeps the scheduler\'s budget verdict on the control item without touching the stop flag', async () => {
      await store.setStop(true, 'night', t0);
      const block = {
        exhausted: null, exhaustedTypes: { research: 'spent' }, spentUsd: 1.25, dailyUsd: null, freesAt: at(5), checkedAt: t0,
      };
      await store.recordBudget(block);
      expect(await store.cloudControl()).toMatchObject({ stopRequested: true, stopReason: 'night', budget: block });
      await store.recordBudget(null);
      expect(await store.cloudControl()).toMatchObject({ stopRequested: true, budget: null });
    });
  });
});

describe('DynamoTaskStore error mapping (mocked client)', () => {
  const doc = DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1' }));
  const mock = mockClient(doc);
  const store = new DynamoTaskStore({ client: doc, tableName: 'tasks' });
  const meta = { $metadata: {} };

  afterEach(() => mock.reset());

  it('maps throttling beyond the SDK retries to a transient StoreError', async () => {
    mock.on(GetCommand).rejects(new ProvisionedThroughputExceededException({ message: 'slow down', ...meta }));
    const err = await store.get('t1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect(err).toMatchObject({ reason: 'throttled', transient: true });
    expect((err as Error).message).toMatch(/throttled requests to table tasks.*during get/);
  });

  it('sends a counted write again when only conflicts with other transactions cancelled it, and only then', async () => {
    const cancelled = (codes: string[]): TransactionCanceledException =>
      new TransactionCanceledException({ message: 'cancelled', CancellationReasons: codes.map((Code) => ({ Code })), ...meta });
    mock.on(TransactWriteCommand).rejectsOnce(cancelled(['None', 'TransactionConflict'])).resolves({});
    expect(await store.create(newTask('t1'), t0)).toBe(true);
    expect(mock.commandCalls(TransactWriteCommand)).toHaveLength(2);

    mock.reset();
    mock.on(TransactWriteCommand).rejects(cancelled(['ConditionalCheckFailed', 'TransactionConflict']));
    expect(await store.create(newTask('t1'), t0)).toBe(false);
    expect(mock.commandCalls(TransactWriteCommand)).toHaveLength(1);
  });

  it('maps ResourceNotFound, access denial and unmodelled 5xx; leaves validation errors alone', async () => {
    mock.on(TransactWriteCommand).rejects(new ResourceNotFoundException({ message: 'Requested resource not found', ...meta }));
    await expect(store.create(newTask('t1'), t0)).rejects.toMatchObject({ reason: 'table_missing' });

    mock.on(GetCommand).rejects(
      new DynamoDBServiceException({ name: 'AccessDeniedException', $fault: 'client', message: 'no', ...meta }),
    );
    await expect(store.control()).rejects.toMatchObject({ reason: 'access_denied', transient: false });

    mock.on(GetCommand).rejects(
      new DynamoDBServiceException({
        name: 'BadGateway', $fault: 'server', message: 'proxy', $metadata: { httpStatusCode: 503 },
      }),
    );
    await expect(store.get('t1')).rejects.toMatchObject({ reason: 'service_error', transient: true });

    const validation = new DynamoDBServiceException({
      name: 'ValidationException', $fault: 'client', message: 'bad expression', ...meta,
    });
    mock.on(GetCommand).rejects(validation);
    const err = await store.get('t1').catch((e: unknown) => e);
    expect(err).toBe(validation);
    expect(err).not.toBeInstanceOf(StoreError);
  });
});
