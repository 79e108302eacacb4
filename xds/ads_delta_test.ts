/**
 * The delta (incremental) ADS server over real gRPC: a grpc-js server on
 * 127.0.0.1:0 (the product's `startGrpcServer`) fed with hand-built
 * snapshots, and a test client we wrote that speaks
 * `DeltaAggregatedResources` with the strict codec. State-of-the-world
 * streams are tested in `ads_server_test.ts`.
 */
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { silentLogger } from "../core/log.ts";
import { AdsServer } from "./ads_server.ts";
import type { ProxySnapshot, Resource } from "./generate/model.ts";
import { startGrpcServer } from "./grpc_server.ts";
import { DEFAULT_CONNECTION_LIMITS } from "../core/server_config.ts";
import {
  BASE,
  CDS,
  cluster,
  type DeltaResponse,
  EDS,
  endpoints,
  LDS,
  listener,
  PEER,
  RDS,
  route,
  snapshot,
  TestDeltaClient,
} from "./_ads_testing.ts";

// ---------------------------------------------------------------------------
// The test client and fixture.

/** `name@version` of each resource in a response, and its removals. */
function changes(response: DeltaResponse): { sent: string[]; removed: string[] } {
  return {
    sent: (response.resources ?? []).map((r) => `${r.name}@${r.version}`),
    removed: response.removed_resources ?? [],
  };
}

/** `name@version` of a resource. */
function at(r: Resource): string {
  return `${r.name}@${r.version}`;
}

async function waitFor(condition: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 2_000;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** An ADS server on 127.0.0.1:0 serving `current`, with its clients; dispose to close all. */
async function fixture(initial: ProxySnapshot = BASE) {
  let current = initial;
  const sent: string[] = [];
  const ads = new AdsServer({
    log: silentLogger,
    snapshotFor: () => current,
    identify: () => PEER,
    events: { sent: (typeUrl) => sent.push(typeUrl) },
  });
  const listener = await startGrpcServer({ host: "127.0.0.1", port: 0 }, {
    isServing: () => true,
    ads,
    limits: DEFAULT_CONNECTION_LIMITS,
  });
  const clients: TestDeltaClient[] = [];
  return {
    ads,
    /** Type URLs of every response written, in order. */
    sent,
    connect(): TestDeltaClient {
      const client = new TestDeltaClient(listener.address.port);
      clients.push(client);
      return client;
    },
    /** Serves `next` from now on and pushes. */
    async push(next: ProxySnapshot): Promise<void> {
      current = next;
      await ads.push();
    },
    /** The status of a type on the only stream open. */
    type(typeUrl: string) {
      const status = ads.status();
      assert.equal(status.length, 1);
      const found = status[0]!.types.find((t) => t.typeUrl === typeUrl);
      assert.ok(found, `no status for ${typeUrl}`);
      return found;
    },
    async [Symbol.asyncDispose]() {
      for (const client of clients) await client.close();
      await listener.stop(1_000);
    },
  };
}

// ---------------------------------------------------------------------------

Deno.test("Delta: a wildcard CDS stream gets every cluster, then only what changed", async () => {
  await using f = await fixture();
  const client = f.connect();
  client.send({ type_url: CDS });
  const first = await client.next();
  assert.equal(first.type_url, CDS);
  assert.deepEqual(changes(first), { sent: [at(cluster("a")), at(cluster("b"))], removed: [] });
  assert.equal(first.resources![0]!.resource["@type"], CDS);
  assert.deepEqual(first.resources![0]!.resource["name"], "a");
  client.ack(first);
  await waitFor(() => f.type(CDS).inSync, "the ACK");
  assert.equal(f.type(CDS).subscribed, "*");
  assert.equal(f.type(CDS).ackedVersion, first.system_version_info);

  await f.push(snapshot({ ...BASE, clusters: [cluster("a", "2s"), cluster("b"), cluster("c")] }));
  const second = await client.next();
  assert.deepEqual(changes(second), {
    sent: [at(cluster("a", "2s")), at(cluster("c"))],
    removed: [],
  });
  assert.notEqual(second.system_version_info, first.system_version_info);
  client.ack(second);
  await waitFor(() => f.type(CDS).ackedVersion === second.system_version_info, "the 2nd ACK");

  // Nothing changed: nothing is sent.
  await f.push(snapshot({ ...BASE, clusters: [cluster("a", "2s"), cluster("b"), cluster("c")] }));
  assert.deepEqual(f.sent, [CDS, CDS]);
  assert.equal(client.unread, 0);
});

Deno.test("Delta: subscribe and unsubscribe; an unknown name is sent once it exists", async () => {
  await using f = await fixture();
  const client = f.connect();
  // EDS is no wildcard type: an empty first request subscribes to nothing.
  client.send({ type_url: EDS, resource_names_subscribe: ["a", "later"] });
  const first = await client.next();
  assert.equal(first.type_url, EDS);
  assert.deepEqual(changes(first), { sent: [at(endpoints("a"))], removed: [] });
  client.ack(first);
  client.send({ type_url: EDS, resource_names_subscribe: ["b"] });
  const second = await client.next();
  assert.deepEqual(changes(second), { sent: [at(endpoints("b"))], removed: [] });
  client.ack(second);
  client.send({ type_url: EDS, resource_names_unsubscribe: ["a"] });
  await waitFor(() => !f.type(EDS).subscribed.includes("a"), "the unsubscribe");
  assert.deepEqual(f.type(EDS).subscribed, ["b", "later"]);
  assert.deepEqual(f.ads.configDump(f.ads.status()[0]!.id)![EDS], [endpoints("b").body]);

  // `a` changes (no longer tracked), `later` appears (subscribed): only `later` is sent.
  await f.push(
    snapshot({ ...BASE, endpoints: [endpoints("a", 9), endpoints("b"), endpoints("later")] }),
  );
  const third = await client.next();
  assert.deepEqual(changes(third), { sent: [at(endpoints("later"))], removed: [] });
  assert.deepEqual(f.sent, [EDS, EDS, EDS]);
});

Deno.test("Delta: removed_resources when a resource disappears", async () => {
  await using f = await fixture();
  const client = f.connect();
  client.send({ type_url: CDS });
  client.ack(await client.next());
  client.send({ type_url: EDS, resource_names_subscribe: ["a", "b"] });
  client.ack(await client.next());

  const without = snapshot({ ...BASE, clusters: [cluster("a")], endpoints: [endpoints("a")] });
  await f.push(without);
  const cds = await client.next();
  assert.equal(cds.type_url, CDS);
  assert.deepEqual(changes(cds), { sent: [], removed: ["b"] });
  const eds = await client.next();
  assert.equal(eds.type_url, EDS);
  assert.deepEqual(changes(eds), { sent: [], removed: ["b"] });
  client.ack(cds);
  client.ack(eds);
  await waitFor(() => f.ads.status()[0]!.types.every((t) => t.inSync), "the ACKs");
  const dump = f.ads.configDump(f.ads.status()[0]!.id)!;
  assert.deepEqual(dump[CDS], [cluster("a").body]);
  assert.deepEqual(dump[EDS], [endpoints("a").body]);
  // The subscription to `b` stays: it is sent again when it comes back.
  assert.deepEqual(f.type(EDS).subscribed, ["a", "b"]);

  const before = f.sent.length;
  await f.push(without);
  assert.equal(f.sent.length, before);

  await f.push(BASE);
  assert.deepEqual(changes(await client.next()), { sent: [at(cluster("b"))], removed: [] });
  assert.deepEqual(changes(await client.next()), { sent: [at(endpoints("b"))], removed: [] });
});

Deno.test("Delta: initial_resource_versions are honoured on reconnect", async () => {
  await using f = await fixture();
  const client = f.connect();
  // A proxy reconnecting: it has `a` as it is, an older `b`, and `old`, which is gone.
  client.send({
    type_url: CDS,
    initial_resource_versions: {
      a: cluster("a").version,
      b: cluster("b", "9s").version,
      old: cluster("old").version,
    },
  });
  const cds = await client.next();
  assert.deepEqual(changes(cds), { sent: [at(cluster("b"))], removed: ["old"] });
  client.ack(cds);

  // It has every endpoint it subscribes to, as it is: nothing is sent for them.
  client.send({
    type_url: EDS,
    resource_names_subscribe: ["a", "b"],
    initial_resource_versions: { a: endpoints("a").version, b: endpoints("b").version },
  });
  // A barrier: the stream is ordered, so once RDS answers, the EDS request was handled.
  client.send({ type_url: RDS, resource_names_subscribe: ["r1"] });
  const rds = await client.next();
  assert.equal(rds.type_url, RDS);
  assert.deepEqual(changes(rds), { sent: [at(route("r1", "a"))], removed: [] });
  assert.deepEqual(f.sent, [CDS, RDS]);
  const eds = f.type(EDS);
  assert.equal(eds.inSync, true);
  assert.deepEqual(f.ads.configDump(f.ads.status()[0]!.id)![EDS], [
    endpoints("a").body,
    endpoints("b").body,
  ]);

  // What it already has counts as held: a later change of `b` only sends `b`.
  await f.push(snapshot({ ...BASE, endpoints: [endpoints("a"), endpoints("b", 9)] }));
  assert.deepEqual(changes(await client.next()), { sent: [at(endpoints("b", 9))], removed: [] });
});

Deno.test("Delta: a wildcard proxy that already has everything gets an empty first answer", async () => {
  await using f = await fixture();
  const client = f.connect();
  client.send({
    type_url: CDS,
    resource_names_subscribe: ["*"],
    initial_resource_versions: { a: cluster("a").version, b: cluster("b").version },
  });
  const cds = await client.next();
  assert.deepEqual(changes(cds), { sent: [], removed: [] });
  client.ack(cds);
  await waitFor(() => f.type(CDS).inSync, "the ACK");
});

Deno.test("Delta: a NACKed resource version is never re-sent", async () => {
  await using f = await fixture();
  const client = f.connect();
  client.send({ type_url: CDS });
  const good = await client.next();
  client.ack(good);
  await waitFor(() => f.type(CDS).inSync, "the ACK");

  const bad = snapshot({ ...BASE, clusters: [cluster("a", "2s"), cluster("b")] });
  await f.push(bad);
  const rejected = await client.next();
  assert.deepEqual(changes(rejected), { sent: [at(cluster("a", "2s"))], removed: [] });
  client.nack(rejected, "bad cluster a");
  await waitFor(() => f.type(CDS).lastNack !== null, "the NACK");
  const status = f.type(CDS);
  assert.deepEqual(
    { ...status.lastNack!, at: "" },
    { version: rejected.system_version_info, message: "bad cluster a", at: "" },
  );
  assert.equal(status.ackedVersion, good.system_version_info);
  assert.equal(status.inSync, false);
  // The proxy keeps what it last accepted.
  const id = f.ads.status()[0]!.id;
  assert.deepEqual(f.ads.configDump(id)![CDS], [cluster("a").body, cluster("b").body]);

  // No change: nothing is sent.
  const before = f.sent.length;
  await f.push(bad);
  assert.equal(f.sent.length, before);

  // Something else changes: only that is sent, not the rejected `a` again.
  await f.push(snapshot({ ...BASE, clusters: [cluster("a", "2s"), cluster("b", "3s")] }));
  const other = await client.next();
  assert.deepEqual(changes(other), { sent: [at(cluster("b", "3s"))], removed: [] });
  client.ack(other);

  // A new version of `a` is sent.
  await f.push(snapshot({ ...BASE, clusters: [cluster("a", "4s"), cluster("b", "3s")] }));
  const fixed = await client.next();
  assert.deepEqual(changes(fixed), { sent: [at(cluster("a", "4s"))], removed: [] });
  client.ack(fixed);
  await waitFor(() => f.type(CDS).inSync, "the last ACK");
  assert.deepEqual(f.ads.configDump(id)![CDS], [cluster("a", "4s").body, cluster("b", "3s").body]);
});

Deno.test("Delta: a reply with a stale or unknown nonce is ignored", async () => {
  await using f = await fixture();
  const client = f.connect();
  client.send({ type_url: CDS });
  const first = await client.next();
  await f.push(snapshot({ ...BASE, clusters: [cluster("a", "2s"), cluster("b")] }));
  const second = await client.next();
  assert.deepEqual(changes(second), { sent: [at(cluster("a", "2s"))], removed: [] });
  // Answering the newest answers the older one too.
  client.ack(second);
  await waitFor(() => f.type(CDS).inSync, "the ACK");
  assert.equal(f.type(CDS).ackedVersion, second.system_version_info);

  // NACKs of an answered response and of a response never sent count for nothing.
  client.nack(first, "stale");
  client.nack({ ...first, nonce: "999" }, "unknown");
  // A barrier: the stream is ordered, so once EDS answers, the stale replies were handled.
  client.send({ type_url: EDS, resource_names_subscribe: ["a"] });
  assert.equal((await client.next()).type_url, EDS);
  const cds = f.type(CDS);
  assert.equal(cds.lastNack, null);
  assert.equal(cds.inSync, true);
  assert.equal(client.unread, 0);
});

Deno.test("Delta: status(), configDump() and closeNode() cover delta streams", async () => {
  await using f = await fixture();
  const client = f.connect();
  client.send({ type_url: CDS });
  client.ack(await client.next());
  client.send({ type_url: RDS, resource_names_subscribe: ["r2"] });
  client.ack(await client.next());
  client.send({ type_url: LDS });
  const lds = await client.next();
  assert.deepEqual(changes(lds).sent, [at(listener("l1", 15001)), at(listener("l2", 15002))]);
  client.ack(lds);
  await waitFor(() => f.ads.status()[0]!.types.every((t) => t.inSync), "the ACKs");

  const [status] = f.ads.status();
  assert.match(status!.id, /^ads-delta-\d+$/);
  assert.deepEqual(
    { node: status!.node, identity: status!.identity, kind: status!.kind },
    PEER,
  );
  assert.deepEqual(
    status!.types.map((t) => [t.typeUrl, t.subscribed]),
    [[CDS, "*"], [RDS, ["r2"]], [LDS, "*"]],
  );
  assert.deepEqual(f.ads.configDump(status!.id), {
    [CDS]: [cluster("a").body, cluster("b").body],
    [RDS]: [route("r2", "b").body],
    [LDS]: [listener("l1", 15001).body, listener("l2", 15002).body],
  });

  assert.equal(f.ads.closeNode("vm-2"), 0);
  assert.equal(f.ads.closeNode("vm-1"), 1);
  const ended = await client.ended;
  assert.equal(ended.code, grpc.status.UNAUTHENTICATED);
  assert.match(ended.details, /revoked/);
  await waitFor(() => f.ads.status().length === 0, "the stream to close");
});
