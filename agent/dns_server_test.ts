import assert from "node:assert/strict";
import dgram from "node:dgram";
import { silentLogger } from "../core/log.ts";
import { Forwarder, resolversOf } from "./dns_forward.ts";
import { DnsResponder } from "./dns_message.ts";
import { startDnsServer } from "./dns_server.ts";
import { DnsZone } from "./dns_zone.ts";

/** Runs `dig` (Debian's dnsutils) against `port` and returns its output lines. */
async function dig(port: number, ...args: string[]): Promise<string[]> {
  const out = await new Deno.Command("dig", {
    args: ["@127.0.0.1", "-p", String(port), "+time=2", "+tries=1", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  return text.split("\n").map((l) => l.trim()).filter((l) => l !== "");
}

function status(lines: string[]): string | undefined {
  return lines.map((l) => /status: (\w+)/.exec(l)?.[1]).find((s) => s !== undefined);
}

function meshZone(): DnsZone {
  const zone = new DnsZone({ domain: "ironmesh", ttlSeconds: 5, namespace: "default" });
  zone.update(
    [
      { namespace: "default", service: "web", address: "10.0.0.1", port: 8080, labels: { v: "1" } },
      { namespace: "default", service: "web", address: "10.0.0.2", port: 8081, labels: { v: "2" } },
      { namespace: "default", service: "web", address: "fd00::2", port: 8081, labels: { v: "2" } },
    ],
    [{ namespace: "default", service: "web", name: "two", labels: { v: "2" } }],
    [{ namespace: "default", name: "web" }],
  );
  return zone;
}

Deno.test("DNS server answers dig over UDP and TCP: A, AAAA, SRV, subsets, short names, NXDOMAIN, REFUSED", async () => {
  const events: string[] = [];
  const server = await startDnsServer({
    listen: { host: "127.0.0.1", port: 0 },
    responder: new DnsResponder(meshZone(), { forward: false }),
    log: silentLogger,
    events: { response: (rcode, transport) => events.push(`${transport}:${rcode}`) },
  });
  const { port } = server.address;
  try {
    assert.deepEqual(
      (await dig(port, "+short", "web.default.svc.ironmesh", "A")).sort(),
      ["10.0.0.1", "10.0.0.2"],
    );
    assert.deepEqual(await dig(port, "+short", "web.default.svc.ironmesh", "AAAA"), ["fd00::2"]);
    assert.deepEqual(
      await dig(port, "+short", "+tcp", "web.svc.ironmesh", "A").then((l) => l.sort()),
      [
        "10.0.0.1",
        "10.0.0.2",
      ],
    );
    assert.deepEqual(
      await dig(port, "+short", "two.web.default.svc.ironmesh", "A"),
      ["10.0.0.2"],
    );
    assert.deepEqual((await dig(port, "+short", "web.default.svc.ironmesh", "SRV")).sort(), [
      "1 1 8080 0a000001.addr.ironmesh.",
      "1 1 8081 0a000002.addr.ironmesh.",
      "1 1 8081 fd000000000000000000000000000002.addr.ironmesh.",
    ]);
    const nx = await dig(port, "nope.default.svc.ironmesh", "A");
    assert.equal(status(nx), "NXDOMAIN");
    assert.ok(nx.some((l) => l.includes("flags: qr aa")), nx.join("\n"));
    assert.equal(status(await dig(port, "example.com", "A")), "REFUSED");
    // TTL: small, as configured.
    const full = await dig(port, "+noall", "+answer", "web.default.svc.ironmesh", "A");
    assert.ok(full.every((l) => /\s5\s+IN\s+A\s/.test(l)), full.join("\n"));
    assert.ok(events.includes("udp:NOERROR") && events.includes("tcp:NOERROR"), events.join());
  } finally {
    await server.close();
  }
});

Deno.test("DNS server forwards other names to the host's resolver when asked to, SERVFAIL when it is silent", async () => {
  const other = new DnsZone({ domain: "example", ttlSeconds: 60, namespace: "default" });
  other.update(
    [{ namespace: "x", service: "y", address: "192.0.2.7", port: 1, labels: {} }],
    [],
    [],
  );
  const upstream = await startDnsServer({
    listen: { host: "127.0.0.1", port: 0 },
    responder: new DnsResponder(other, { forward: false }),
    log: silentLogger,
  });
  // A resolver that never answers: a bound UDP socket nobody reads.
  const silent = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => silent.bind(0, "127.0.0.1", () => resolve()));
  const mesh = await startDnsServer({
    listen: { host: "127.0.0.1", port: 0 },
    responder: new DnsResponder(meshZone(), { forward: true }),
    forwarder: new Forwarder([{ host: "127.0.0.1", port: upstream.address.port }]),
    log: silentLogger,
  });
  const failing = await startDnsServer({
    listen: { host: "127.0.0.1", port: 0 },
    responder: new DnsResponder(meshZone(), { forward: true }),
    forwarder: new Forwarder([{ host: "127.0.0.1", port: silent.address().port }]),
    log: silentLogger,
  });
  try {
    assert.deepEqual(await dig(mesh.address.port, "+short", "y.x.svc.example", "A"), ["192.0.2.7"]);
    assert.deepEqual(await dig(mesh.address.port, "+short", "+tcp", "y.x.svc.example", "A"), [
      "192.0.2.7",
    ]);
    // The mesh's own names are still answered by the agent.
    assert.equal((await dig(mesh.address.port, "+short", "web.svc.ironmesh", "A")).length, 2);
    assert.equal(status(await dig(failing.address.port, "y.x.svc.example", "A")), "SERVFAIL");
  } finally {
    await Promise.all([mesh.close(), failing.close(), upstream.close()]);
    silent.close();
  }
});

Deno.test("resolversOf() reads resolv.conf, skipping the agent itself and names", () => {
  const text = `# generated
nameserver 127.0.0.53
nameserver 10.0.0.2
nameserver fe80::1%eth0
nameserver dns.example
search example
`;
  assert.deepEqual(resolversOf(text, { host: "127.0.0.1", port: 8600 }), [
    { host: "127.0.0.53", port: 53 },
    { host: "10.0.0.2", port: 53 },
    { host: "fe80::1%eth0", port: 53 },
  ]);
  assert.deepEqual(resolversOf(text, { host: "10.0.0.2", port: 53 }).length, 2);
});

Deno.test("DNS server: port 0 gives UDP and TCP the same free port; a taken port is an error", async () => {
  const server = await startDnsServer({
    listen: { host: "127.0.0.1", port: 0 },
    responder: new DnsResponder(meshZone(), { forward: false }),
    log: silentLogger,
  });
  try {
    assert.notEqual(server.address.port, 0);
    await assert.rejects(
      startDnsServer({
        listen: server.address,
        responder: new DnsResponder(meshZone(), { forward: false }),
        log: silentLogger,
      }),
      /^Error: Cannot listen on DNS address 127\.0\.0\.1:\d+: /,
    );
  } finally {
    await server.close();
  }
});
