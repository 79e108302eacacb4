/**
 * gRPC calls over the runtime's `fetch` (HTTP/2 over TLS, negotiated by
 * ALPN), for the agent's calls to the server's gRPC port.
 *
 * Why not `@grpc/grpc-js` here: under Deno it runs on the `node:http2`
 * layer, whose native HTTP/2 session aborted an agent process when the
 * server went away under open streams (`nghttp2_session.c:2402 …
 * Assertion 'stream->closed_next == NULL' failed`, issue 12). `fetch` runs on
 * the runtime's own HTTP/2 client, the one every heartbeat already uses,
 * which turns a vanished server into an error, never an abort. `fetch`
 * streams both ways at once over HTTP/2, which is all a bidirectional gRPC
 * stream needs.
 *
 * One limit: `fetch` does not expose HTTP trailers, so a call that ends
 * after sending messages ends with an unknown status (`code: null`). A call
 * refused before its first message comes "trailers-only" (the status in
 * the headers), which is read. The relay needs no more: it reconnects
 * whatever the status was.
 *
 * Framing (gRPC over HTTP/2): each message is a 1-byte compressed flag, a
 * 4-byte big-endian length and the bytes. Compression is neither asked for
 * (`grpc-accept-encoding: identity`) nor accepted.
 */

/** How a call ended: the gRPC status when the server sent one, else `code: null`. */
export interface CallStatus {
  code: number | null;
  details: string;
}

/** Options of {@link openGrpcStream}. */
export interface GrpcStreamOptions {
  /** The TLS client (trust, client certificate) to call with. */
  client: Deno.HttpClient;
  /** The full URL: the server's base URL and the method path. */
  url: URL;
  /** Called for each message from the server, in order. */
  onMessage: (message: Uint8Array) => void;
  /** Called once, when the call ended for any reason (not after `cancel()`). */
  onClose: (status: CallStatus) => void;
  /**
   * Time allowed from the first message sent to the first message received,
   * in milliseconds: a server that never answers (or a black-holed address)
   * ends the call. Default: 10 000.
   */
  firstMessageTimeoutMs?: number;
}

/** A running bidirectional call. */
export interface GrpcStream {
  /** Queues a message to the server. */
  send(message: Uint8Array): void;
  /** Ends the call at once; `onClose` is not called. */
  cancel(): void;
}

/** The gRPC status of UNAVAILABLE, which is what a transport failure means. */
export const UNAVAILABLE = 14;

/** The 5-byte gRPC message frame around `message`. */
export function frame(message: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(5 + message.length);
  new DataView(out.buffer).setUint32(1, message.length);
  out.set(message, 5);
  return out;
}

/** Splits a byte stream into gRPC messages as chunks arrive. */
export class FrameReader {
  #buffer = new Uint8Array(0);
  readonly #max: number;

  /** `maxMessageBytes`: a longer message is refused. Default: no limit. */
  constructor(options: { maxMessageBytes?: number } = {}) {
    this.#max = options.maxMessageBytes ?? Infinity;
  }

  /**
   * Adds a chunk and returns every message it completed.
   * @throws {Error} On a compressed message, which was never asked for, or
   * one longer than the limit.
   */
  push(chunk: Uint8Array): Uint8Array[] {
    const joined = new Uint8Array(this.#buffer.length + chunk.length);
    joined.set(this.#buffer);
    joined.set(chunk, this.#buffer.length);
    const messages: Uint8Array[] = [];
    let at = 0;
    while (joined.length - at >= 5) {
      if (joined[at] !== 0) throw new Error("A compressed message, which was not asked for");
      const length = new DataView(joined.buffer, joined.byteOffset + at + 1, 4).getUint32(0);
      if (length > this.#max) {
        throw new Error(`A message of ${length} bytes is over the limit of ${this.#max}`);
      }
      if (joined.length - at - 5 < length) break;
      messages.push(joined.slice(at + 5, at + 5 + length));
      at += 5 + length;
    }
    this.#buffer = joined.slice(at);
    return messages;
  }

  /** Bytes of an incomplete message still waiting for the rest. */
  get pending(): number {
    return this.#buffer.length;
  }
}

const HEADERS = {
  "content-type": "application/grpc",
  "te": "trailers",
  "grpc-accept-encoding": "identity",
};

/** The status a trailers-only answer carries in its headers, if any. */
function headerStatus(headers: Headers): CallStatus | null {
  const code = headers.get("grpc-status");
  if (code === null) return null;
  const message = headers.get("grpc-message") ?? "";
  let details = message;
  try {
    details = decodeURIComponent(message);
  } catch {
    // Not percent-encoded after all: keep it as sent.
  }
  return { code: Number(code), details };
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? error.cause.message : undefined;
  return cause !== undefined && cause !== error.message
    ? `${error.message}: ${cause}`
    : error.message;
}

/** Opens a bidirectional gRPC call; see the module comment. */
export function openGrpcStream(options: GrpcStreamOptions): GrpcStream {
  const abort = new AbortController();
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) });
  let done = false;
  const end = () => {
    done = true;
    clearTimeout(timer);
    abort.abort();
    try {
      // The request body too, or the HTTP/2 stream stays half open and the server never knows.
      controller.error(new Error("Call ended"));
    } catch {
      // Already closed.
    }
  };
  const finish = (status: CallStatus) => {
    if (done) return;
    end();
    options.onClose(status);
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  let answered = false;

  (async () => {
    const response = await fetch(options.url, {
      method: "POST",
      headers: HEADERS,
      body,
      client: options.client,
      signal: abort.signal,
    });
    const status = headerStatus(response.headers);
    if (response.status !== 200 || response.body === null) {
      await response.body?.cancel();
      finish(status ?? { code: UNAVAILABLE, details: `HTTP status ${response.status}` });
      return;
    }
    const reader = new FrameReader();
    for await (const chunk of response.body) {
      if (done) return;
      for (const message of reader.push(chunk)) {
        answered = true;
        clearTimeout(timer);
        if (!done) options.onMessage(message);
      }
    }
    finish(status ?? { code: null, details: "The server ended the stream" });
  })().catch((error) => {
    finish({ code: UNAVAILABLE, details: describe(error) });
  });

  return {
    send(message) {
      if (done) return;
      if (!answered && timer === undefined) {
        timer = setTimeout(
          () => finish({ code: UNAVAILABLE, details: "No answer from the server in time" }),
          options.firstMessageTimeoutMs ?? 10_000,
        );
      }
      try {
        controller.enqueue(frame(message));
      } catch {
        // The request body was already closed by the transport; onClose follows.
      }
    },
    cancel() {
      if (!done) end();
    },
  };
}

/** A call the server answered with a gRPC status other than OK. */
export class GrpcStatusError extends Error {
  constructor(readonly code: number, readonly details: string) {
    super(`gRPC status ${code}: ${details}`);
    this.name = "GrpcStatusError";
  }
}

/**
 * One unary call: sends `message`, returns the server's answer. Rejects with
 * a {@link GrpcStatusError} when the server refused it, or on a transport
 * failure or when `signal` aborts.
 */
export async function grpcUnary(
  client: Deno.HttpClient,
  url: URL,
  message: Uint8Array,
  signal: AbortSignal,
): Promise<Uint8Array> {
  const response = await fetch(url, {
    method: "POST",
    headers: HEADERS,
    body: frame(message),
    client,
    signal,
  });
  const bytes = new Uint8Array(await response.arrayBuffer());
  const status = headerStatus(response.headers);
  if (response.status !== 200) throw new Error(`HTTP status ${response.status}`);
  if (status?.code != null && status.code !== 0) {
    throw new GrpcStatusError(status.code, status.details);
  }
  const [answer] = new FrameReader().push(bytes);
  if (answer === undefined) throw new Error("The server sent no message");
  return answer;
}
