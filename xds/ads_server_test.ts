/**
 * The state-of-the-world ADS server over real gRPC: a grpc-js server on
 * 127.0.0.1:0 (the product's `startGrpcServer`) fed with hand-built
 * snapshots, and a test client we wrote that speaks the protocol with the
 * strict codec. Delta streams are tested in `ads_delta_test.ts`.
 */
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { UnauthorizedError } from "../core/errors.ts";
import { silentLogger } from "../core/log.ts";
import { AdsServer, type ProxyPeer } from "./ads_server.ts";
import type { ProxySnapshot } from "./generate/model.ts";
import { startGrpcServer } from "./grpc_server.ts";
import { DEFAULT_CONNECTION_LIMITS } from "../core/server_config.ts";
import {
  BASE,
  CDS,
  cluster,
  EDS,
  endpoints,
  LDS,
  PEER,
  RDS,
  snapshot,
  type SotwResponse,
  TestSotwClient,
} from "./_ads_testing.ts";

// ---------------------------------------------------------------------------
// The test client and fixture.

/** Names in a response, in order. */
function names(response: SotwResponse): string[] {
  return (response.resources ?? []).map((r) => String(r["name"] ?? r["cluster_name"]));
}

async function waitFor(condition: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 2_000;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** An ADS server on 127.0.0.1:0 serving `current`, with its clients; dispose to close all. */
async function fixture(initial: ProxySnapshot = BASE, identify: () => ProxyPeer = () => PEER) {
  let current = initial;
  const sent: string[] = [];
  const ads = new AdsServer({
    log: silentLogger,
    snapshotFor: () => current,
    identify,
    events: { sent: (typeUrl) => sent.push(typeUrl) },
  });
  const listener = await startGrpcServer({ host: "127.0.0.1", port: 0 }, {
    isServing: () => true,
    ads,
    limits: DEFAULT_CONNECTION_LIMITS,
  });
  const clients: TestSotwClient[] = [];
  return {
    ads,
    /** Type URLs of every response written, in order. */
    sent,
    connect(): TestSotwClient {
      const client = new TestSotwClient(listener.address.port);
      clients.push(client);
      return client;
    },
    /** Serves `next` from now on and pushes. */
    async push(next: ProxySnapshot): Promise<void> {
      current = next;
      await ads.push();
    },
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

Deno.test("SotW: LDS and CDS wildcards get every resource, RDS and EDS only subscribed names", async () => {
  await using f = await fixture();
  const client = f.connect();
  client.subscribe(LDS, []);
  const lds = await client.next();
  assert.equal(lds.type_url, LDS);
  assert.deepEqual(names(lds), ["l1", "l2"]);
  assert.equal(lds.resources![0]!["@type"], LDS);
  client.subscribe(CDS, []);
  assert.deepEqual(names(await client.next()), ["a", "b"]);
  client.subscribe(RDS, ["r1"]);
  assert.deepEqual(names(await client.next()), ["r1"]);
  client.subscribe(EDS, ["b", "missing"]);
  const eds = await client.next();
  assert.equal(eds.type_url, EDS);
  assert.deepEqual(names(eds), ["b"]);

  const [status] = f.ads.status();
  assert.equal(status!.id.includes("delta"), false);
  assert.equal(status!.node, "vm-1");
  assert.deepEqual(
    status!.types.map((t) => [t.typeUrl, t.subscribed, t.inSync]),
    [[LDS, "*", false], [CDS, "*", false], [RDS, ["r1"], false], [EDS, ["b", "missing"], false]],
  );
  const dump = f.ads.configDump(status!.id)!;
  assert.deepEqual(dump[EDS], [endpoints("b").body]);
  assert.deepEqual(dump[CDS], [cluster("a").body, cluster("b").body]);
  assert.equal(f.ads.configDump("nope"), null);
});

Deno.test("SotW: an ACK is recorded and nothing is re-sent while nothing changes", async () => {
  await using f = await fixture();
  const client = f.connect();
  client.subscribe(CDS, []);
  const first = await client.next();
  assert.ok(first.version_info);
  assert.equal(f.type(CDS).ackedVersion, null);
  client.ack(first);
  await waitFor(() => f.type(CDS).inSync, "the ACK");
  assert.equal(f.type(CDS).ackedVersion, first.version_info);
  assert.equal(f.type(CDS).sentVersion, first.version_info);
  await f.push(BASE);
  assert.deepEqual(f.sent, [CDS]);
  assert.equal(client.unread, 0);
});

Deno.test("SotW: a NACK is recorded and the rejected version is never re-sent", async () => {
  await using f = await fixture();
  const client = f.connect();
  client.subscribe(CDS, []);
  const good = await client.next();
  client.ack(good);
  await waitFor(() => f.type(CDS).inSync, "the ACK");

  const bad = snapshot({ ...BASE, clusters: [cluster("a", "2s"), cluster("b")] });
  await f.push(bad);
  const rejected = await client.next();
  assert.notEqual(rejected.version_info, good.version_info);
  client.nack(rejected, "bad cluster a");
  await waitFor(() => f.type(CDS).lastNack !== null, "the NACK");
  const status = f.type(CDS);
  assert.equal(status.lastNack!.version, rejected.version_info);
  assert.equal(status.lastNack!.message, "bad cluster a");
  assert.equal(status.ackedVersion, good.version_info);
  assert.equal(status.inSync, false);

  // No change: the rejected version is not sent again.
  const before = f.sent.length;
  await f.push(bad);
  assert.equal(f.sent.length, before);

  // Something else changes: a new version goes out and is accepted.
  await f.push(snapshot({ ...BASE, clusters: [cluster("a", "2s"), cluster("b", "3s")] }));
  const next = await client.next();
  assert.notEqual(next.version_info, rejected.version_info);
  assert.deepEqual(names(next), ["a", "b"]);
  client.ack(next);
  await waitFor(() => f.type(CDS).inSync, "the second ACK");
  assert.equal(f.type(CDS).lastNack!.version, rejected.version_info);
});

// The guard matters only once the proxy has moved past the rejected version: re-pushing the
// bad snapshot while it is still the last one sent is stopped by the "already sent" check alone.
Deno.test("SotW: a NACKed version is not sent again after the proxy moved back to a good one", async () => {
  await using f = await fixture();
  const client = f.connect();
  client.subscribe(CDS, []);
  const good = await client.next();
  client.ack(good);
  await waitFor(() => f.type(CDS).inSync, "the ACK");

  const bad = snapshot({ ...BASE, clusters: [cluster("a", "2s"), cluster("b")] });
  await f.push(bad);
  const rejected = await client.next();
  client.nack(rejected, "bad cluster a");
  await waitFor(() => f.type(CDS).lastNack !== null, "the NACK");

  // The base again: it differs from the last version sent, so it goes out and is accepted.
  await f.push(BASE);
  const back = await client.next();
  assert.notEqual(back.version_info, rejected.version_info);
  assert.deepEqual(names(back), names(good));
  client.ack(back);
  await waitFor(() => f.type(CDS).inSync, "the ACK of the base");

  // The rejected snapshot once more: the proxy said no to exactly this version.
  const before = f.sent.length;
  await f.push(bad);
  assert.equal(f.sent.length, before);
  assert.equal(client.unread, 0);
  assert.equal(f.type(CDS).ackedVersion, back.version_info);
});

Deno.test("SotW: a reply with a stale nonce is ignored", async () => {
  await using f = await fixture();
  const client = f.connect();
  client.subscribe(CDS, []);
  const first = await client.next();
  await f.push(snapshot({ ...BASE, clusters: [cluster("a", "2s"), cluster("b")] }));
  const second = await client.next();
  assert.notEqual(first.nonce, second.nonce);

  // Replies to the first response, which the second one superseded: a NACK and a
  // narrower subscription. Neither counts.
  client.raw({
    type_url: CDS,
    response_nonce: first.nonce,
    error_detail: { code: 3, message: "stale" },
  });
  client.raw({
    type_url: CDS,
    resource_names: ["a"],
    version_info: first.version_info,
    response_nonce: first.nonce,
  });
  // A barrier: the stream is ordered, so once EDS answers, the stale replies were handled.
  client.subscribe(EDS, ["a"]);
  const eds = await client.next();
  assert.equal(eds.type_url, EDS);
  assert.equal(client.unread, 0);
  const cds = f.type(CDS);
  assert.equal(cds.lastNack, null);
  assert.equal(cds.ackedVersion, null);
  assert.equal(cds.subscribed, "*");
  assert.equal(cds.sentVersion, second.version_info);

  client.ack(second);
  await waitFor(() => f.type(CDS).inSync, "the ACK of the newest response");
});

Deno.test("SotW: a push after an endpoint-only change sends EDS only", async () => {
  await using f = await fixture();
  const client = f.connect();
  for (const [typeUrl, subscribed] of [[CDS, []], [EDS, ["a", "b"]], [LDS, []], [RDS, ["r1"]]]) {
    client.subscribe(typeUrl as string, subscribed as string[]);
    client.ack(await client.next());
  }
  await waitFor(() => f.ads.status()[0]!.types.every((t) => t.inSync), "every ACK");
  const before = f.sent.length;

  await f.push(snapshot({ ...BASE, endpoints: [endpoints("a", 9090), endpoints("b")] }));
  assert.deepEqual(f.sent.slice(before), [EDS]);
  const eds = await client.next();
  assert.equal(eds.type_url, EDS);
  assert.deepEqual(names(eds), ["a", "b"]);
  const { "@type": _, ...body } = eds.resources![0]!;
  assert.deepEqual(body, endpoints("a", 9090).body);
});

Deno.test("SotW: a caller identify() refuses, or a revoked node, gets an error status", async () => {
  await using refusing = await fixture(BASE, () => {
    throw new UnauthorizedError("xDS needs the proxy's mesh certificate (mTLS)");
  });
  const stranger = refusing.connect();
  stranger.subscribe(CDS, []);
  const refused = await stranger.ended;
  assert.equal(refused.code, grpc.status.UNAUTHENTICATED);
  assert.match(refused.details, /mesh certificate/);
  assert.deepEqual(refusing.ads.status(), []);

  await using f = await fixture();
  const client = f.connect();
  client.subscribe(CDS, []);
  await client.next();
  assert.equal(f.ads.closeNode("vm-1"), 1);
  assert.equal((await client.ended).code, grpc.status.UNAUTHENTICATED);
  await waitFor(() => f.ads.status().length === 0, "the stream to close");
});
