/**
 * One DNS query in, one DNS response out: the agent's DNS server
 * (`dns_server.ts`) hands each datagram or TCP message here, and gets back
 * the bytes to send, or word that the name is not the mesh's (forward it).
 * Messages are read and written with `dns-packet`; the names are the zone's
 * (`dns_zone.ts`).
 *
 * What the protocol asks of an authoritative server is done here: the
 * question is echoed as asked (resolvers randomise its case), the answer is
 * authoritative (AA), a response too large for UDP is truncated (TC, so
 * the client asks again over TCP) at 512 bytes or the EDNS size the client
 * offered (at most 1232, the DNS flag day 2020 size), an EDNS query gets an
 * EDNS answer, and a message that is not a proper query gets FORMERR,
 * NOTIMP or REFUSED rather than silence (a response is never answered).
 *
 * Encoding with `dns-packet` costs about 50 µs a response here and decoding
 * about 6 µs a query, more than everything else a query takes; so encoded
 * responses are kept by the query's bytes (its ID aside) and transport until
 * the zone changes, and a query seen before is answered without decoding,
 * only the ID rewritten. An answer with several records is kept in
 * {@link PERMUTATIONS} shuffled orders, one picked at random per query:
 * clients that take the first address spread over the instances.
 */
// @ts-types="@types/dns-packet"
import packet from "dns-packet";
import type { DnsZone, ZoneRecord } from "./dns_zone.ts";

/** Shuffled orders kept per answer with several records. */
export const PERMUTATIONS = 8;
/** The largest UDP response without EDNS (RFC 1035). */
export const UDP_BASE_SIZE = 512;
/** The largest UDP response whatever EDNS offers (DNS flag day 2020). */
export const UDP_MAX_SIZE = 1232;
/** Encoded responses kept before the cache starts over. */
const CACHE_ENTRIES = 4096;
/** Queries longer than this are answered without the cache. */
const MAX_KEYED_QUERY = 512;

/** What to do with one message. */
export type Handled =
  /** Send `bytes`; `rcode` and `type` are for metrics. */
  | { kind: "answer"; bytes: Uint8Array; rcode: Rcode; type: string }
  /** The name is outside the mesh's domain: forward the query as it is. */
  | { kind: "forward"; type: string }
  /** Not a query at all (too short, or a response): send nothing. */
  | { kind: "drop" };

/** Options of {@link DnsResponder}. */
export interface ResponderOptions {
  /** Whether names outside the domain are forwarded (else REFUSED). */
  forward: boolean;
  /** Random source for the shuffled orders. Default: `Math.random`. */
  random?: () => number;
}

type Packet = packet.Packet;

/** The QR bit: set in responses (RFC 1035, 4.1.1); the other flags are dns-packet's. */
const QR = 0x8000;
const AA = packet.AUTHORITATIVE_ANSWER;
const TC = packet.TRUNCATED_RESPONSE;
const RD = packet.RECURSION_DESIRED;
const RA = packet.RECURSION_AVAILABLE;
/** RCODEs by name (RFC 1035, 4.1.1): dns-packet reads them but writes only the flag bits. */
const RCODES = ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"] as const;
/** One of {@link RCODES}. */
export type Rcode = typeof RCODES[number];

function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

function withId(bytes: Uint8Array, id: number): Uint8Array {
  const out = bytes.slice();
  out[0] = id >> 8;
  out[1] = id & 0xff;
  return out;
}

/** See the module comment. */
export class DnsResponder {
  readonly #zone: DnsZone;
  readonly #options: ResponderOptions;
  readonly #random: () => number;
  #cache = new Map<string, { bytes: Uint8Array; rcode: Rcode; type: string }>();
  #generation = -1;

  constructor(zone: DnsZone, options: ResponderOptions) {
    this.#zone = zone;
    this.#options = options;
    this.#random = options.random ?? Math.random;
  }

  /**
   * Handles one message; `maxSize` is what the transport carries (TCP:
   * 65535; UDP: {@link UDP_BASE_SIZE}, raised by the query's EDNS).
   */
  handle(bytes: Uint8Array, transport: "udp" | "tcp"): Handled {
    if (bytes.length < 12) return { kind: "drop" };
    const id = (bytes[0]! << 8) | bytes[1]!;
    const flags = (bytes[2]! << 8) | bytes[3]!;
    if ((flags & QR) !== 0) return { kind: "drop" };
    if (this.#zone.generation !== this.#generation || this.#cache.size >= CACHE_ENTRIES) {
      this.#cache.clear();
      this.#generation = this.#zone.generation;
    }
    // The same query bytes (its ID aside) get the same answer: look it up before decoding.
    const slot = Math.floor(this.#random() * PERMUTATIONS);
    // Real queries are a few dozen bytes; a huge one is not worth a key (nor an engine's
    // limit on a call's arguments).
    const key = bytes.length <= MAX_KEYED_QUERY
      ? `${transport}|${slot}|${latin1(bytes.subarray(2))}`
      : undefined;
    const cached = key === undefined ? undefined : this.#cache.get(key);
    if (cached !== undefined) {
      return {
        kind: "answer",
        bytes: withId(cached.bytes, id),
        rcode: cached.rcode,
        type: cached.type,
      };
    }
    let query: Packet;
    try {
      query = packet.decode(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    } catch {
      return this.#error(id, flags, "FORMERR", [], false, transport);
    }
    const questions = query.questions ?? [];
    const edns = (query.additionals ?? []).find((r) => r.type === "OPT") as
      | { udpPayloadSize?: number }
      | undefined;
    const opcode = (flags >> 11) & 0xf;
    if (opcode !== 0) {
      return this.#error(id, flags, "NOTIMP", questions, edns !== undefined, transport);
    }
    const question = questions[0];
    if (questions.length !== 1 || question === undefined) {
      return this.#error(id, flags, "FORMERR", questions, edns !== undefined, transport);
    }
    const type = String(question.type);
    if (question.class !== "IN") {
      return this.#error(id, flags, "REFUSED", questions, edns !== undefined, transport);
    }
    const maxSize = transport === "tcp"
      ? 65535
      : Math.min(Math.max(edns?.udpPayloadSize ?? UDP_BASE_SIZE, UDP_BASE_SIZE), UDP_MAX_SIZE);
    const rd = flags & RD;
    const answer = this.#zone.answer(question.name, type);
    if (answer.kind === "outside") {
      if (this.#options.forward) return { kind: "forward", type };
      return this.#error(id, flags, "REFUSED", questions, edns !== undefined, transport);
    }
    const encoded = this.#encode({
      id,
      flags: AA | rd | (this.#options.forward ? RA : 0),
      rcode: answer.rcode,
      questions: [question],
      answers: answer.shuffle ? shuffled(answer.answers, this.#random) : answer.answers,
      authorities: answer.authorities,
      additionals: answer.additionals,
      edns: edns !== undefined,
      maxSize,
    });
    // Every slot of a single-order answer is the same: keep it once per slot anyway, it is small.
    if (key !== undefined) this.#cache.set(key, { bytes: encoded, rcode: answer.rcode, type });
    return { kind: "answer", bytes: encoded, rcode: answer.rcode, type };
  }

  /** SERVFAIL for `query`, e.g. when forwarding it failed; `null` if it cannot be read. */
  serverFailure(query: Uint8Array, transport: "udp" | "tcp"): Uint8Array | null {
    if (query.length < 12) return null;
    try {
      const decoded = packet.decode(Buffer.from(query.buffer, query.byteOffset, query.byteLength));
      const flags = (query[2]! << 8) | query[3]!;
      const edns = (decoded.additionals ?? []).some((r) => r.type === "OPT");
      const handled = this.#error(
        decoded.id ?? 0,
        flags,
        "SERVFAIL",
        decoded.questions ?? [],
        edns,
        transport,
      );
      return handled.kind === "answer" ? handled.bytes : null;
    } catch {
      return null;
    }
  }

  #error(
    id: number,
    queryFlags: number,
    rcode: Rcode,
    questions: packet.Question[],
    edns: boolean,
    transport: "udp" | "tcp",
  ): Handled {
    const bytes = this.#encode({
      id,
      flags: (queryFlags & RD) | (this.#options.forward ? RA : 0) | (queryFlags & 0x7800),
      rcode,
      questions: questions.slice(0, 1),
      answers: [],
      authorities: [],
      additionals: [],
      edns,
      maxSize: transport === "tcp" ? 65535 : UDP_BASE_SIZE,
    });
    return { kind: "answer", bytes, rcode, type: String(questions[0]?.type ?? "none") };
  }

  #encode(r: {
    id: number;
    flags: number;
    rcode: Rcode;
    questions: packet.Question[];
    answers: ZoneRecord[];
    authorities: ZoneRecord[];
    additionals: ZoneRecord[];
    edns: boolean;
    maxSize: number;
  }): Uint8Array {
    const opt = r.edns ? [{ type: "OPT", name: ".", udpPayloadSize: UDP_MAX_SIZE }] : [];
    const build = (full: boolean): Uint8Array =>
      new Uint8Array(packet.encode({
        type: "response",
        id: r.id,
        // dns-packet writes the RCODE only as the low bits of the flags.
        flags: r.flags | (full ? 0 : TC) | RCODES.indexOf(r.rcode),
        questions: r.questions,
        answers: full ? r.answers : [],
        authorities: full ? r.authorities : [],
        additionals: [...(full ? r.additionals : []), ...opt],
      } as unknown as Packet));
    const bytes = build(true);
    return bytes.length <= r.maxSize ? bytes : build(false);
  }
}

/** Bytes as a string of the same length, one character each: a cheap map key. */
function latin1(bytes: Uint8Array): string {
  return String.fromCharCode.apply(null, bytes as unknown as number[]);
}
