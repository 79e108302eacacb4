import assert from "node:assert/strict";
import { addressLabel, type DnsInstance, DnsZone } from "./dns_zone.ts";

function instance(service: string, address: string, extra: Partial<DnsInstance> = {}): DnsInstance {
  return { namespace: "default", service, address, port: 8080, labels: {}, ...extra };
}

function zone(): DnsZone {
  const z = new DnsZone({ domain: "ironmesh", ttlSeconds: 5, namespace: "default" });
  z.update(
    [
      instance("web", "10.0.0.1", { labels: { version: "v1" } }),
      instance("web", "10.0.0.2", { labels: { version: "v2" }, port: 9090 }),
      instance("web", "10.0.0.2", { labels: { version: "v2" }, port: 9091 }),
      instance("web", "fd00::1", { labels: { version: "v1" } }),
      instance("api", "10.0.1.1", { namespace: "shop" }),
    ],
    [{ namespace: "default", service: "web", name: "v1", labels: { version: "v1" } }],
    [{ namespace: "default", name: "web" }, { namespace: "shop", name: "api" }, {
      namespace: "shop",
      name: "idle",
    }],
  );
  return z;
}

function data(answer: ReturnType<DnsZone["answer"]>): unknown[] {
  assert.equal(answer.kind, "inside");
  return answer.kind === "inside" ? answer.answers.map((r) => r.data) : [];
}

Deno.test("DnsZone answers A and AAAA with each healthy address once, any case, trailing dot or not", () => {
  const z = zone();
  assert.deepEqual(data(z.answer("web.default.svc.ironmesh", "A")), ["10.0.0.1", "10.0.0.2"]);
  assert.deepEqual(data(z.answer("WEB.Default.svc.IRONMESH.", "A")), ["10.0.0.1", "10.0.0.2"]);
  assert.deepEqual(data(z.answer("web.default.svc.ironmesh", "AAAA")), ["fd00::1"]);
  const a = z.answer("web.default.svc.ironmesh", "A");
  assert.ok(a.kind === "inside" && a.shuffle && a.answers.every((r) => r.ttl === 5));
  assert.equal(a.kind === "inside" && a.answers[0]!.name, "web.default.svc.ironmesh", "as asked");
});

Deno.test("DnsZone answers SRV with ports and targets whose addresses come along", () => {
  const z = zone();
  const srv = z.answer("web.default.svc.ironmesh", "SRV");
  assert.equal(srv.kind, "inside");
  if (srv.kind !== "inside") return;
  assert.deepEqual(srv.answers.map((r) => r.data), [
    { priority: 1, weight: 1, port: 8080, target: "0a000001.addr.ironmesh" },
    { priority: 1, weight: 1, port: 9090, target: "0a000002.addr.ironmesh" },
    { priority: 1, weight: 1, port: 9091, target: "0a000002.addr.ironmesh" },
    {
      priority: 1,
      weight: 1,
      port: 8080,
      target: "fd000000000000000000000000000001.addr.ironmesh",
    },
  ]);
  assert.deepEqual(srv.additionals.map((r) => [r.type, r.name, r.data]), [
    ["A", "0a000001.addr.ironmesh", "10.0.0.1"],
    ["A", "0a000002.addr.ironmesh", "10.0.0.2"],
    ["AAAA", "fd000000000000000000000000000001.addr.ironmesh", "fd00::1"],
  ]);
  // The targets resolve by themselves too.
  assert.deepEqual(data(z.answer("0a000002.addr.ironmesh", "A")), ["10.0.0.2"]);
  assert.deepEqual(data(z.answer("fd000000000000000000000000000001.addr.ironmesh", "AAAA")), [
    "fd00:0:0:0:0:0:0:1",
  ]);
  assert.equal(addressLabel("::ffff:10.0.0.1"), "00000000000000000000ffff0a000001");
});

Deno.test("DnsZone answers subsets by their labels and short names in the node's namespace", () => {
  const z = zone();
  assert.deepEqual(data(z.answer("v1.web.default.svc.ironmesh", "A")), ["10.0.0.1"]);
  assert.deepEqual(data(z.answer("v1.web.default.svc.ironmesh", "AAAA")), ["fd00::1"]);
  assert.deepEqual(data(z.answer("web.svc.ironmesh", "A")), ["10.0.0.1", "10.0.0.2"]);
  // api is in shop, not the node's namespace: only its full name finds it.
  assert.deepEqual(data(z.answer("api.shop.svc.ironmesh", "A")), ["10.0.1.1"]);
  const short = z.answer("api.svc.ironmesh", "A");
  assert.equal(short.kind === "inside" ? short.rcode : short.kind, "NXDOMAIN");
});

Deno.test("DnsZone: NXDOMAIN for unknown names, NODATA for names without records, outside for the rest", () => {
  const z = zone();
  const rcode = (name: string, type = "A") => {
    const a = z.answer(name, type);
    return a.kind === "inside"
      ? `${a.rcode}/${a.answers.length}/${a.authorities.map((r) => r.type).join()}`
      : a.kind;
  };
  assert.equal(rcode("nope.default.svc.ironmesh"), "NXDOMAIN/0/SOA");
  assert.equal(rcode("v9.web.default.svc.ironmesh"), "NXDOMAIN/0/SOA", "unknown subset");
  assert.equal(rcode("x.y.z.web.default.svc.ironmesh"), "NXDOMAIN/0/SOA");
  assert.equal(rcode("web.default.cluster.ironmesh"), "NXDOMAIN/0/SOA");
  assert.equal(rcode("zz.addr.ironmesh"), "NXDOMAIN/0/SOA");
  // A service without healthy instances exists: no records, no error.
  assert.equal(rcode("idle.shop.svc.ironmesh"), "NOERROR/0/SOA");
  assert.equal(rcode("web.default.svc.ironmesh", "TXT"), "NOERROR/0/SOA");
  assert.equal(rcode("ironmesh", "SOA"), "NOERROR/1/");
  assert.equal(rcode("svc.ironmesh"), "NOERROR/0/SOA");
  assert.equal(rcode("shop.svc.ironmesh"), "NOERROR/0/SOA", "a namespace");
  assert.equal(rcode("example.com"), "outside");
  assert.equal(rcode("notironmesh"), "outside");
  // An instance that leaves the view leaves the answers.
  const before = z.generation;
  z.update([instance("web", "10.0.0.1")], [], [{ namespace: "default", name: "web" }]);
  assert.equal(z.generation, before + 1);
  assert.deepEqual(data(z.answer("web.default.svc.ironmesh", "A")), ["10.0.0.1"]);
});
