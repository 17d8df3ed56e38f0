import * as z from 'zod';
import {
  addTaskResponseSchema,
  dashboardSchema,
  errorResponseSchema,
  healthSchema,
  metricsSchema,
  queueSchema,
  resumeResponseSchema,
  statusSchema,
  stopResponseSchema,
  taskActionResponseSchema,
  taskDetailSchema,
  type AddTaskRequest,
  type AddTaskResponse,
  type DashboardReport,
  type HealthReportWire,
  type MetricsReport,
  type QueueReport,
  type ResumeResponse,
  type StatusReport,
  type StopResponse,
  type TaskActionResponse,
  type TaskDetail,
} from '../app/contracts.ts';
import type { TimeWindow } from '../app/reads.ts';
import type { ApiBackend, Caller } from './backend.ts';
import type { SigV4Options } from './sigv4.ts';
import type { SigV4Signer } from './sigv4-signer.ts';

/**
 * A client of fte's HTTP API that is itself an ApiBackend, so the CLI reads a running orchestrator (or the cloud API)
 * exactly as it reads the store. Responses are validated with the same contracts the server validates them with.
 */

/** The server answered with an error: its code and message are passed on as they are. */
export class ApiRequestError extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ApiRequestError';
  }
}

/** Nothing answered (connection refused, timeout, not an fte API). */
export class ApiUnavailableError extends Error {
  readonly code = 'API_UNAVAILABLE' as const;
}

/** A request could not be signed: no AWS credentials found, or they could not be refreshed. */
export class ApiSigningError extends Error {
  readonly code = 'AWS_SIGNING_FAILED' as const;
}

/**
 * How the client proves who it is. `token`: the local API's bearer token. `sigv4`: AWS Signature Version 4 with the
 * caller's AWS credentials, which the cloud API (API Gateway with IAM auth) requires on every request.
 */
export type ApiClientAuth = { readonly kind: 'token'; readonly token: string } | ({ readonly kind: 'sigv4' } & SigV4Options);

export interface ApiClientOptions {
  readonly baseUrl: string;
  /** Sent as `Authorization: Bearer <token>` when given (and `auth` is not). */
  readonly token?: string | undefined;
  /** Overrides `token` when given. */
  readonly auth?: ApiClientAuth;
  readonly timeoutMs?: number;
  readonly fetch?: typeof fetch;
}

export class ApiClient implements ApiBackend {
  private readonly base: string;
  private readonly doFetch: typeof fetch;
  private signer: Promise<SigV4Signer> | null = null;

  constructor(private readonly options: ApiClientOptions) {
    this.base = options.baseUrl.replace(/\/+$/, '');
    this.doFetch = options.fetch ?? fetch;
  }

  /**
   * The headers that authenticate a request. A SigV4 signature covers the method, the URL, these headers and the body,
   * so it is computed last, over exactly what is sent.
   */
  private async authenticate(method: string, url: string, headers: Record<string, string>, body: string | undefined): Promise<Record<string, string>> {
    const auth = this.options.auth;
    if (auth === undefined || auth.kind === 'token') {
      const token = auth?.token ?? this.options.token;
      return token !== undefined && token !== '' ? { ...headers, authorization: `Bearer ${token}` } : headers;
    }
    // The AWS SDK's credential chain is loaded only by a client that signs.
    this.signer ??= import('./sigv4-signer.ts').then((m) => m.createSigV4Signer(auth));
    try {
      return await (await this.signer).sign({ method, url: new URL(url), headers, ...(body !== undefined ? { body } : {}) });
    } catch (err) {
      throw new ApiSigningError(`cannot sign the request to ${this.base} with AWS credentials: ${err instanceof Error ? err.message : String(err)}`, {
        cause: err,
      });
    }
  }

  private async request(method: 'GET' | 'POST', path: string, body?: unknown): Promise<Response> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const url = `${this.base}${path}`;
    const text = body !== undefined ? JSON.stringify(body) : undefined;
    const sent = await this.authenticate(method, url, headers, text);
    let response: Response;
    try {
      response = await this.doFetch(url, {
        method,
        headers: sent,
        ...(text !== undefined ? { body: text } : {}),
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 10_000),
      });
    } catch (err) {
      throw new ApiUnavailableError(`cannot reach the fte API at ${this.base}: ${(err as Error).message}`, { cause: err });
    }
    if (!response.ok) {
      const text = await response.text();
      let parsed: z.infer<typeof errorResponseSchema> | null = null;
      try {
        const result = errorResponseSchema.safeParse(JSON.parse(text));
        if (result.success) parsed = result.data;
      } catch {
        parsed = null;
      }
      if (parsed !== null) throw new ApiRequestError(parsed.error.code, response.status, parsed.error.message);
      throw new ApiRequestError('HTTP_ERROR', response.status, `${method} ${path} failed with HTTP ${response.status}`);
    }
    return response;
  }

  private async json<S extends z.ZodType>(schema: S, method: 'GET' | 'POST', path: string, body?: unknown): Promise<z.output<S>> {
    const response = await this.request(method, path, body);
    let raw: unknown;
    try {
      raw = await response.json();
    } catch (err) {
      throw new ApiUnavailableError(`${this.base}${path} did not answer with JSON; is it an fte API?`, { cause: err });
    }
    const parsed = schema.safeParse(raw);
    if (!parsed.success) {
      throw new ApiUnavailableError(`${this.base}${path} answered outside the fte contract: ${z.prettifyError(parsed.error)}`);
    }
    return parsed.data;
  }

  private static windowQuery(window: TimeWindow): string {
    return `since=${encodeURIComponent(window.since.toISOString())}&until=${encodeURIComponent(window.until.toISOString())}`;
  }

  status(): Promise<StatusReport> {
    return this.json(statusSchema, 'GET', '/status');
  }

  queue(): Promise<QueueReport> {
    return this.json(queueSchema, 'GET', '/queue');
  }

  metrics(window: TimeWindow): Promise<MetricsReport> {
    return this.json(metricsSchema, 'GET', `/metrics?${ApiClient.windowQuery(window)}`);
  }

  health(): Promise<HealthReportWire> {
    return this.json(healthSchema, 'GET', '/health');
  }

  dashboard(window: TimeWindow): Promise<DashboardReport> {
    return this.json(dashboardSchema, 'GET', `/dashboard?${ApiClient.windowQuery(window)}`);
  }

  task(id: string): Promise<TaskDetail> {
    return this.json(taskDetailSchema, 'GET', `/tasks/${encodeURIComponent(id)}`);
  }

  async prometheus(): Promise<string> {
    return (await this.request('GET', '/metrics/prometheus')).text();
  }

  /** The caller arguments of the port are ignored: the server decides who the caller is from its credentials. */
  addTask(input: AddTaskRequest, _caller?: Caller): Promise<AddTaskResponse> {
    return this.json(addTaskResponseSchema, 'POST', '/tasks', input);
  }

  approve(id: string, _caller?: Caller): Promise<TaskActionResponse> {
    return this.json(taskActionResponseSchema, 'POST', `/tasks/${encodeURIComponent(id)}/approve`, {});
  }

  reject(id: string, _caller: Caller, reason?: string): Promise<TaskActionResponse> {
    return this.json(taskActionResponseSchema, 'POST', `/tasks/${encodeURIComponent(id)}/reject`, reason === undefined ? {} : { reason });
  }

  stop(options: { now: boolean; reason?: string }, _caller?: Caller): Promise<StopResponse> {
    return this.json(stopResponseSchema, 'POST', '/stop', options.reason === undefined ? { now: options.now } : options);
  }

  resume(_caller?: Caller): Promise<ResumeResponse> {
    return this.json(resumeResponseSchema, 'POST', '/resume', {});
  }
}
