/**
 * `deno task bench --only proxyless-push`: what an AuthorizationPolicy change
 * costs the server when 1,000 proxyless gRPC servers serve the service
 * (issue 15). In process, over the real store, registry, policy service and
 * push pipeline: N nodes (`--servers`, default 1,000) each register one
 * instance of the gRPC service `echo`; an mTLS proxyless peer's snapshot then
 * holds 3 × N server Listeners of `echo` (the instance's address, `0.0.0.0`,
 * `[::]`). Each of `--changes` policy writes (default 20, alternating a DENY
 * and an ALLOW on `echo`) is measured as:
 *
 * - **push**: the write's change event through the pipeline (`settle()`):
 *   the view re-reads the policy and drops what was built from it;
 * - **regenerate**: the next `snapshotFor()` of the peer, which rebuilds the
 *   part of `echo` (every server Listener body, versioned by content);
 * - **encode**: the strict encoding of every changed Listener by the stream
 *   core's `ResourceEncoder`, once per resource whatever the number of
 *   streams (an upper bound: a server's stream asks for one of its three);
 *   against, in the same run, each Listener encoded whole (`encodeStrict`
 *   without reuse: what the encoder did before it kept the shared filter
 *   chain's bytes), with the bytes compared.
 *
 * Not measured: writing the 1,000 responses (one Listener each) on the
 * streams, which the xDS benchmark (`xds.ts`) measures for client resources.
 * Prints a markdown table; progress goes to stderr.
 */
import { parseArgs } from "node:util";
import { nodeRegistrationSchema } from "../../core/model.ts";
import type { Actor } from "../../registry/registry.ts";
import { openPushFixture } from "../../xds/_push_testing.ts";
import { encodeStrict } from "../../xds/proto/codec.ts";
import { ResourceEncoder } from "../../xds/resource_encoder.ts";
import type { ProxyPeer } from "../../xds/stream_core.ts";
import { markdownTable } from "./report.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    servers: { type: "string", default: "1000" },
    changes: { type: "string", default: "20" },
  },
});
const servers = Number(values.servers);
const changes = Number(values.changes);
const TRUST_DOMAIN = "ironmesh.local";
const LISTENER = "envoy.config.listener.v3.Listener";
const agent: Actor = { tokenId: "agent", role: "agent", node: null };

const trust = () => ({
  trustDomain: TRUST_DOMAIN,
  bundlePem: "-----BEGIN CERTIFICATE-----\nROOT\n-----END CERTIFICATE-----\n",
});
const mesh = await openPushFixture({ trust, debounceMs: 3_600_000 });
const { registry, push, policies } = mesh;
mesh.follow();
try {
  for (let i = 0; i < servers; i++) {
    await registry.register(
      `srv-${i}`,
      nodeRegistrationSchema.parse({
        hostname: `srv-${i}`,
        addresses: [`10.${Math.floor(i / 250)}.${i % 250}.1`],
        agentVersion: "bench",
        heartbeatInterval: "5s",
        instances: [{ id: "echo", service: "echo", port: 50051, protocol: "grpc" }],
      }),
      agent,
    );
  }
  await push.start([]);
  const peer: ProxyPeer = {
    kind: "proxyless",
    node: "srv-0",
    identity: `spiffe://${TRUST_DOMAIN}/ns/default/sa/srv-0`,
    mtls: true,
  };
  const serverListeners = (snapshot = push.snapshotFor(peer)) =>
    snapshot.listeners.filter((l) => l.name.startsWith("ironmesh.io/inbound/"));
  console.error(`[proxyless-push] ${serverListeners().length} server Listeners of echo`);

  // The stream core's encoder (one per server, kept across pushes), as it encodes what it sends.
  const encoder = new ResourceEncoder();
  const rows: number[][] = [];
  for (let c = 0; c < changes; c++) {
    const before = new Map(serverListeners().map((l) => [l.name, l.version]));
    const action = c % 2 === 0 ? "DENY" : "ALLOW";
    const t0 = performance.now();
    await policies.apply([{
      apiVersion: "ironmesh.io/v1",
      kind: "AuthorizationPolicy",
      metadata: { name: "echo", namespace: "default" },
      spec: {
        service: "echo",
        action,
        rules: [{ from: [{ identities: [`spiffe://${TRUST_DOMAIN}/ns/default/sa/c${c}`] }] }],
      },
    }], { actor: "bench" });
    const t1 = performance.now();
    await push.settle();
    const t2 = performance.now();
    const after = serverListeners();
    const t3 = performance.now();
    const changed = after.filter((l) => before.get(l.name) !== l.version);
    const encoded = changed.map((l) => encoder.value(l));
    const t4 = performance.now();
    // The reference, in the same run: every Listener encoded whole, as before the encoder
    // reused the filter chain they share; the bytes must be the same.
    const whole = changed.map((l) => encodeStrict(LISTENER, l.body));
    const t5 = performance.now();
    const bytes = encoded.reduce((sum, b) => sum + b.length, 0);
    if (
      whole.some((b, i) =>
        b.length !== encoded[i]!.length || b.some((x, j) => x !== encoded[i]![j])
      )
    ) {
      throw new Error("The encoder's bytes differ from a whole encoding");
    }
    rows.push([
      t1 - t0,
      t2 - t1,
      t3 - t2,
      t4 - t3,
      changed.length,
      bytes / changed.length,
      t5 - t4,
    ]);
  }
  const median = (i: number) => rows.map((r) => r[i]!).sort((a, b) => a - b)[rows.length >> 1]!;
  const max = (i: number) => Math.max(...rows.map((r) => r[i]!));
  const fmt = (n: number) => n.toFixed(1);
  console.log(
    `AuthorizationPolicy writes on a gRPC service served by ${
      servers.toLocaleString("en-US")
    } proxyless servers (${changes} writes, in process):\n`,
  );
  console.log(markdownTable(["step", "median ms", "max ms"], [
    ["policy write (store, audit)", fmt(median(0)), fmt(max(0))],
    ["push: view and caches", fmt(median(1)), fmt(max(1))],
    ["regenerate the server Listeners", fmt(median(2)), fmt(max(2))],
    ["encode the changed Listeners (`ResourceEncoder`)", fmt(median(3)), fmt(max(3))],
    ["reference: each Listener encoded whole", fmt(median(6)), fmt(max(6))],
  ]));
  console.log(
    `\n${median(4)} Listeners changed per write (3 per server), ${
      Math.round(median(5))
    } bytes each.`,
  );
} finally {
  await mesh.close();
}
