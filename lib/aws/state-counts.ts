import { PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { DynamoDBDocumentClient, QueryCommandInput, TransactWriteCommandInput, UpdateCommandInput } from '@aws-sdk/lib-dynamodb';
import { zeroCounts } from '../core/latest-tasks.ts';
import { TASK_STATES } from '../core/state-machine.ts';
import type { TaskState } from '../core/state-machine.ts';
import { isConditionalCheckFailed } from './sdk-errors.ts';
import { COUNTS_KEY, TABLE, countAttribute, stateIndexKey, statePartition, taskKey } from './table-design.ts';

/**
 * Tasks per state on the COUNTS item, so `stateCounts()` is one GetItem however many tasks have finished. Every write
 * that creates a task or changes its state carries `countsUpdate` in its own TransactWriteItems: a cancelled
 * transaction (a failed condition, a duplicate create) moves no counter, so the counts cannot drift from the tasks.
 *
 * A table written before the counters existed has no `baseline` on the item (at most the deltas of transitions since).
 * The first read then counts once through the byState index (`countThroughIndex`), re-keys the index entries of tasks
 * written under the old sort key, and stores the counts with `baseline` — conditioned on `writes` (bumped by every
 * counted write) being what it was before counting, so a transition during the count, or a second reader's backfill,
 * makes this one count again instead of storing a count that missed or doubled it. (The index itself lags: a transition
 * committed just before the count may not be in it yet; docs/CLOUD.md §3 records that one-time gap.)
 */

type Item = Record<string, unknown>;
type TransactItem = NonNullable<TransactWriteCommandInput['TransactItems']>[number];

/** The table as the store reaches it: `getItem` reads consistently, `queryAll` reads every page of a Query. */
export interface CountsTable {
  readonly doc: DynamoDBDocumentClient;
  readonly tableName: string;
  getItem(key: { pk: string; sk: string }): Promise<Item | null>;
  queryAll(input: Omit<QueryCommandInput, 'TableName'>): Promise<Item[]>;
}

const BASELINE = 'baseline';
const WRITES = 'writes';
const BACKFILL_ROUNDS = 3;
const PARALLEL_REKEYS = 8;

/** The counters' share of a transaction: a new task when `from` is null. Null when the state does not change. */
export function countsUpdate(tableName: string, from: TaskState | null, to: TaskState): TransactItem | null {
  if (from === to) return null;
  const names: Record<string, string> = { '#to': countAttribute(to), '#w': WRITES };
  const values: Record<string, number> = { ':one': 1 };
  let expression = 'ADD #to :one, #w :one';
  if (from !== null) {
    names['#from'] = countAttribute(from);
    values[':minus'] = -1;
    expression += ', #from :minus';
  }
  return { Update: { TableName: tableName, Key: COUNTS_KEY, UpdateExpression: expression, ExpressionAttributeNames: names, ExpressionAttributeValues: values } };
}

function countsOf(item: Item): Record<TaskState, number> {
  const counts = zeroCounts();
  for (const state of TASK_STATES) {
    const n = item[countAttribute(state)];
    if (typeof n === 'number') counts[state] = n;
  }
  return counts;
}

/** The stored counts: one consistent GetItem, or (once per table) a backfill. */
export async function readStateCounts(table: CountsTable): Promise<Record<TaskState, number>> {
  let item = await table.getItem(COUNTS_KEY);
  for (let round = 0; ; round++) {
    if (item !== null && item[BASELINE] === true) return countsOf(item);
    const counted = await countThroughIndex(table);
    if (round === BACKFILL_ROUNDS - 1) return counted; // Writes kept arriving: answer now, store on a later read.
    if (await storeBaseline(table, item, counted)) return counted;
    item = await table.getItem(COUNTS_KEY);
  }
}

/** Stored only if no counted write came in since `seen` was read: `writes` is where it was (absent: still 0). */
async function storeBaseline({ doc, tableName }: CountsTable, seen: Item | null, counts: Record<TaskState, number>): Promise<boolean> {
  const writes = seen?.[WRITES] ?? 0;
  try {
    await doc.send(
      new PutCommand({
        TableName: tableName,
        Item: { ...COUNTS_KEY, [BASELINE]: true, [WRITES]: writes, ...Object.fromEntries(TASK_STATES.map((s) => [countAttribute(s), counts[s]])) },
        ConditionExpression: 'attribute_not_exists(#b) AND (attribute_not_exists(#w) OR #w = :w)',
        ExpressionAttributeNames: { '#w': WRITES, '#b': BASELINE },
        ExpressionAttributeValues: { ':w': writes },
      }),
    );
    return true;
  } catch (err) {
    if (isConditionalCheckFailed(err)) return false;
    throw err;
  }
}

/** Every index entry of every state, read once per table; entries under the old sort key are re-keyed on the way. */
async function countThroughIndex(table: CountsTable): Promise<Record<TaskState, number>> {
  const counts = zeroCounts();
  const rekeys: UpdateCommandInput[] = [];
  const { indexName, partitionKey, sortKey } = TABLE.byState;
  for (const state of TASK_STATES) {
    const entries = await table.queryAll({
      IndexName: indexName,
      KeyConditionExpression: '#p = :p',
      ProjectionExpression: 'id, #k, stateSince, #v',
      ExpressionAttributeNames: { '#p': partitionKey, '#k': sortKey, '#v': 'version' },
      ExpressionAttributeValues: { ':p': statePartition(state) },
    });
    counts[state] = entries.length;
    for (const entry of entries) {
      const id = String(entry['id']);
      const key = stateIndexKey(state, Number(entry['stateSince']), id).gsi1sk;
      // Only if the task is still as listed: a task that moved since got its new key from the move itself.
      if (entry[sortKey] !== key) {
        rekeys.push({
          TableName: table.tableName,
          Key: taskKey(id),
          UpdateExpression: 'SET #k = :new',
          ConditionExpression: '#k = :old AND #v = :v',
          ExpressionAttributeNames: { '#k': sortKey, '#v': 'version' },
          ExpressionAttributeValues: { ':new': key, ':old': entry[sortKey], ':v': entry['version'] },
        });
      }
    }
  }
  for (let i = 0; i < rekeys.length; i += PARALLEL_REKEYS) {
    await Promise.all(rekeys.slice(i, i + PARALLEL_REKEYS).map((input) => table.doc.send(new UpdateCommand(input)).catch(unlessConditionFailed)));
  }
  return counts;
}

function unlessConditionFailed(err: unknown): void {
  if (!isConditionalCheckFailed(err)) throw err;
}
