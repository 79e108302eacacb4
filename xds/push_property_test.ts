/**
 * The key guarantee of the incremental push pipeline, as a property: for
 * seeded random sequences of registry, policy, MeshConfig, certificate and
 * trust changes, after every step the snapshot each proxy is served (kept
 * in memory, rebuilt only where a change reached) is byte for byte the one
 * a from-scratch generation over a fresh read of the store gives, for
 * sidecars and proxyless clients alike; it keeps Envoy's own validation
 * rules; and the in-memory view equals the store. A failing sequence is shrunk to a short one before it is reported.
 *
 * `IRONMESH_PROPERTY_STEPS` (default 1500) and `IRONMESH_PROPERTY_SEED`
 * (default: a few fixed seeds) widen a run.
 */
import assert from "node:assert/strict";
import { meshChange } from "../core/mesh_change.ts";
import { type CertificateRecord, nodeRegistrationSchema } from "../core/model.ts";
import type { Actor } from "../registry/registry.ts";
import { openPushFixture } from "./_push_testing.ts";
import type { ProxyPeer } from "./ads_server.ts";
import { canonicalJson } from "./generate/canonical.ts";
import { ruleProblems } from "./generate/envoy_rules.ts";
import { generateProxy } from "./generate/generate.ts";
import type { JsonValue, ProxyRequest, ProxySnapshot } from "./generate/model.ts";
import { buildPushContext } from "./generate/push_context.ts";
import { loadMeshView, type MeshState, UNREGISTERED } from "./mesh_view.ts";

const TRUST_DOMAIN = "ironmesh.test";
const NAMESPACES = ["a", "b"];
const SERVICES = ["s0", "s1", "s2", "s3", "s4"];
const NODES = ["n0", "n1", "n2", "n3", "n4", "n5"];
/** Each port speaks one protocol, so registrations never clash on a port's protocol. */
const PORTS = [
  { port: 8080, protocol: "http" },
  { port: 9090, protocol: "grpc" },
  { port: 7070, protocol: "tcp" },
  { port: 6060, protocol: "http2" },
] as const;
const REGIONS = [{}, { region: "eu" }, { region: "eu", zone: "eu-1" }, { region: "us" }];
const agent: Actor = { tokenId: "agent", role: "agent", node: null };

/** One step, as plain data so that a failing sequence can be replayed and shrunk. */
type Action =
  | { op: "register"; node: string; body: unknown }
  | { op: "check"; node: string; id: string; failing: boolean }
  | { op: "drainNode"; node: string; draining: boolean }
  | { op: "deregister"; node: string }
  | { op: "putService"; namespace: string; name: string; ports: unknown[]; labels: object }
  | { op: "deleteService"; namespace: string; name: string }
  | { op: "policy"; doc: unknown }
  | { op: "deletePolicy"; kind: string; namespace: string; name: string }
  | { op: "trust"; bundle: string }
  | { op: "certificate"; node: string; namespace: string; serial: string };

/** mulberry32: small, seeded, good enough to pick test inputs. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function actions(seed: number, count: number): Action[] {
  const r = random(seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(r() * list.length)]!;
  const some = <T>(list: readonly T[], most: number): T[] =>
    list.filter(() => r() < most / list.length);
  const service = () => ({ namespace: pick(NAMESPACES), name: pick(SERVICES) });
  const out: Action[] = [];
  for (let i = 0; i < count; i++) {
    const roll = r();
    const node = pick(NODES);
    if (roll < 0.25) {
      const instances = Array.from({ length: Math.floor(r() * 4) }, (_, k) => {
        const { namespace, name } = service();
        const port = pick(PORTS);
        return {
          id: `i${k}`,
          namespace,
          service: name,
          port: port.port,
          protocol: port.protocol,
          ...(r() < 0.6 ? { inboundPort: 15001 + k } : {}),
          labels: { version: pick(["v1", "v2"]) },
          check: r() < 0.8 ? "passing" : "failing",
        };
      });
      const upstreams = some(SERVICES, 2).map((name, k) => ({
        service: name,
        namespace: pick(NAMESPACES),
        localPort: 9001 + k,
        ...(r() < 0.3 ? { port: pick(PORTS).port } : {}),
      }));
      out.push({
        op: "register",
        node,
        body: {
          hostname: node,
          addresses: [`10.0.0.${NODES.indexOf(node) + 1}`],
          labels: pick(REGIONS),
          agentVersion: "test",
          heartbeatInterval: "5s",
          instances,
          upstreams,
        },
      });
    } else if (roll < 0.4) {
      out.push({ op: "check", node, id: `i${Math.floor(r() * 3)}`, failing: r() < 0.5 });
    } else if (roll < 0.45) out.push({ op: "drainNode", node, draining: r() < 0.5 });
    else if (roll < 0.5) out.push({ op: "deregister", node });
    else if (roll < 0.55) {
      out.push({
        op: "putService",
        ...service(),
        ports: some(PORTS, 2).map((p) => ({ port: p.port, protocol: p.protocol })),
        labels: r() < 0.5 ? {} : { tier: pick(["front", "back"]) },
      });
    } else if (roll < 0.58) out.push({ op: "deleteService", ...service() });
    else if (roll < 0.85) out.push({ op: "policy", doc: policyDoc(r, pick, service) });
    else if (roll < 0.9) {
      out.push({
        op: "deletePolicy",
        kind: pick(["TrafficRoute", "DestinationPolicy", "AuthorizationPolicy", "RateLimit"]),
        namespace: pick(NAMESPACES),
        name: pick(SERVICES),
      });
    } else if (roll < 0.94) {
      out.push({
        op: "certificate",
        node,
        namespace: pick(NAMESPACES),
        serial: `${node}-${i}`,
      });
    } else {
      out.push({
        op: "trust",
        bundle: `-----BEGIN CERTIFICATE-----\nROOT${i}\n-----END CERTIFICATE-----\n`,
      });
    }
  }
  return out;
}

function policyDoc(
  r: () => number,
  pick: <T>(list: readonly T[]) => T,
  service: () => { namespace: string; name: string },
): unknown {
  const { namespace, name } = service();
  const metadata = { name, namespace };
  const doc = (kind: string, spec: unknown, meta: object = metadata) => ({
    apiVersion: "ironmesh.io/v1",
    kind,
    metadata: meta,
    spec,
  });
  switch (Math.floor(r() * 5)) {
    case 0:
      return doc("TrafficRoute", {
        service: name,
        rules: r() < 0.3
          ? [{ timeout: `${1 + Math.floor(r() * 5)}s`, retries: { attempts: 2 } }]
          : r() < 0.5
          ? [{
            // Another service's clusters join this one's configuration.
            split: [{ weight: 50 }, { service: pick(SERVICES), weight: 50 }],
            ...(r() < 0.5 ? { mirror: { service: pick(SERVICES), percent: 10 } } : {}),
          }]
          : [
            {
              match: { headers: { "x-canary": { exact: "1" } } },
              split: [{ subset: "v2", weight: 100 }],
            },
            { split: [{ subset: "v1", weight: 90 }, { subset: "v2", weight: 10 }] },
          ],
      });
    case 1:
      return doc("DestinationPolicy", {
        service: name,
        subsets: [{ name: "v1", labels: { version: "v1" } }, {
          name: "v2",
          labels: { version: "v2" },
        }],
        ...(r() < 0.5 ? { locality: { enabled: true } } : {}),
        ...(r() < 0.5 ? { loadBalancer: { algorithm: pick(["RANDOM", "LEAST_REQUEST"]) } } : {}),
      });
    case 2:
      return doc("AuthorizationPolicy", {
        ...(r() < 0.7 ? { service: name } : {}),
        action: pick(["ALLOW", "DENY"]),
        rules: [{ from: [{ namespaces: [pick(NAMESPACES)] }] }],
      });
    case 3:
      return doc("RateLimit", {
        service: name,
        limit: { requests: 1 + Math.floor(r() * 100), per: "1s" },
      });
    default:
      return doc("MeshConfig", {
        mtls: { mode: pick(["STRICT", "PERMISSIVE"]) },
        ...(r() < 0.5 ? { defaults: { timeout: `${1 + Math.floor(r() * 30)}s` } } : {}),
      }, { name: "mesh" });
  }
}

function certificate(a: Extract<Action, { op: "certificate" }>): CertificateRecord {
  return {
    serial: a.serial,
    node: a.node,
    identity: `spiffe://${TRUST_DOMAIN}/ns/${a.namespace}/sa/${a.node}`,
    tokenId: null,
    root: "00",
    kind: "enrol",
    notBefore: "2020-01-01T00:00:00.000Z",
    notAfter: "2999-01-01T00:00:00.000Z",
    issuedAt: "2020-01-01T00:00:00.000Z",
    supersededAt: null,
    revokedAt: null,
    revokeReason: null,
  };
}

/** Every proxy the property looks at: each node's sidecar, proxyless clients per namespace and locality. */
function peers(): ProxyPeer[] {
  return [
    ...NODES.map((node): ProxyPeer => ({ kind: "sidecar", node, identity: "" })),
    ...NAMESPACES.flatMap((ns) =>
      ["n0", "n3"].map((node): ProxyPeer => ({
        kind: "proxyless",
        node,
        identity: `spiffe://${TRUST_DOMAIN}/ns/${ns}/sa/${node}`,
      }))
    ),
    // Proxyless clients whose bootstrap has the certificate provider: mTLS and server Listeners.
    ...NAMESPACES.map((ns): ProxyPeer => ({
      kind: "proxyless",
      node: "n1",
      identity: `spiffe://${TRUST_DOMAIN}/ns/${ns}/sa/n1`,
      mtls: true,
    })),
  ];
}

function fromScratch(view: MeshState, peer: ProxyPeer): ProxySnapshot {
  const locality = view.locality(peer.node);
  const request: ProxyRequest = peer.kind === "proxyless"
    ? {
      kind: "proxyless",
      node: peer.node,
      identity: peer.identity,
      locality,
      ...(peer.mtls ? { mtls: true } : {}),
    }
    : {
      kind: "sidecar",
      node: peer.node,
      identity: peer.identity,
      locality,
      ...(view.sidecars.get(peer.node) ?? UNREGISTERED),
    };
  return generateProxy(buildPushContext(view.view()), request);
}

/**
 * Runs `list` on a fresh mesh; returns `null` when every step kept the
 * guarantee, else the failing step and what differed.
 */
async function run(list: readonly Action[]): Promise<{ step: number; problem: string } | null> {
  let bundle = "-----BEGIN CERTIFICATE-----\nROOT\n-----END CERTIFICATE-----\n";
  const trust = () => ({ trustDomain: TRUST_DOMAIN, bundlePem: bundle });
  const mesh = await openPushFixture({ trust, debounceMs: 3_600_000 });
  const { store, registry, push, policies } = mesh;
  const ruleChecked = new Set<string>();
  mesh.follow();
  try {
    await push.start([]);
    for (const [step, action] of list.entries()) {
      await apply(action);
      await push.settle();
      try {
        await push.checkView();
      } catch (error) {
        return { step, problem: (error as Error).message };
      }
      const fresh = await loadMeshView(store, trust());
      for (const peer of peers()) {
        const served = push.snapshotFor(peer);
        // Envoy's own validation rules hold for every snapshot served, not only for the goldens.
        const broken = ruleProblems(served, ruleChecked);
        if (broken.length > 0) {
          return { step, problem: `${peer.kind} ${peer.node}: ${broken.join("; ")}` };
        }
        const incremental = canonicalJson(served as unknown as JsonValue);
        const expected = canonicalJson(fromScratch(fresh, peer) as unknown as JsonValue);
        if (incremental !== expected) {
          let at = 0;
          while (incremental[at] === expected[at]) at++;
          return {
            step,
            problem: `${peer.kind} ${peer.node} ${peer.identity}: served "${
              incremental.slice(Math.max(0, at - 120), at + 120)
            }", from scratch "${expected.slice(Math.max(0, at - 120), at + 120)}"`,
          };
        }
      }
    }
    return null;
  } finally {
    await mesh.close();
  }

  async function apply(a: Action): Promise<void> {
    // Refusals (a port of another protocol, a service still in use, an invalid policy) are
    // part of the game: they must change nothing.
    const ignore = () => {};
    switch (a.op) {
      case "register":
        {
          // A registration the schema refuses (two gRPC services on one port) never reaches the mesh.
          const body = nodeRegistrationSchema.safeParse(a.body);
          if (body.success) await registry.register(a.node, body.data, agent).catch(ignore);
        }
        return;
      case "check":
        await registry.heartbeat(a.node, {
          checks: [{ id: a.id, status: a.failing ? "failing" : "passing", output: "" }],
        }, agent).catch(ignore);
        return;
      case "drainNode":
        await registry.drainNode(a.node, a.draining, {}).catch(ignore);
        return;
      case "deregister":
        await registry.deregister(a.node, agent).catch(ignore);
        return;
      case "putService":
        await registry.putService(a.namespace, a.name, {
          ports: a.ports as { port: number; protocol: "http" }[],
          labels: a.labels as Record<string, string>,
        }, {}).catch(ignore);
        return;
      case "deleteService":
        await registry.deleteService(a.namespace, a.name, {}).catch(ignore);
        return;
      case "policy":
        await policies.apply([a.doc], { actor: "test" }).catch(ignore);
        return;
      case "deletePolicy":
        await policies.delete(a.kind as "TrafficRoute", a.namespace, a.name, { actor: "test" })
          .catch(ignore);
        return;
      case "trust":
        bundle = a.bundle;
        push.changed(meshChange({ trust: true }));
        return;
      case "certificate":
        await store.recordIssuance(certificate(a));
        push.changed(meshChange({ nodes: [a.node] }));
        return;
    }
  }
}

/** A shorter sequence that still fails: chunks dropped while the failure stays (ddmin, bounded). */
async function shrink(list: Action[]): Promise<Action[]> {
  let current = list;
  let budget = 150;
  for (let chunk = Math.ceil(current.length / 2); chunk >= 1 && budget > 0;) {
    let removed = false;
    for (let start = 0; start < current.length && budget > 0; start += chunk) {
      const candidate = [...current.slice(0, start), ...current.slice(start + chunk)];
      budget--;
      if (candidate.length > 0 && await run(candidate) !== null) {
        current = candidate;
        removed = true;
        start -= chunk;
      }
    }
    if (!removed) chunk = Math.floor(chunk / 2);
  }
  return current;
}

const STEPS = Number(Deno.env.get("IRONMESH_PROPERTY_STEPS") ?? 1500);
const SEEDS = Deno.env.get("IRONMESH_PROPERTY_SEED")?.split(",").map(Number) ?? [1, 2];

for (const seed of SEEDS) {
  Deno.test(`Incremental snapshots equal from-scratch generation after every step (seed ${seed}, ${STEPS} steps)`, async () => {
    const list = actions(seed, STEPS);
    const failure = await run(list);
    if (!failure) return;
    const small = await shrink(list.slice(0, failure.step + 1));
    const again = await run(small);
    assert.fail(
      `Seed ${seed} fails at step ${failure.step}: ${failure.problem}\n` +
        `Shrunk to ${small.length} steps (fails at step ${again?.step}: ${again?.problem}):\n` +
        small.map((a) => JSON.stringify(a)).join("\n"),
    );
  });
}
