import type Database from 'better-sqlite3';
import { eventCode, HistoryColumnsBuilder, stateCode, type HistoryColumns } from '../core/history-columns.ts';
import { StoreError } from '../core/store-error.ts';

/**
 * The history of the SQLite store packed for bulk reads (schema: HISTORY_BLOCKS in sqlite-schema.ts). Rows are sealed
 * into blocks of `blockRows` consecutive rows once that many exist past the last block; each block keeps, per row, the
 * fields metrics read as packed little-endian columns:
 *
 *   at f64 · duration_ms f64 (NaN for NULL) · cost_usd f64 (NaN for NULL) · task key u32 · type code u16 · state code u8
 *   · event code u8
 *
 * (32 bytes a row, the 8-byte columns first so each column is aligned). Type, state and event codes index the block's
 * own dictionaries, so a block never depends on the order of a list in the code that wrote it.
 */

export const DEFAULT_BLOCK_ROWS = 4096;
/** Type codes are u16 and a block has at most one type per row. */
export const MAX_BLOCK_ROWS = 65_536;
const ROW_BYTES = 32;
const MAX_TASK_KEY = 0xffff_ffff;

/**
 * Typed-array views use the platform's byte order and blocks are written little-endian; on a big-endian machine (none
 * that Node ships for today) blocks are neither written nor read, and every window is read row by row instead.
 */
const PACKABLE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

interface BlockRow {
  last_seq: number;
  rows: number;
  min_at: number;
  max_at: number;
  types: string;
  states: string;
  events: string;
  packed: Buffer;
}

/** A history row as sealing reads it: seq, task_id, task_type, to_state, event, at, duration_ms, cost_usd. */
type PendingRow = [number, string, string, string, string, number, number | null, number | null];
/**
 * A tail row as a read returns it: task_id, task_type, to_state, event, at, duration_ms, cost_usd, the task's key if
 * any.
 */
type TailRow = [string, string, string, string, number, number | null, number | null, number | null];

export class HistoryBlocks {
  private readonly stmts: ReturnType<typeof prepare>;
  /** Per task key, the task index of the read in progress, valid where keyStamp holds the read's stamp. */
  private keySlot = new Uint32Array(0);
  private keyStamp = new Uint32Array(0);
  private stamp = 0;

  constructor(db: Database.Database, private readonly blockRows: number = DEFAULT_BLOCK_ROWS) {
    if (!(Number.isInteger(blockRows) && blockRows >= 1 && blockRows <= MAX_BLOCK_ROWS)) {
      throw new RangeError(`history block size must be a whole number in [1, ${MAX_BLOCK_ROWS}], not ${blockRows}`);
    }
    this.stmts = prepare(db);
  }

  /** After inserting a history row, inside the same write transaction: seals whatever full blocks now exist. */
  afterInsert(): void {
    while (this.sealOne()) {
      // Normally none or one; more when rows were written behind the store's back.
    }
  }

  /** Seals the oldest full block of the tail, if there is one. Must run inside a write transaction. */
  sealOne(): boolean {
    if (!PACKABLE) return false;
    const after = this.lastSealed();
    // Seqs only grow, so fewer seqs than a block past the last sealed one means fewer rows: no need to read them.
    if ((this.stmts.lastSeq.get() ?? 0) - after < this.blockRows) return false;
    const rows = this.stmts.pending.all(after, this.blockRows);
    if (rows.length < this.blockRows) return false;
    const n = rows.length;
    const buffer = new ArrayBuffer(n * ROW_BYTES);
    const at = new Float64Array(buffer, 0, n);
    const duration = new Float64Array(buffer, 8 * n, n);
    const cost = new Float64Array(buffer, 16 * n, n);
    const task = new Uint32Array(buffer, 24 * n, n);
    const type = new Uint16Array(buffer, 28 * n, n);
    const state = new Uint8Array(buffer, 30 * n, n);
    const event = new Uint8Array(buffer, 31 * n, n);
    const types = new Dictionary();
    const states = new Dictionary();
    const events = new Dictionary();
    const keys = new Map<string, number>();
    let minAt = Infinity;
    let maxAt = -Infinity;
    for (let i = 0; i < n; i++) {
      const [, taskId, taskType, toState, eventType, t, durationMs, costUsd] = rows[i] as PendingRow;
      let key = keys.get(taskId);
      if (key === undefined) {
        key = this.keyOf(taskId);
        keys.set(taskId, key);
      }
      at[i] = t;
      duration[i] = durationMs ?? Number.NaN;
      cost[i] = costUsd ?? Number.NaN;
      task[i] = key;
      type[i] = types.code(taskType);
      state[i] = states.code(toState);
      event[i] = events.code(eventType);
      if (t < minAt) minAt = t;
      if (t > maxAt) maxAt = t;
    }
    this.stmts.insertBlock.run({
      last_seq: (rows[n - 1] as PendingRow)[0],
      first_seq: (rows[0] as PendingRow)[0],
      rows: n,
      min_at: minAt,
      max_at: maxAt,
      types: JSON.stringify(types.names),
      states: JSON.stringify(states.names),
      events: JSON.stringify(events.names),
      packed: Buffer.from(buffer),
    });
    return true;
  }

  /**
   * The events with since ≤ at < until in seq order, as columns: the blocks that overlap the window, then the tail.
   * Must run inside one read transaction, so that no block is sealed between reading the blocks and the tail.
   */
  read(sinceMs: number, untilMs: number): HistoryColumns {
    const blocks = PACKABLE ? this.stmts.blocksIn.all(sinceMs, untilMs) : [];
    const tail = this.stmts.tail.all(PACKABLE ? this.lastSealed() : 0, sinceMs, untilMs);
    let total = tail.length;
    for (const b of blocks) total += b.rows;
    const out = new HistoryColumnsBuilder(total);
    this.startRead(this.stmts.maxKey.get() ?? 0);
    for (const block of blocks) this.unpack(block, out, sinceMs, untilMs);
    for (const [taskId, taskType, toState, eventType, t, durationMs, costUsd, key] of tail) {
      const i = out.length++;
      out.at[i] = t;
      out.to[i] = knownState(toState, 'tail');
      out.event[i] = knownEvent(eventType, 'tail');
      out.type[i] = out.internType(taskType);
      // A task with a key has events in blocks too; numbering it by key keeps one index for all of its events.
      out.task[i] = key === null ? out.internTask(taskId) : this.slotOfKey(key, out);
      out.durationMs[i] = durationMs ?? Number.NaN;
      out.costUsd[i] = costUsd ?? Number.NaN;
    }
    return out.build();
  }

  private unpack(block: BlockRow, out: HistoryColumnsBuilder, sinceMs: number, untilMs: number): void {
    const n = block.rows;
    if (block.packed.byteLength !== n * ROW_BYTES) {
      throw new StoreError(`history block ending at seq ${block.last_seq} is damaged: ${block.packed.byteLength} bytes for ${n} rows`);
    }
    // Views need 8-byte alignment; a Buffer may start anywhere inside its memory.
    const bytes = block.packed.byteOffset % 8 === 0 ? block.packed : new Uint8Array(block.packed);
    const at = new Float64Array(bytes.buffer, bytes.byteOffset, n);
    const duration = new Float64Array(bytes.buffer, bytes.byteOffset + 8 * n, n);
    const cost = new Float64Array(bytes.buffer, bytes.byteOffset + 16 * n, n);
    const task = new Uint32Array(bytes.buffer, bytes.byteOffset + 24 * n, n);
    const type = new Uint16Array(bytes.buffer, bytes.byteOffset + 28 * n, n);
    const state = new Uint8Array(bytes.buffer, bytes.byteOffset + 30 * n, n);
    const event = new Uint8Array(bytes.buffer, bytes.byteOffset + 31 * n, n);
    const typeOf = Uint32Array.from(dictionary(block, 'types'), (name) => out.internType(name));
    const stateOf = Uint8Array.from(dictionary(block, 'states'), (name) => knownState(name, `block ${block.last_seq}`));
    const eventOf = Uint8Array.from(dictionary(block, 'events'), (name) => knownEvent(name, `block ${block.last_seq}`));

    const start = out.length;
    const { keySlot, keyStamp, stamp } = this;
    if (block.min_at >= sinceMs && block.max_at < untilMs) {
      // The whole block is in the window: the 8-byte columns are copied as they are, the codes translated.
      out.at.set(at, start);
      out.durationMs.set(duration, start);
      out.costUsd.set(cost, start);
      const outType = out.type.subarray(start, start + n);
      const outTo = out.to.subarray(start, start + n);
      const outEvent = out.event.subarray(start, start + n);
      const outTask = out.task.subarray(start, start + n);
      let tasks = out.taskCount;
      for (let i = 0; i < n; i++) {
        outType[i] = typeOf[type[i] as number] as number;
        outTo[i] = stateOf[state[i] as number] as number;
        outEvent[i] = eventOf[event[i] as number] as number;
        const key = task[i] as number;
        if (keyStamp[key] !== stamp) {
          keyStamp[key] = stamp;
          keySlot[key] = tasks++;
        }
        outTask[i] = keySlot[key] as number;
      }
      out.taskCount = tasks;
      out.length = start + n;
      return;
    }
    let j = start;
    for (let i = 0; i < n; i++) {
      const t = at[i] as number;
      if (!(t >= sinceMs && t < untilMs)) continue;
      out.at[j] = t;
      out.durationMs[j] = duration[i] as number;
      out.costUsd[j] = cost[i] as number;
      out.type[j] = typeOf[type[i] as number] as number;
      out.to[j] = stateOf[state[i] as number] as number;
      out.event[j] = eventOf[event[i] as number] as number;
      out.task[j] = this.slotOfKey(task[i] as number, out);
      j++;
    }
    out.length = j;
  }

  /** A new read: task keys up to `maxKey` get fresh indices (stamped, so nothing is cleared between reads). */
  private startRead(maxKey: number): void {
    if (maxKey >= this.keyStamp.length) {
      const n = Math.max(maxKey + 1, this.keyStamp.length * 2, 1024);
      this.keySlot = new Uint32Array(n);
      this.keyStamp = new Uint32Array(n);
      this.stamp = 0;
    }
    this.stamp++;
    if (this.stamp === 0xffff_ffff) {
      this.keyStamp.fill(0);
      this.stamp = 1;
    }
  }

  private slotOfKey(key: number, out: HistoryColumnsBuilder): number {
    if (this.keyStamp[key] !== this.stamp) {
      this.keyStamp[key] = this.stamp;
      this.keySlot[key] = out.newTask();
    }
    return this.keySlot[key] as number;
  }

  private keyOf(taskId: string): number {
    const existing = this.stmts.keyOf.get(taskId);
    const key = existing ?? Number(this.stmts.newKey.run(taskId).lastInsertRowid);
    if (key > MAX_TASK_KEY) throw new StoreError(`history task key ${key} does not fit a block (more than 2^32 tasks)`);
    return key;
  }

  private lastSealed(): number {
    return this.stmts.lastSealed.get() ?? 0;
  }
}

class Dictionary {
  readonly names: string[] = [];
  private readonly codes = new Map<string, number>();

  code(name: string): number {
    let c = this.codes.get(name);
    if (c === undefined) {
      c = this.names.length;
      this.names.push(name);
      this.codes.set(name, c);
    }
    return c;
  }
}

function dictionary(block: BlockRow, column: 'types' | 'states' | 'events'): string[] {
  const names: unknown = JSON.parse(block[column]);
  if (!Array.isArray(names) || !names.every((x): x is string => typeof x === 'string')) {
    throw new StoreError(`history block ending at seq ${block.last_seq} is damaged: ${column} is not a list of names`);
  }
  return names;
}

function knownState(name: string, where: string): number {
  const code = stateCode(name);
  if (code < 0) throw new StoreError(`history ${where} holds unknown state ${JSON.stringify(name)}`);
  return code;
}

function knownEvent(name: string, where: string): number {
  const code = eventCode(name);
  if (code < 0) throw new StoreError(`history ${where} holds unknown event ${JSON.stringify(name)}`);
  return code;
}

function prepare(db: Database.Database) {
  return {
    lastSealed: db.prepare<[], number>('SELECT max(last_seq) FROM history_blocks').pluck(),
    maxKey: db.prepare<[], number>('SELECT max(key) FROM history_task_keys').pluck(),
    lastSeq: db.prepare<[], number>('SELECT max(seq) FROM history').pluck(),
    pending: db
      .prepare<[number, number], PendingRow>(
        `SELECT seq, task_id, task_type, to_state, event, at, duration_ms, cost_usd FROM history WHERE seq > ? ORDER BY seq LIMIT ?`,
      )
      .raw(true),
    keyOf: db.prepare<[string], number>('SELECT key FROM history_task_keys WHERE task_id = ?').pluck(),
    newKey: db.prepare<[string]>('INSERT INTO history_task_keys (task_id) VALUES (?)'),
    insertBlock: db.prepare<BlockRow & { first_seq: number }>(
      `INSERT INTO history_blocks (last_seq, first_seq, rows, min_at, max_at, types, states, events, packed)
       VALUES (@last_seq, @first_seq, @rows, @min_at, @max_at, @types, @states, @events, @packed)`,
    ),
    blocksIn: db.prepare<[number, number], BlockRow>(
      `SELECT last_seq, rows, min_at, max_at, types, states, events, packed FROM history_blocks
       WHERE max_at >= ? AND min_at < ? ORDER BY last_seq`,
    ),
    // `+h.at`: the window is a constraint to check, not an index to walk — the tail is found by seq, and a month-long
    // window on history_at would visit every row of the month.
    tail: db
      .prepare<[number, number, number], TailRow>(
        `SELECT h.task_id, h.task_type, h.to_state, h.event, h.at, h.duration_ms, h.cost_usd, k.key
         FROM history h LEFT JOIN history_task_keys k ON k.task_id = h.task_id
         WHERE h.seq > ? AND +h.at >= ? AND +h.at < ? ORDER BY h.seq`,
      )
      .raw(true),
  };
}
