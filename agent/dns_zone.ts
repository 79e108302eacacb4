/**
 * The names the agent's DNS server answers, as a pure function of the
 * registry view the agent watches (`dns_watch.ts`): no I/O, no clock.
 *
 * Under the domain (`ironmesh` by default):
 *
 * | name                                    | what                                          |
 * | --------------------------------------- | --------------------------------------------- |
 * | `<service>.<namespace>.svc.<domain>`    | the service's healthy instances               |
 * | `<subset>.<service>.<namespace>.svc.<domain>` | those whose labels match the subset of its DestinationPolicy |
 * | `<service>.svc.<domain>`                | the service in the node's own namespace       |
 * | `<hex>.addr.<domain>`                   | the address spelled in hex (SRV targets)      |
 *
 * A and AAAA answer the instances' IPv4 and IPv6 addresses (each once), SRV
 * one record per instance with its port and a target under `addr.`, with
 * the target's address as an additional record (Consul's form). A service
 * that exists but has no healthy instance answers no records and no error
 * (NODATA): the name exists, traffic has nowhere to go; a name nobody
 * registered is NXDOMAIN, with the zone's SOA so resolvers cache the miss
 * for the same short TTL. Names are matched without regard to case.
 */

/** A healthy, non-drained instance, as DNS needs it. */
export interface DnsInstance {
  namespace: string;
  service: string;
  address: string;
  port: number;
  labels: Readonly<Record<string, string>>;
}

/** A named subset of a service (from its DestinationPolicy). */
export interface DnsSubset {
  namespace: string;
  service: string;
  name: string;
  labels: Readonly<Record<string, string>>;
}

/** The record types the zone answers; any other type gets no records. */
export type RecordType = "A" | "AAAA" | "SRV" | "SOA";

/** One resource record of an answer. */
export type ZoneRecord =
  | { type: "A" | "AAAA"; name: string; ttl: number; data: string }
  | {
    type: "SRV";
    name: string;
    ttl: number;
    data: { priority: number; weight: number; port: number; target: string };
  }
  | { type: "SOA"; name: string; ttl: number; data: Soa };

/** The zone's SOA: only its `minimum` matters, the TTL of negative answers. */
export interface Soa {
  mname: string;
  rname: string;
  serial: number;
  refresh: number;
  retry: number;
  expire: number;
  minimum: number;
}

/** What the zone says about one question. */
export type ZoneAnswer =
  /** The name is not under the domain: forward it or refuse. */
  | { kind: "outside" }
  | {
    kind: "inside";
    rcode: "NOERROR" | "NXDOMAIN";
    answers: ZoneRecord[];
    /** Addresses of SRV targets. */
    additionals: ZoneRecord[];
    /** The SOA, with every answer that has no records. */
    authorities: ZoneRecord[];
    /**
     * Whether the answer has several records whose order the server should
     * shuffle (the A, AAAA or SRV records of several instances).
     */
    shuffle: boolean;
  };

/** Options of {@link DnsZone}. */
export interface ZoneOptions {
  /** The domain, e.g. `ironmesh` or `mesh.internal` (no trailing dot). */
  domain: string;
  /** TTL of every record and of negative answers, in seconds. */
  ttlSeconds: number;
  /** The node's namespace, for short names. */
  namespace: string;
}

/** Hex of an IP address, as SRV targets spell it: `0a000001` for 10.0.0.1. */
export function addressLabel(address: string): string {
  if (address.includes(":")) {
    return expandIpv6(address).map((g) => g.padStart(4, "0")).join("");
  }
  return address.split(".").map((o) => Number(o).toString(16).padStart(2, "0")).join("");
}

function expandIpv6(address: string): string[] {
  const [head, tail] = address.split("::") as [string, string | undefined];
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  // An embedded IPv4 tail (::ffff:1.2.3.4) is two groups.
  const last = right.length > 0 ? right : left;
  const v4 = last.at(-1)?.includes(".") ? last.pop()! : undefined;
  if (v4 !== undefined) {
    const o = v4.split(".").map(Number);
    last.push(((o[0]! << 8) | o[1]!).toString(16), ((o[2]! << 8) | o[3]!).toString(16));
  }
  const fill = tail === undefined ? 0 : 8 - left.length - right.length;
  return [...left, ...Array(fill).fill("0"), ...right];
}

/** The address spelled by {@link addressLabel}, or `undefined`. */
function labelAddress(label: string): string | undefined {
  if (/^[0-9a-f]{8}$/.test(label)) {
    return [0, 2, 4, 6].map((i) => parseInt(label.slice(i, i + 2), 16)).join(".");
  }
  if (/^[0-9a-f]{32}$/.test(label)) {
    const groups = [];
    for (let i = 0; i < 32; i += 4) groups.push(parseInt(label.slice(i, i + 4), 16).toString(16));
    return groups.join(":");
  }
  return undefined;
}

function matches(
  labels: Readonly<Record<string, string>>,
  selector: Readonly<Record<string, string>>,
) {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** See the module comment. */
export class DnsZone {
  readonly #domain: string;
  readonly #ttl: number;
  readonly #namespace: string;
  readonly #soa: ZoneRecord;
  /** `namespace/service` → its instances. */
  #services = new Map<string, DnsInstance[]>();
  /** `namespace/service/subset` → the subset's labels. */
  #subsets = new Map<string, Readonly<Record<string, string>>>();
  /** Counts views, so callers can tell an answer is stale. */
  generation = 0;

  constructor(options: ZoneOptions) {
    this.#domain = options.domain.toLowerCase().replace(/\.$/, "");
    this.#ttl = options.ttlSeconds;
    this.#namespace = options.namespace;
    this.#soa = {
      type: "SOA",
      name: this.#domain,
      ttl: this.#ttl,
      data: {
        mname: `ns.${this.#domain}`,
        rname: `hostmaster.${this.#domain}`,
        serial: 1,
        refresh: 3600,
        retry: 600,
        expire: 86400,
        minimum: this.#ttl,
      },
    };
  }

  /**
   * Replaces the view: every healthy, non-drained instance (`services` that
   * exist with none may be listed with no instances) and every subset.
   */
  update(
    instances: readonly DnsInstance[],
    subsets: readonly DnsSubset[],
    services: readonly { namespace: string; name: string }[] = [],
  ): void {
    const byService = new Map<string, DnsInstance[]>();
    for (const s of services) byService.set(`${s.namespace}/${s.name}`, []);
    for (const i of instances) {
      const key = `${i.namespace}/${i.service}`;
      let list = byService.get(key);
      if (list === undefined) byService.set(key, list = []);
      list.push(i);
    }
    this.#services = byService;
    this.#subsets = new Map(
      subsets.map((s) => [`${s.namespace}/${s.service}/${s.name}`, s.labels]),
    );
    this.generation++;
  }

  /** Answers one question; `type` is the question's record type as dns-packet names it. */
  answer(name: string, type: string): ZoneAnswer {
    const lower = name.toLowerCase().replace(/\.$/, "");
    if (lower !== this.#domain && !lower.endsWith(`.${this.#domain}`)) return { kind: "outside" };
    const rest = lower === this.#domain ? [] : lower.slice(0, -this.#domain.length - 1).split(".");
    const found = this.#lookup(rest);
    if (found === undefined) return this.#empty("NXDOMAIN");
    if (found === "exists") {
      if (type !== "SOA" || rest.length > 0) return this.#empty("NOERROR");
      return {
        kind: "inside",
        rcode: "NOERROR",
        answers: [{ ...this.#soa }],
        additionals: [],
        authorities: [],
        shuffle: false,
      };
    }
    const ttl = this.#ttl;
    const records: ZoneRecord[] = [];
    const additionals: ZoneRecord[] = [];
    if (type === "A" || type === "AAAA" || type === "ANY") {
      const seen = new Set<string>();
      for (const i of found) {
        if (seen.has(i.address)) continue;
        seen.add(i.address);
        const family = i.address.includes(":") ? "AAAA" : "A";
        if (type === "ANY" || type === family) {
          records.push({ type: family, name, ttl, data: i.address });
        }
      }
    } else if (type === "SRV") {
      const targets = new Set<string>();
      for (const i of found) {
        const target = `${addressLabel(i.address)}.addr.${this.#domain}`;
        records.push({
          type: "SRV",
          name,
          ttl,
          data: { priority: 1, weight: 1, port: i.port, target },
        });
        if (targets.has(target)) continue;
        targets.add(target);
        additionals.push({
          type: i.address.includes(":") ? "AAAA" : "A",
          name: target,
          ttl,
          data: i.address,
        });
      }
    }
    return {
      kind: "inside",
      rcode: "NOERROR",
      answers: records,
      additionals,
      authorities: records.length === 0 ? [{ ...this.#soa }] : [],
      shuffle: records.length > 1,
    };
  }

  #empty(rcode: "NOERROR" | "NXDOMAIN"): ZoneAnswer {
    return {
      kind: "inside",
      rcode,
      answers: [],
      additionals: [],
      authorities: [{ ...this.#soa }],
      shuffle: false,
    };
  }

  /**
   * The instances a name stands for: a list (maybe empty), `"exists"` for a
   * name with nothing of its own (the domain, `svc`, a namespace, `addr`),
   * or `undefined` for no such name.
   */
  #lookup(labels: string[]): DnsInstance[] | "exists" | undefined {
    const n = labels.length;
    if (n === 0) return "exists";
    if (labels[n - 1] === "addr") {
      if (n === 1) return "exists";
      if (n !== 2) return undefined;
      const address = labelAddress(labels[0]!);
      return address === undefined ? undefined : [{
        namespace: "",
        service: "",
        address,
        port: 0,
        labels: {},
      }];
    }
    if (labels[n - 1] !== "svc") return undefined;
    const service = (namespace: string, name: string) => this.#services.get(`${namespace}/${name}`);
    switch (n) {
      case 1:
        return "exists";
      case 2:
        // `<service>.svc`: the node's namespace; or `<namespace>.svc`, a namespace with services.
        return service(this.#namespace, labels[0]!) ??
          ([...this.#services.keys()].some((k) => k.startsWith(`${labels[0]}/`))
            ? "exists"
            : undefined);
      case 3:
        return service(labels[1]!, labels[0]!);
      case 4: {
        const all = service(labels[2]!, labels[1]!);
        const selector = this.#subsets.get(`${labels[2]}/${labels[1]}/${labels[0]}`);
        if (all === undefined || selector === undefined) return undefined;
        return all.filter((i) => matches(i.labels, selector));
      }
      default:
        return undefined;
    }
  }
}
