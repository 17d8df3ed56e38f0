import { z } from 'zod';
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

export interface ApiClientOptions {
  readonly baseUrl: string;
  /** Sent as `Authorization: Bearer <token>` when given. */
  readonly token?: string | undefined;
  readonly timeoutMs?: number;
  readonly fetch?: typeof fetch;
}

export class ApiClient implements ApiBackend {
  private readonly base: string;
  private readonly doFetch: typeof fetch;

  constructor(private readonly options: ApiClientOptions) {
    this.base = options.baseUrl.replace(/\/+$/, '');
    this.doFetch = options.fetch ?? fetch;
  }

  private async request(method: 'GET' | 'POST', path: string, body?: unknown): Promise<Response> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.options.token !== undefined && this.options.token !== '') headers['authorization'] = `Bearer ${this.options.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await this.doFetch(`${this.base}${path}`, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
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
