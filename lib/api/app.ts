import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import * as z from 'zod';
import {
  addTaskRequestSchema,
  addTaskResponseSchema,
  approveRequestSchema,
  dashboardSchema,
  healthSchema,
  metricsSchema,
  queueSchema,
  rejectRequestSchema,
  resumeRequestSchema,
  resumeResponseSchema,
  statusSchema,
  stopRequestSchema,
  stopResponseSchema,
  taskActionResponseSchema,
  taskDetailSchema,
} from '../app/contracts.ts';
import { DEFAULT_WINDOW_MS, type TimeWindow } from '../app/reads.ts';
import { PROMETHEUS_CONTENT_TYPE } from '../core/prometheus.ts';
import { parseSince } from '../core/since.ts';
import { assertValidTaskId } from '../core/task.ts';
import { bearerMatches, type ApiAuth } from './auth.ts';
import type { ApiBackend, Caller } from './backend.ts';
import { ApiError, mapError, type ErrorMapping } from './errors.ts';
import { WEB_SECURITY_HEADERS, type WebAssets } from './web-assets.ts';

/**
 * fte's HTTP API as a Hono app: plain `fetch(Request) → Response`, so the same app runs under the local Node server
 * (lib/local/http-server.ts) and behind API Gateway in a Lambda. It knows nothing of either runtime: reads and writes
 * go through the ApiBackend port, authentication is a parameter.
 *
 * Every request body and every response body is checked against the zod contracts of lib/app/contracts.ts. A response
 * that fails its contract is a bug in fte and becomes a 500 rather than a malformed payload a client would trust.
 */

/** Bodies are small JSON documents; 64 KiB leaves room for a long task description and none for abuse. */
export const MAX_BODY_BYTES = 64 * 1024;

export interface AppOptions {
  readonly backend: ApiBackend;
  readonly auth: ApiAuth;
  readonly clock?: () => Date;
  readonly maxBodyBytes?: number;
  /** Who the caller is, for the task history; the local API has one token, so one principal: "api". */
  readonly identify?: (c: Context) => string;
  /** Called for 5xx errors, which the response describes only generically. */
  readonly onInternalError?: (err: unknown, mapping: ErrorMapping) => void;
  /**
   * The web dashboard's files (lib/api/web-assets.ts), served at `GET /` and `/web/*` without authentication: they
   * hold no data, and the page calls the API with the bearer token like any client. Without this option (the cloud)
   * there is no page.
   */
  readonly web?: WebAssets;
}

function errorResponse(mapping: Pick<ErrorMapping, 'status' | 'code' | 'message'>, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify({ error: { code: mapping.code, message: mapping.message } }), {
    status: mapping.status,
    headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers },
  });
}

/** Send `data` after checking it against its contract. */
function respond<S extends z.ZodType>(schema: S, data: z.input<S>, status: 200 | 201 = 200): Response {
  const parsed = schema.safeParse(data);
  if (!parsed.success) {
    throw new ApiError('RESPONSE_INVALID', 500, `response failed its contract: ${z.prettifyError(parsed.error)}`);
  }
  return new Response(JSON.stringify(parsed.data), {
    status,
    headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' },
  });
}

function isJsonType(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const mediaType = (contentType.split(';')[0] ?? '').trim().toLowerCase();
  return mediaType === 'application/json' || /^application\/[a-z0-9.+-]+\+json$/.test(mediaType);
}

/**
 * The request body as `schema` describes it. An empty body is `{}`, so actions without parameters (approve, resume)
 * need no body at all; a non-empty one must be declared as JSON — which also keeps a browser's form posts out.
 */
async function readBody<S extends z.ZodType>(c: Context, schema: S): Promise<z.output<S>> {
  const text = await c.req.text();
  let raw: unknown = {};
  if (text.trim().length > 0) {
    if (!isJsonType(c.req.header('content-type'))) {
      throw new ApiError('UNSUPPORTED_MEDIA_TYPE', 415, 'the request body must be JSON (Content-Type: application/json)');
    }
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw new ApiError('INVALID_JSON', 400, `the request body is not valid JSON: ${(err as Error).message}`);
    }
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new ApiError('VALIDATION_FAILED', 400, `invalid request body: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

function taskId(c: Context): string {
  const id = c.req.param('id');
  if (id === undefined) throw new ApiError('BAD_REQUEST', 400, 'missing task id');
  assertValidTaskId(id);
  return id;
}

/** `?since=` (a duration such as 24h, or an ISO time) and `?until=` (ISO, default now) as a window. */
function windowOf(c: Context, now: Date): TimeWindow {
  const sinceText = c.req.query('since');
  const untilText = c.req.query('until');
  const until = untilText === undefined ? now : parseSince(untilText, now);
  const since = sinceText === undefined ? new Date(until.getTime() - DEFAULT_WINDOW_MS) : parseSince(sinceText, now);
  if (since.getTime() >= until.getTime()) {
    throw new ApiError('BAD_REQUEST', 400, `since (${since.toISOString()}) must be before until (${until.toISOString()})`);
  }
  return { since, until };
}

export function createApp(options: AppOptions): Hono {
  const { backend, auth } = options;
  const clock = options.clock ?? (() => new Date());
  const maxBodyBytes = options.maxBodyBytes ?? MAX_BODY_BYTES;
  const caller = (c: Context): Caller => ({ actor: options.identify?.(c) ?? 'api' });
  const app = new Hono();

  app.onError((err) => {
    const mapping = mapError(err);
    if (mapping.internal) options.onInternalError?.(err, mapping);
    return errorResponse(mapping);
  });
  app.notFound((c) => errorResponse({ status: 404, code: 'NOT_FOUND', message: `no route ${c.req.method} ${c.req.path}` }));

  // The dashboard's static files are the only thing served without the token: a browser's first request cannot carry
  // a bearer header, and they contain no data — the page reads everything through the API with the token the operator
  // gave it (docs/API.md, "Web dashboard"). Only GET and HEAD of exactly these paths are public.
  const web = options.web;
  const isPublic = (c: Context): boolean => web !== undefined && (c.req.method === 'GET' || c.req.method === 'HEAD') && web.has(c.req.path);

  // Authentication comes before anything reads the body, so an unauthenticated caller cannot make fte buffer 64 KiB.
  app.use('*', async (c, next) => {
    if (auth.kind === 'bearer' && !isPublic(c) && !bearerMatches(c.req.header('authorization'), auth.token)) {
      return errorResponse(
        { status: 401, code: 'UNAUTHORIZED', message: 'missing or invalid bearer token (Authorization: Bearer <token from .fte/api-token>)' },
        // The body (if any) is left unread; a keep-alive client must not send its next request down this connection.
        { 'www-authenticate': 'Bearer realm="fte"', connection: 'close' },
      );
    }
    await next();
  });
  app.use(
    '*',
    bodyLimit({
      maxSize: maxBodyBytes,
      onError: () =>
        errorResponse(
          { status: 413, code: 'PAYLOAD_TOO_LARGE', message: `the request body exceeds ${maxBodyBytes} bytes` },
          // The rest of the body is never read: the connection cannot carry another request.
          { connection: 'close' },
        ),
    }),
  );

  for (const asset of web?.values() ?? []) {
    app.get(asset.path, () => new Response(asset.body, { status: 200, headers: { 'content-type': asset.contentType, ...WEB_SECURITY_HEADERS } }));
  }

  // Reads.
  app.get('/status', async () => respond(statusSchema, await backend.status()));
  app.get('/queue', async () => respond(queueSchema, await backend.queue()));
  app.get('/metrics', async (c) => respond(metricsSchema, await backend.metrics(windowOf(c, clock()))));
  app.get('/metrics/prometheus', async () => {
    const text = await backend.prometheus();
    return new Response(text, { status: 200, headers: { 'content-type': PROMETHEUS_CONTENT_TYPE, 'cache-control': 'no-store' } });
  });
  app.get('/health', async () => respond(healthSchema, await backend.health()));
  app.get('/dashboard', async (c) => respond(dashboardSchema, await backend.dashboard(windowOf(c, clock()))));
  app.get('/tasks/:id', async (c) => respond(taskDetailSchema, await backend.task(taskId(c))));

  // Writes.
  app.post('/tasks', async (c) => {
    const input = await readBody(c, addTaskRequestSchema);
    return respond(addTaskResponseSchema, await backend.addTask(input, caller(c)), 201);
  });
  app.post('/tasks/:id/approve', async (c) => {
    const id = taskId(c);
    await readBody(c, approveRequestSchema);
    return respond(taskActionResponseSchema, await backend.approve(id, caller(c)));
  });
  app.post('/tasks/:id/reject', async (c) => {
    const id = taskId(c);
    const body = await readBody(c, rejectRequestSchema);
    return respond(taskActionResponseSchema, await backend.reject(id, caller(c), body.reason));
  });
  app.post('/stop', async (c) => {
    const body = await readBody(c, stopRequestSchema);
    const stopOptions = body.reason === undefined ? { now: body.now === true } : { now: body.now === true, reason: body.reason };
    return respond(stopResponseSchema, await backend.stop(stopOptions, caller(c)));
  });
  app.post('/resume', async (c) => {
    await readBody(c, resumeRequestSchema);
    return respond(resumeResponseSchema, await backend.resume(caller(c)));
  });

  return app;
}
