/**
 * A minimal HTTP/1.1 keep-alive client over `Deno.connect`, one request in
 * flight per connection (no pipelining), for the load generator. It exists
 * because on a 2-core machine shared with the server the generator's own
 * CPU cost bounds what can be measured: requests are pre-encoded bytes and
 * a response is parsed only as far as status line, `content-length` and
 * body, which costs several times less CPU per request than `fetch`.
 *
 * It handles exactly what the Ironmesh server sends: responses framed by
 * `content-length`. Anything else (chunked bodies, a closed connection) is
 * an error, and the connection is closed.
 */

const CRLFCRLF = [13, 10, 13, 10] as const;
const latin1 = new TextDecoder("latin1");
const encoder = new TextEncoder();

/** One parsed response. */
export interface Http1Response {
  status: number;
  body: Uint8Array;
}

/** Encodes a request with a JSON body for {@link Http1Connection.send}. */
export function encodeRequest(
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
): Uint8Array {
  const payload = body === undefined ? new Uint8Array() : encoder.encode(body);
  const lines = [`${method} ${path} HTTP/1.1`, "host: 127.0.0.1"];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  if (body !== undefined) {
    lines.push("content-type: application/json", `content-length: ${payload.length}`);
  }
  const head = encoder.encode(lines.join("\r\n") + "\r\n\r\n");
  const request = new Uint8Array(head.length + payload.length);
  request.set(head);
  request.set(payload, head.length);
  return request;
}

/** One keep-alive connection carrying one request at a time. */
export class Http1Connection {
  readonly #conn: Deno.TcpConn;
  #buffer = new Uint8Array(16 * 1024);
  #filled = 0;
  #busy = false;
  #closed = false;

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  /** Connects to `host:port` with Nagle's algorithm off, as latency tests need. */
  static async open(host: string, port: number): Promise<Http1Connection> {
    const conn = await Deno.connect({ hostname: host, port, transport: "tcp" });
    conn.setNoDelay(true);
    return new Http1Connection(conn);
  }

  /** True once the connection failed or was closed; it must then be replaced. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Sends one pre-encoded request and reads its response. */
  async send(request: Uint8Array): Promise<Http1Response> {
    if (this.#busy) throw new Error("Connection busy: pipelining is not supported");
    if (this.#closed) throw new Error("Connection closed");
    this.#busy = true;
    try {
      await this.#writeAll(request);
      return await this.#readResponse();
    } catch (error) {
      this.close();
      throw error;
    } finally {
      this.#busy = false;
    }
  }

  /** Closes the connection; further sends fail. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed by the peer.
    }
  }

  async #writeAll(bytes: Uint8Array): Promise<void> {
    let written = 0;
    while (written < bytes.length) written += await this.#conn.write(bytes.subarray(written));
  }

  async #readResponse(): Promise<Http1Response> {
    let headEnd = -1;
    while ((headEnd = indexOfHeadEnd(this.#buffer, this.#filled)) < 0) await this.#fill();
    const head = latin1.decode(this.#buffer.subarray(0, headEnd));
    const status = Number(head.slice(9, 12));
    const match = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    if (!match) {
      throw new Error(`Unsupported response framing: no content-length (status ${status})`);
    }
    const bodyStart = headEnd + CRLFCRLF.length;
    const total = bodyStart + Number(match[1]);
    while (this.#filled < total) await this.#fill(total);
    const body = this.#buffer.slice(bodyStart, total);
    this.#buffer.copyWithin(0, total, this.#filled);
    this.#filled -= total;
    return { status, body };
  }

  /** Reads more bytes, growing the buffer to hold at least `need` bytes. */
  async #fill(need = 0): Promise<void> {
    if (this.#filled === this.#buffer.length || need > this.#buffer.length) {
      const grown = new Uint8Array(Math.max(need, this.#buffer.length * 2));
      grown.set(this.#buffer.subarray(0, this.#filled));
      this.#buffer = grown;
    }
    const n = await this.#conn.read(this.#buffer.subarray(this.#filled));
    if (n === null) throw new Error("Connection closed by the server");
    this.#filled += n;
  }
}

function indexOfHeadEnd(buffer: Uint8Array, length: number): number {
  for (let i = 0; i + 3 < length; i++) {
    if (
      buffer[i] === CRLFCRLF[0] && buffer[i + 1] === CRLFCRLF[1] &&
      buffer[i + 2] === CRLFCRLF[2] && buffer[i + 3] === CRLFCRLF[3]
    ) return i;
  }
  return -1;
}
