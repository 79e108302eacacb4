/**
 * The one place the agent builds its TLS clients. A `Deno.HttpClient` fixes
 * its trusted roots and client certificate when it is created, so a renewed
 * certificate or a rotated trust bundle needs a new client. The pool hands
 * out the current client per request and retires the old one only once its
 * last request has finished: a heartbeat that started just before a swap
 * completes on the connection it started on, so a swap never fails one.
 * A client's connections are reused from one request to the next (keep-alive);
 * the server keeps them open longer than any heartbeat interval.
 */

/** What a TLS client trusts and presents. */
export interface TlsMaterial {
  /** PEM roots that verify the server's certificate (the trust bundle). */
  caPem: string;
  /** PEM client certificate chain (leaf first) for mTLS; absent before enrolment. */
  certPem?: string;
  /** PEM PKCS#8 private key of `certPem`. */
  keyPem?: string;
}

/** One borrowed client; call `release()` once the response body has been read. */
export interface Lease {
  client: Deno.HttpClient;
  release(): void;
}

/** Where {@link ServerApi} gets the client for each request. */
export interface ClientSource {
  acquire(): Lease;
  /**
   * Makes later requests use a new client with the same material, hence new
   * connections: for a resend after the server closed a connection, which
   * must not pick another stale connection of the old client's pool.
   */
  refresh(): void;
}

interface Entry {
  client: Deno.HttpClient;
  users: number;
  retired: boolean;
  closed: boolean;
}

/** Builds a client from PEM material; the one call of `Deno.createHttpClient` in the agent. */
export function createTlsClient(material: TlsMaterial): Deno.HttpClient {
  return Deno.createHttpClient({
    caCerts: [material.caPem],
    ...(material.certPem !== undefined && material.keyPem !== undefined
      ? { cert: material.certPem, key: material.keyPem }
      : {}),
  });
}

function closeIfIdle(entry: Entry): void {
  if (entry.retired && entry.users === 0 && !entry.closed) {
    entry.closed = true;
    entry.client.close();
  }
}

/**
 * The current client plus any retired ones still serving a request. Every
 * client is closed once retired and idle; `close()` retires the current one.
 */
export class ClientPool implements ClientSource {
  #current: Entry;
  #material: TlsMaterial;
  #closed = false;

  constructor(material: TlsMaterial) {
    this.#material = material;
    this.#current = { client: createTlsClient(material), users: 0, retired: false, closed: false };
  }

  /** Makes later requests use `material`; requests already running finish on the old client. */
  update(material: TlsMaterial): void {
    if (this.#closed) throw new Error("Client pool is closed");
    // Built before the old one retires: if the PEM is bad this throws and
    // the agent keeps a working client.
    const next: Entry = {
      client: createTlsClient(material),
      users: 0,
      retired: false,
      closed: false,
    };
    const old = this.#current;
    this.#current = next;
    this.#material = material;
    old.retired = true;
    closeIfIdle(old);
  }

  /** Swaps in a new client with the current material; see {@link ClientSource.refresh}. */
  refresh(): void {
    if (!this.#closed) this.update(this.#material);
  }

  /** Borrows the current client. */
  acquire(): Lease {
    if (this.#closed) throw new Error("Client pool is closed");
    const entry = this.#current;
    entry.users++;
    let released = false;
    return {
      client: entry.client,
      release: () => {
        if (released) return;
        released = true;
        entry.users--;
        closeIfIdle(entry);
      },
    };
  }

  /** Closes the current client once idle; a borrowed one closes on its release. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#current.retired = true;
    closeIfIdle(this.#current);
  }
}
