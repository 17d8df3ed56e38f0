import { randomUUID } from 'node:crypto';
import { createServer, request } from 'node:http';
import type { IncomingHttpHeaders, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { CreateTableCommand, DeleteTableCommand, DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { createTableInput } from '../../lib/aws/table-definition.ts';

/**
 * A real DynamoDB API for the tests: dynalite (DynamoDB's API over LevelDB) started in-process, behind a small proxy
 * that adds the one operation dynalite lacks and the adapter needs, TransactWriteItems
 * (https://github.com/architect/dynalite/issues/151: dynalite answers UnknownOperationException).
 *
 * The proxy serialises every request, and runs a transaction as dynalite's own single-item conditional writes, in
 * order, under that lock: each Put/Update/Delete/ConditionCheck is evaluated by dynalite itself (its expression
 * parser, its condition semantics); when one fails, the writes already made are rolled back to their snapshots and
 * the client gets a TransactionCanceledException with CancellationReasons, as from DynamoDB. Because no other request
 * runs while a transaction does, readers never see half of one. Two differences from DynamoDB, both on the failure
 * path only: conditions after the first failing one are not evaluated (reported as `None`), and a conflict between
 * transactions cannot happen (they are serialised), so TransactionConflict is never reported.
 */

export interface LocalDynamo {
  /** Endpoint of the proxy: dynalite plus TransactWriteItems. */
  readonly endpoint: string;
  /** Endpoint of dynalite itself, for showing what it does without the proxy. */
  readonly dynaliteEndpoint: string;
  /** A low-level client of the proxy; closed by `close()`. */
  readonly client: DynamoDBClient;
  readonly doc: DynamoDBDocumentClient;
  /** A new client for `endpoint` (default: the proxy); the caller destroys it. */
  newClient(endpoint?: string, options?: { maxAttempts?: number }): DynamoDBClient;
  /** Create a table of the deployed shape under a fresh, unique name and wait until it is ACTIVE. */
  createTable(): Promise<string>;
  deleteTable(name: string): Promise<void>;
  close(): Promise<void>;
}

type DynaliteFactory = (options: {
  createTableMs: number;
  deleteTableMs: number;
  updateTableMs: number;
}) => Server;

const requireCjs = createRequire(import.meta.url);

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

interface Reply {
  status: number;
  headers: Record<string, string>;
  body: string;
}

const API = 'DynamoDB_20120810';
const JSON_TYPE = 'application/x-amz-json-1.0';

export async function startLocalDynamo(): Promise<LocalDynamo> {
  const dynalite = requireCjs('dynalite') as DynaliteFactory;
  const backend = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  const backendPort = await listen(backend);
  const dynaliteEndpoint = `http://127.0.0.1:${backendPort}`;

  const lock = new Mutex();
  const keySchemas = new Map<string, string[]>();
  const backendCall = (operation: string, payload: JsonObject): Promise<Reply> =>
    send(backendPort, {
      'content-type': JSON_TYPE,
      'x-amz-target': `${API}.${operation}`,
      // dynalite checks that a SigV4 header is present, not what it signs.
      authorization: 'AWS4-HMAC-SHA256 Credential=local/20260101/local/dynamodb/aws4_request, SignedHeaders=host, Signature=0',
      'x-amz-date': '20260101T000000Z',
    }, JSON.stringify(payload));

  const proxy = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const target = req.headers['x-amz-target'];
      const work =
        target === `${API}.TransactWriteItems`
          ? () => transactWrite(body, backendCall, keySchemas)
          : () => send(backendPort, forwardedHeaders(req.headers), body, req.method ?? 'POST', req.url ?? '/');
      lock
        .run(work)
        .then((reply) => {
          res.writeHead(reply.status, { ...reply.headers, 'content-length': Buffer.byteLength(reply.body) });
          res.end(reply.body);
        })
        .catch((err: unknown) => {
          res.writeHead(500, { 'content-type': JSON_TYPE });
          res.end(JSON.stringify({ __type: 'com.amazonaws.dynamodb.v20120810#InternalServerError', message: String(err) }));
        });
    });
  });
  const proxyPort = await listen(proxy);
  const endpoint = `http://127.0.0.1:${proxyPort}`;

  const clients: DynamoDBClient[] = [];
  const newClient = (target = endpoint, options: { maxAttempts?: number } = {}): DynamoDBClient =>
    new DynamoDBClient({
      endpoint: target,
      region: 'us-east-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
      ...(options.maxAttempts !== undefined ? { maxAttempts: options.maxAttempts } : {}),
    });
  const client = newClient();
  clients.push(client);
  const doc = DynamoDBDocumentClient.from(client);

  return {
    endpoint,
    dynaliteEndpoint,
    client,
    doc,
    newClient,
    async createTable() {
      const name = `fte-test-${randomUUID()}`;
      await client.send(new CreateTableCommand(createTableInput(name)));
      for (let i = 0; i < 100; i++) {
        const { Table } = await client.send(new DescribeTableCommand({ TableName: name }));
        const indexesActive = (Table?.GlobalSecondaryIndexes ?? []).every((g) => g.IndexStatus === 'ACTIVE');
        if (Table?.TableStatus === 'ACTIVE' && indexesActive) return name;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      throw new Error(`table ${name} did not become ACTIVE`);
    },
    async deleteTable(name) {
      await client.send(new DeleteTableCommand({ TableName: name }));
      keySchemas.delete(name);
    },
    async close() {
      for (const c of clients) c.destroy();
      await closeServer(proxy);
      await closeServer(backend);
    },
  };
}

// ---- TransactWriteItems over dynalite's single-item writes

type Kind = 'Put' | 'Update' | 'Delete' | 'ConditionCheck';

interface Operation {
  kind: Kind;
  table: string;
  key: JsonObject;
  params: JsonObject;
  returnOldOnFailure: boolean;
}

async function transactWrite(
  body: string,
  call: (operation: string, payload: JsonObject) => Promise<Reply>,
  keySchemas: Map<string, string[]>,
): Promise<Reply> {
  const input = asObject(JSON.parse(body) as Json);
  const items = input['TransactItems'];
  if (!Array.isArray(items) || items.length === 0 || items.length > 100) {
    return error('ValidationException', 'TransactItems must hold 1 to 100 actions');
  }

  const operations: Operation[] = [];
  for (const raw of items) {
    const entry = asObject(raw);
    const kinds = (['Put', 'Update', 'Delete', 'ConditionCheck'] as const).filter((k) => entry[k] !== undefined);
    const kind = kinds[0];
    if (kinds.length !== 1 || kind === undefined) return error('ValidationException', 'each action needs exactly one kind');
    const params = { ...asObject(entry[kind] ?? null) };
    const table = params['TableName'];
    if (typeof table !== 'string') return error('ValidationException', 'TableName is required');
    const returnOldOnFailure = params['ReturnValuesOnConditionCheckFailure'] === 'ALL_OLD';
    delete params['ReturnValuesOnConditionCheckFailure'];
    let key: JsonObject;
    if (kind === 'Put') {
      const schema = await keySchema(table, call, keySchemas);
      if (typeof schema !== 'object' || !Array.isArray(schema)) return schema;
      const item = asObject(params['Item'] ?? null);
      key = Object.fromEntries(schema.map((name) => [name, item[name] ?? null]));
    } else {
      key = asObject(params['Key'] ?? null);
    }
    operations.push({ kind, table, key, params, returnOldOnFailure });
  }

  const identities = operations.map((op) => JSON.stringify([op.table, Object.entries(op.key).sort()]));
  if (new Set(identities).size !== identities.length) {
    return error('ValidationException', 'Transaction request cannot include multiple operations on one item');
  }

  const snapshots: (JsonObject | null)[] = [];
  for (const op of operations) {
    const got = await call('GetItem', { TableName: op.table, Key: op.key, ConsistentRead: true });
    if (got.status !== 200) return got;
    const item = asObject(JSON.parse(got.body) as Json)['Item'];
    snapshots.push(item === undefined ? null : asObject(item));
  }

  const restore = async (indexes: number[]): Promise<void> => {
    for (const i of indexes.reverse()) {
      const op = operations[i] as Operation;
      const snapshot = snapshots[i] ?? null;
      const reply = snapshot === null
        ? await call('DeleteItem', { TableName: op.table, Key: op.key })
        : await call('PutItem', { TableName: op.table, Item: snapshot });
      if (reply.status !== 200) throw new Error(`rollback of ${op.kind} on ${op.table} failed: ${reply.body}`);
    }
  };

  const written: number[] = [];
  for (const [i, op] of operations.entries()) {
    const snapshot = snapshots[i] ?? null;
    let reply: Reply;
    if (op.kind === 'ConditionCheck') {
      // Rewriting the item as it is, under the condition, lets dynalite evaluate the condition; restored below.
      const { Key: _key, ...condition } = op.params;
      reply = await call('PutItem', { ...condition, Item: snapshot ?? op.key });
    } else {
      reply = await call(`${op.kind}Item`, op.params);
    }
    if (reply.status !== 200) {
      await restore([...written]);
      const type = asObject(JSON.parse(reply.body) as Json)['__type'];
      if (typeof type === 'string' && type.endsWith('#ConditionalCheckFailedException')) {
        const reasons = operations.map((other, j): JsonObject =>
          j === i
            ? {
                Code: 'ConditionalCheckFailed',
                Message: 'The conditional request failed',
                ...(other.returnOldOnFailure && snapshot !== null ? { Item: snapshot } : {}),
              }
            : { Code: 'None' },
        );
        return {
          status: 400,
          headers: { 'content-type': JSON_TYPE },
          body: JSON.stringify({
            __type: 'com.amazonaws.dynamodb.v20120810#TransactionCanceledException',
            message: `Transaction cancelled, please refer cancellation reasons for specific reasons [${reasons
              .map((r) => String(r['Code']))
              .join(', ')}]`,
            CancellationReasons: reasons,
          }),
        };
      }
      return reply;
    }
    written.push(i);
  }
  await restore(operations.flatMap((op, i) => (op.kind === 'ConditionCheck' ? [i] : [])));
  return { status: 200, headers: { 'content-type': JSON_TYPE }, body: '{}' };
}

async function keySchema(
  table: string,
  call: (operation: string, payload: JsonObject) => Promise<Reply>,
  cache: Map<string, string[]>,
): Promise<string[] | Reply> {
  const cached = cache.get(table);
  if (cached !== undefined) return cached;
  const reply = await call('DescribeTable', { TableName: table });
  if (reply.status !== 200) return reply;
  const description = asObject(asObject(JSON.parse(reply.body) as Json)['Table'] ?? null);
  const schema = description['KeySchema'];
  if (!Array.isArray(schema)) throw new Error(`DescribeTable ${table} returned no KeySchema`);
  const names = schema.map((k) => String(asObject(k)['AttributeName']));
  cache.set(table, names);
  return names;
}

function error(type: string, message: string): Reply {
  return {
    status: 400,
    headers: { 'content-type': JSON_TYPE },
    body: JSON.stringify({ __type: `com.amazon.coral.validate#${type}`, message }),
  };
}

function asObject(value: Json | undefined): JsonObject {
  if (value === null || value === undefined || typeof value !== 'object' || Array.isArray(value)) {
    throw new Error(`expected a JSON object, got ${JSON.stringify(value)}`);
  }
  return value;
}

// ---- HTTP plumbing

function forwardedHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || name === 'host' || name === 'connection' || name === 'content-length') continue;
    out[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

function send(port: number, headers: Record<string, string>, body: string, method = 'POST', path = '/'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        headers: { ...headers, 'content-length': Buffer.byteLength(body), connection: 'close' },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const out: Record<string, string> = {};
          for (const [name, value] of Object.entries(res.headers)) {
            if (value === undefined || name === 'content-length' || name === 'connection' || name === 'transfer-encoding') {
              continue;
            }
            out[name] = Array.isArray(value) ? value.join(', ') : value;
          }
          resolve({ status: res.statusCode ?? 500, headers: out, body: Buffer.concat(chunks).toString('utf8') });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
}

/** One request at a time: the proxy's whole isolation story. */
class Mutex {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn, fn);
    this.tail = result.catch(() => undefined);
    return result;
  }
}
