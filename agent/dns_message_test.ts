import assert from "node:assert/strict";
// @ts-types="@types/dns-packet"
import packet from "dns-packet";
import { DnsResponder, PERMUTATIONS, UDP_BASE_SIZE } from "./dns_message.ts";
import { DnsZone } from "./dns_zone.ts";

function zone(count: number): DnsZone {
  const z = new DnsZone({ domain: "ironmesh", ttlSeconds: 5, namespace: "default" });
  const instances = Array.from({ length: count }, (_, i) => ({
    namespace: "default",
    service: "web",
    address: `10.0.${i >> 8}.${i & 255}`,
    port: 8080,
    labels: {},
  }));
  z.update(instances, [], [{ namespace: "default", name: "web" }]);
  return z;
}

function query(name: string, type: string, extra: Partial<packet.Packet> = {}): Uint8Array {
  return new Uint8Array(packet.encode({
    type: "query",
    id: 4242,
    flags: packet.RECURSION_DESIRED,
    questions: [{ type: type as "A", name }],
    ...extra,
  }));
}

/** A decoded response; dns-packet's types leave out the RCODE it reads. */
type Response = packet.Packet & { rcode: string };

function decodeBytes(bytes: Uint8Array): Response {
  return packet.decode(Buffer.from(bytes)) as unknown as Response;
}

function decode(handled: ReturnType<DnsResponder["handle"]>): Response {
  assert.equal(handled.kind, "answer");
  return decodeBytes((handled as { bytes: Uint8Array }).bytes);
}

Deno.test("DnsResponder answers authoritatively, echoes the question as asked and the query's ID", () => {
  const responder = new DnsResponder(zone(2), { forward: false });
  const answer = decode(responder.handle(query("Web.Default.svc.ironmesh", "A"), "udp"));
  assert.equal(answer.id, 4242);
  assert.equal(answer.type, "response");
  assert.equal(answer.rcode, "NOERROR");
  assert.ok((answer.flags! & packet.AUTHORITATIVE_ANSWER) !== 0);
  assert.ok((answer.flags! & packet.RECURSION_DESIRED) !== 0, "RD copied");
  assert.equal(answer.flags! & packet.RECURSION_AVAILABLE, 0, "no recursion without forwarding");
  assert.equal(answer.questions![0]!.name, "Web.Default.svc.ironmesh");
  assert.deepEqual(answer.answers!.map((r) => (r as { data: string }).data).sort(), [
    "10.0.0.0",
    "10.0.0.1",
  ]);
  // The same question again comes from the cache, with the new ID.
  const again = query("Web.Default.svc.ironmesh", "A");
  again[0] = 0;
  again[1] = 7;
  assert.equal(decode(responder.handle(again, "udp")).id, 7);
});

Deno.test("DnsResponder shuffles: the first address varies between queries", () => {
  let seed = 1;
  const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
  const responder = new DnsResponder(zone(4), { forward: false, random });
  const firsts = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const a = decode(responder.handle(query("web.default.svc.ironmesh", "A"), "udp"));
    firsts.add((a.answers![0] as { data: string }).data);
    assert.equal(a.answers!.length, 4);
  }
  assert.ok(firsts.size >= 3, `first addresses seen: ${[...firsts]}`);
  assert.ok(PERMUTATIONS >= 4);
});

Deno.test("DnsResponder truncates what UDP cannot carry, and honours EDNS up to 1232 bytes", () => {
  // dns-packet writes names in full: 40 bytes an A record here, 25 of them need 1,000 bytes.
  const responder = new DnsResponder(zone(25), { forward: false });
  const small = decode(responder.handle(query("web.default.svc.ironmesh", "A"), "udp"));
  assert.ok((small.flags! & packet.TRUNCATED_RESPONSE) !== 0, "TC over 512 bytes");
  assert.equal(small.answers!.length, 0);
  const viaTcp = decode(responder.handle(query("web.default.svc.ironmesh", "A"), "tcp"));
  assert.equal(viaTcp.answers!.length, 25);
  assert.equal(viaTcp.flags! & packet.TRUNCATED_RESPONSE, 0);
  const edns = query("web.default.svc.ironmesh", "A", {
    additionals: [{ type: "OPT", name: ".", udpPayloadSize: 4096 } as never],
  });
  const handled = responder.handle(edns, "udp");
  const big = decode(handled);
  assert.equal(big.answers!.length, 25);
  assert.ok((handled as { bytes: Uint8Array }).bytes.length > UDP_BASE_SIZE);
  assert.ok(big.additionals!.some((r) => r.type === "OPT"), "an EDNS answer to an EDNS query");
});

Deno.test("DnsResponder: NXDOMAIN, REFUSED outside the domain, forward when configured, errors for bad messages", () => {
  const responder = new DnsResponder(zone(1), { forward: false });
  assert.equal(
    decode(responder.handle(query("nope.default.svc.ironmesh", "A"), "udp")).rcode,
    "NXDOMAIN",
  );
  const nx = decode(responder.handle(query("nope.default.svc.ironmesh", "A"), "udp"));
  assert.deepEqual(nx.authorities!.map((r) => [r.type, (r as { ttl: number }).ttl]), [["SOA", 5]]);
  assert.equal(decode(responder.handle(query("example.com", "A"), "udp")).rcode, "REFUSED");
  const forwarding = new DnsResponder(zone(1), { forward: true });
  assert.deepEqual(forwarding.handle(query("example.com", "A"), "udp"), {
    kind: "forward",
    type: "A",
  });
  const fail = decodeBytes(forwarding.serverFailure(query("example.com", "A"), "udp")!);
  assert.equal(fail.rcode, "SERVFAIL");
  assert.equal(fail.id, 4242);

  // Not a query: nothing is sent back.
  assert.deepEqual(responder.handle(new Uint8Array(5), "udp"), { kind: "drop" });
  const response = query("web.default.svc.ironmesh", "A");
  response[2]! |= 0x80;
  assert.deepEqual(responder.handle(response, "udp"), { kind: "drop" });
  // A header followed by garbage: FORMERR with the same ID.
  const garbage = new Uint8Array([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
  const formerr = decode(responder.handle(garbage, "udp"));
  assert.equal(formerr.rcode, "FORMERR");
  assert.equal(formerr.id, 0x1234);
  // Two questions: FORMERR; another opcode: NOTIMP.
  const two = new Uint8Array(packet.encode({
    type: "query",
    id: 1,
    questions: [{ type: "A", name: "a.ironmesh" }, { type: "A", name: "b.ironmesh" }],
  }));
  assert.equal(decode(responder.handle(two, "udp")).rcode, "FORMERR");
  const notify = query("web.default.svc.ironmesh", "A");
  notify[2] = (notify[2]! & 0x87) | (4 << 3);
  assert.equal(decode(responder.handle(notify, "udp")).rcode, "NOTIMP");
});

Deno.test("DnsResponder: an instance the zone drops is out of the very next answer, cached or not", () => {
  const z = zone(3);
  const responder = new DnsResponder(z, { forward: false });
  const ask = () =>
    decode(responder.handle(query("web.default.svc.ironmesh", "A"), "udp")).answers!
      .map((r) => String((r as { data: unknown }).data)).sort();
  // Every shuffled order of the answer is cached by now.
  for (let i = 0; i < PERMUTATIONS * 20; i++) ask();
  assert.deepEqual(ask(), ["10.0.0.0", "10.0.0.1", "10.0.0.2"]);
  // The watch learns that 10.0.0.1 turned unhealthy: the registry lists only the healthy.
  z.update(
    ["10.0.0.0", "10.0.0.2"].map((address) => ({
      namespace: "default",
      service: "web",
      address,
      port: 8080,
      labels: {},
    })),
    [],
    [{ namespace: "default", name: "web" }],
  );
  for (let i = 0; i < PERMUTATIONS * 20; i++) {
    assert.deepEqual(ask(), ["10.0.0.0", "10.0.0.2"]);
  }
});
