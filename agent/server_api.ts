/**
 * The agent's calls to the server's REST API, and nothing else: register,
 * heartbeat and deregister a node; enrol, renew and read the CA's roots.
 * Requests, problem documents and error kinds are the REST client's
 * (`client/api_client.ts`); what is the agent's own is the transport: the
 * TLS client of each request comes from a {@link ClientSource}, so a renewed
 * certificate or a new trust bundle applies from the next call on. Every
 * call resolves to a result the agent's loops can switch on; none throws,
 * because each failure has its own retry policy there.
 */
import { ApiClient, type ApiResult, type RequestOptions } from "../client/api_client.ts";
import { VERSION } from "../core/version.ts";
import type { HeartbeatBody, RegistrationBody } from "./registration.ts";
import type { ClientSource } from "./tls_clients.ts";

export type { ApiResult } from "../client/api_client.ts";

/** The body of a successful registration. */
export interface RegistrationReply {
  node: unknown;
  instances: unknown[];
}

/** The body of `POST /v1/ca/enrol`. */
export interface EnrolBody {
  /** The join token, as given to the agent. */
  token: string;
  /** PEM PKCS#10 request for `CN=<node>` and the SPIFFE ID as URI SAN. */
  csr: string;
  node: string;
}

/** The body of `POST /v1/ca/renew`. */
export interface RenewBody {
  csr: string;
}

/** Options of {@link ServerApi}. */
export interface ServerApiOptions {
  /**
   * Gives the TLS client of each request (trusted roots, client certificate).
   * Default: none, the runtime's default client (system roots, no client
   * certificate); for plain-HTTP tests.
   */
  clients?: ClientSource;
  /** Time after which a call gives up, in milliseconds. Default: 10 000. */
  timeoutMs?: number;
}

/** Options of one call. */
export interface CallOptions {
  /** Aborts the call (the agent's shutdown). */
  signal?: AbortSignal;
  /** Overrides {@link ServerApiOptions.timeoutMs} for this call. */
  timeoutMs?: number;
}

/** What {@link ServerApi} passes down for one call. */
interface SendOptions extends CallOptions {
  /** See {@link RequestOptions.idempotent}; default: by method. */
  idempotent?: boolean;
}

/** Client of the node and CA endpoints of the server's REST API. */
export class ServerApi {
  readonly server: string;
  #client: ApiClient;
  #options: ServerApiOptions;
  /** `fetch` over the pool's current TLS client, or the runtime's own without a pool. */
  #fetch: typeof fetch;

  /** `server` is the base URL, e.g. `https://10.0.0.1:8443`; a path prefix is kept. */
  constructor(server: string, options: ServerApiOptions = {}) {
    this.server = server;
    this.#options = options;
    const clients = options.clients;
    this.#fetch = clients
      ? (input, init) => fetchWith(clients, input, init)
      : (input, init) => fetch(input, init);
    this.#client = this.#newClient(this.#fetch);
  }

  #newClient(fetchFn: typeof fetch): ApiClient {
    const clients = this.#options.clients;
    return new ApiClient({
      server: this.server,
      headers: { "user-agent": `ironmesh-agent/${VERSION}` },
      timeoutMs: this.#options.timeoutMs ?? 10_000,
      fetch: fetchFn,
      ...(clients ? { onStaleConnection: () => clients.refresh() } : {}),
    });
  }

  /**
   * One page of the list at `path` (e.g. `/v1/instances`), a blocking query
   * when `query` has `index` and `wait`: the outcome, and the answer's
   * `X-Ironmesh-Index` (`null` when it has none) to pass as the next `index`.
   */
  async watchList<T>(
    path: string,
    query: Record<string, string>,
    options: CallOptions = {},
  ): Promise<{ result: ApiResult<{ items: T[]; next?: string | null }>; index: number | null }> {
    let index: number | null = null;
    // A client of its own for this call, to read the header the shared one does not return.
    const client = this.#newClient(async (input, init) => {
      const response = await this.#fetch(input, init);
      const header = response.headers.get("x-ironmesh-index");
      if (header !== null && /^\d+$/.test(header)) index = Number(header);
      return response;
    });
    const result = await client.call<{ items: T[]; next?: string | null }>("GET", path, {
      query,
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    });
    return { result, index };
  }

  /** `GET /v1/ca/roots`: the trust bundle; public. */
  roots(options: CallOptions = {}): Promise<ApiResult<unknown>> {
    return this.#call("GET", "/v1/ca/roots", undefined, options);
  }

  /** `POST /v1/ca/enrol`: trades a join token and a CSR for a certificate; no client certificate. */
  enrol(body: EnrolBody, options: CallOptions = {}): Promise<ApiResult<unknown>> {
    return this.#call("POST", "/v1/ca/enrol", body, options);
  }

  /** `POST /v1/ca/renew`: a new certificate for the one presented over mTLS. */
  renew(body: RenewBody, options: CallOptions = {}): Promise<ApiResult<unknown>> {
    return this.#call("POST", "/v1/ca/renew", body, options);
  }

  /** `PUT /v1/nodes/{node}/registration`: the node's whole state. */
  register(
    node: string,
    body: RegistrationBody,
    options: CallOptions = {},
  ): Promise<ApiResult<RegistrationReply>> {
    return this.#call("PUT", `/v1/nodes/${encodeURIComponent(node)}/registration`, body, options);
  }

  /** `POST /v1/nodes/{node}/heartbeat`: liveness plus every check's status. */
  heartbeat(
    node: string,
    body: HeartbeatBody,
    options: CallOptions = {},
  ): Promise<ApiResult<unknown>> {
    // Idempotent by contract (the latest status wins), so a heartbeat whose
    // connection the server closed is sent again rather than lost.
    return this.#call("POST", `/v1/nodes/${encodeURIComponent(node)}/heartbeat`, body, {
      ...options,
      idempotent: true,
    });
  }

  /** `DELETE /v1/nodes/{node}`: removes the node and its instances. */
  deregister(node: string, options: CallOptions = {}): Promise<ApiResult<unknown>> {
    return this.#call("DELETE", `/v1/nodes/${encodeURIComponent(node)}`, undefined, options);
  }

  #call<T>(
    method: string,
    path: string,
    body: unknown,
    options: SendOptions,
  ): Promise<ApiResult<T>> {
    const request: RequestOptions = {
      ...(body === undefined ? {} : { body }),
      ...(options.idempotent === undefined ? {} : { idempotent: options.idempotent }),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    };
    return this.#client.call<T>(method, path, request);
  }
}

/**
 * `fetch` over the pool's current TLS client. The answer is read here, before
 * the lease is released: the pool must not close a client under a live response.
 */
async function fetchWith(
  clients: ClientSource,
  input: RequestInfo | URL,
  init: RequestInit | undefined,
): Promise<Response> {
  const lease = clients.acquire();
  try {
    const response = await fetch(input, { ...init, client: lease.client });
    const bytes = await response.arrayBuffer();
    return new Response(bytes.byteLength === 0 ? null : bytes, {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  } finally {
    lease.release();
  }
}
