/**
 * The agent's part of the sidecar's secrets (SDS): Envoy asks its ADS stream
 * for the secrets `default` (its workload certificate and key) and `ROOTCA`
 * (the trust bundle). The agent answers `default` itself, from the key it
 * generated on this host and the certificate the server signed, so the
 * private key never leaves the host; everything else goes to the server.
 *
 * {@link SdsSplitter} sits on one relayed state-of-the-world ADS stream. It
 * reads the top-level fields of each DiscoveryRequest from Envoy at the wire
 * level (no schema beyond the few field numbers below) and:
 *
 * - answers a Secret request naming `default` with a DiscoveryResponse of its
 *   own (version: the certificate's hash; nonces its own), once per
 *   subscription and again after each renewal ({@link SdsSplitter.renewed});
 * - forwards the request without `default`, so the server sees only `ROOTCA`
 *   (or whatever else is named), with Envoy's version and nonce translated:
 *   Envoy answers both sources' responses on one per-type (version, nonce)
 *   slot, and the server must see only its own. A request that only ACKs the
 *   agent's response is not forwarded at all, unless the names changed
 *   (then it goes up as a fresh request: empty nonce, the version Envoy last
 *   accepted from the server);
 * - passes every other message through byte for byte, including fields the
 *   agent does not know (the node, resource locators).
 *
 * Requests are read and rewritten by hand with protobufjs's Reader and Writer
 * rather than through the strict codec (`xds/proto/codec.ts`): the agent
 * layer may not import `xds/`, it needs five field numbers, and rewriting at
 * the wire level keeps every field of a forwarded request intact, which
 * decoding and re-encoding with a schema would not. The tests check these
 * bytes against Envoy's own descriptor with the strict codec.
 *
 * The secret itself is built with the rest of the Envoy configuration, in
 * `core/workload_secret.ts`.
 *
 * Field numbers (envoy.service.discovery.v3): DiscoveryRequest: version_info 1,
 * node 2, resource_names 3, type_url 4, response_nonce 5, error_detail 6
 * (google.rpc.Status: message 2).
 */
import protobuf from "protobufjs";
import type { Logger } from "../core/log.ts";
import { WORKLOAD_CERT_SECRET } from "../core/sds_names.ts";
import {
  SDS_TYPE_URL,
  tlsCertificateResponse,
  type WorkloadCertificate,
} from "../core/workload_secret.ts";

/** The wire type of strings, bytes and messages. */
const LEN = 2;
const tag = (field: number, wireType: number) => (field << 3 | wireType) >>> 0;

/** The parts of a DiscoveryRequest the splitter reads. */
export interface DiscoveryRequestHead {
  versionInfo: string;
  typeUrl: string;
  responseNonce: string;
  resourceNames: string[];
  /** The message of `error_detail` (a NACK), or `null` when the request has none. */
  error: string | null;
  /** The `node` field as it is on the wire (tag, length, body), or `null` when absent. */
  node: Uint8Array | null;
}

function readStatusMessage(bytes: Uint8Array): string {
  const reader = protobuf.Reader.create(bytes);
  let message = "";
  while (reader.pos < reader.len) {
    const t = reader.uint32();
    if (t === tag(2, LEN)) message = reader.string();
    else reader.skipType(t & 7);
  }
  return message;
}

/**
 * Reads the top-level fields of an encoded DiscoveryRequest.
 * @throws {Error} If the bytes are not protobuf.
 */
export function parseDiscoveryRequest(bytes: Uint8Array): DiscoveryRequestHead {
  const reader = protobuf.Reader.create(bytes);
  const head: DiscoveryRequestHead = {
    versionInfo: "",
    typeUrl: "",
    responseNonce: "",
    resourceNames: [],
    error: null,
    node: null,
  };
  while (reader.pos < reader.len) {
    const start = reader.pos;
    const t = reader.uint32();
    switch (t) {
      case tag(1, LEN):
        head.versionInfo = reader.string();
        break;
      case tag(3, LEN):
        head.resourceNames.push(reader.string());
        break;
      case tag(4, LEN):
        head.typeUrl = reader.string();
        break;
      case tag(5, LEN):
        head.responseNonce = reader.string();
        break;
      case tag(6, LEN):
        head.error = readStatusMessage(reader.bytes());
        break;
      default:
        if (t >>> 3 === 0) throw new Error(`Invalid field number 0 at offset ${start}`);
        reader.skipType(t & 7);
        if (t === tag(2, LEN)) head.node = bytes.subarray(start, reader.pos);
    }
  }
  return head;
}

/** What {@link rewriteDiscoveryRequest} puts in place of a request's own fields. */
export interface RequestRewrite {
  versionInfo: string;
  responseNonce: string;
  resourceNames: readonly string[];
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * The request with its version, nonce and resource names replaced; every
 * other field is kept as it is on the wire.
 * @throws {Error} If the bytes are not protobuf.
 */
export function rewriteDiscoveryRequest(bytes: Uint8Array, change: RequestRewrite): Uint8Array {
  const replaced = new Set([tag(1, LEN), tag(3, LEN), tag(5, LEN)]);
  const reader = protobuf.Reader.create(bytes);
  const kept: Uint8Array[] = [];
  while (reader.pos < reader.len) {
    const start = reader.pos;
    const t = reader.uint32();
    if (t >>> 3 === 0) throw new Error(`Invalid field number 0 at offset ${start}`);
    reader.skipType(t & 7);
    if (!replaced.has(t)) kept.push(bytes.subarray(start, reader.pos));
  }
  const writer = protobuf.Writer.create();
  if (change.versionInfo !== "") writer.uint32(tag(1, LEN)).string(change.versionInfo);
  for (const name of change.resourceNames) writer.uint32(tag(3, LEN)).string(name);
  if (change.responseNonce !== "") writer.uint32(tag(5, LEN)).string(change.responseNonce);
  return concat([...kept, writer.finish()]);
}

/** Nonces of the agent's own responses remembered per stream (Envoy echoes the latest). */
const REMEMBERED_NONCES = 16;

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Options of {@link SdsSplitter}. */
export interface SdsSplitterOptions {
  /** Sends a message to Envoy on its stream. */
  send: (bytes: Uint8Array) => void;
  /** The agent's current certificate. */
  certificate: () => WorkloadCertificate;
  log: Logger;
  /** The relay's stream number, for logs. */
  stream: number;
}

/** One ADS stream's split of SDS between the agent and the server; see the module comment. */
export class SdsSplitter {
  readonly #options: SdsSplitterOptions;
  /** Envoy subscribes to `default` now. */
  #subscribed = false;
  /** The version of `default` last sent on this stream. */
  #sentVersion: string | null = null;
  #sentVersions = new Set<string>();
  #nonces: string[] = [];
  #nonce = 0;
  /** The Secret names last forwarded to the server; `null` until a Secret request went up. */
  #forwarded: string[] | null = null;
  /** The version of the server's last Secret response that Envoy accepted. */
  #upstreamAccepted = "";
  /** Whether any message went up yet; the first one must carry Envoy's node. */
  #started = false;
  /** The node of a first request that was answered here and not forwarded. */
  #pendingNode: Uint8Array | null = null;

  constructor(options: SdsSplitterOptions) {
    this.#options = options;
  }

  /**
   * Handles one message from Envoy: answers what is the agent's, and returns
   * what goes to the server (`null`: nothing). A message that is not a
   * DiscoveryRequest passes unchanged; the server will judge it.
   */
  fromApp(bytes: Uint8Array): Uint8Array | null {
    let head: DiscoveryRequestHead;
    try {
      head = parseDiscoveryRequest(bytes);
    } catch {
      return this.#up(bytes, null);
    }
    if (head.typeUrl !== SDS_TYPE_URL) return this.#up(bytes, head);

    const answersUs = this.#nonces.includes(head.responseNonce);
    if (answersUs && head.error !== null) {
      this.#options.log.warn("Envoy rejected the workload certificate (NACK)", {
        stream: this.#options.stream,
        version: this.#sentVersion,
        error: head.error,
      });
    }
    const wanted = head.resourceNames.includes(WORKLOAD_CERT_SECRET);
    const newly = wanted && !this.#subscribed;
    this.#subscribed = wanted;
    if (newly || (wanted && this.#sentVersion !== this.#options.certificate().version)) {
      this.#sendCertificate();
    }

    // What the server gets: the other names, with its own version and nonce.
    const names = head.resourceNames.filter((n) => n !== WORKLOAD_CERT_SECRET);
    const acksServer = !answersUs && head.responseNonce !== "" && head.error === null;
    if (acksServer) this.#upstreamAccepted = head.versionInfo;
    let versionInfo = this.#isOurs(head.versionInfo) ? this.#upstreamAccepted : head.versionInfo;
    let responseNonce = head.responseNonce;
    if (answersUs) {
      // Only news for the server when the names changed: then a fresh request for them.
      const unchanged = this.#forwarded === null
        ? names.length === 0
        : sameList(this.#forwarded, names);
      if (unchanged) return this.#drop(head);
      versionInfo = this.#upstreamAccepted;
      responseNonce = "";
    } else if (wanted && names.length === 0 && this.#forwarded === null) {
      // Only `default`, and the server was never asked for secrets on this stream.
      return this.#drop(head);
    }
    this.#forwarded = names;
    const same = versionInfo === head.versionInfo && responseNonce === head.responseNonce &&
      sameList(names, head.resourceNames);
    return this.#up(
      same
        ? bytes
        : rewriteDiscoveryRequest(bytes, { versionInfo, responseNonce, resourceNames: names }),
      head,
    );
  }

  /** The certificate changed: a subscribed Envoy gets the new one now. */
  renewed(): void {
    if (this.#subscribed && this.#sentVersion !== this.#options.certificate().version) {
      this.#sendCertificate();
    }
  }

  #isOurs(version: string): boolean {
    return version !== "" &&
      (this.#sentVersions.has(version) || version === this.#options.certificate().version);
  }

  #sendCertificate(): void {
    const cert = this.#options.certificate();
    const nonce = `agent-${++this.#nonce}`;
    this.#nonces.push(nonce);
    if (this.#nonces.length > REMEMBERED_NONCES) this.#nonces.shift();
    this.#sentVersion = cert.version;
    this.#sentVersions.add(cert.version);
    this.#options.send(tlsCertificateResponse(WORKLOAD_CERT_SECRET, cert, nonce));
    this.#options.log.debug("Sent the workload certificate to Envoy (SDS)", {
      stream: this.#options.stream,
      version: cert.version,
    });
  }

  #drop(head: DiscoveryRequestHead): null {
    // A copy: the request's buffer belongs to the transport.
    if (!this.#started && head.node !== null) this.#pendingNode ??= new Uint8Array(head.node);
    return null;
  }

  /** What goes up; the first message gets the node of a request answered here, if it has none. */
  #up(bytes: Uint8Array, head: DiscoveryRequestHead | null): Uint8Array {
    let out = bytes;
    if (!this.#started && this.#pendingNode !== null && head !== null && head.node === null) {
      // A field appended to an encoded message is part of it: protobuf messages concatenate.
      out = concat([bytes, this.#pendingNode]);
    }
    this.#started = true;
    this.#pendingNode = null;
    return out;
  }
}
