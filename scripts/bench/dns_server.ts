/**
 * The server side of the DNS benchmark (`dns.ts`), in its own process: the
 * agent's DNS server (zone, responder, UDP socket) over a registry view of
 * 100 services with 5 instances each, or (`echo`) a UDP socket that sends
 * every datagram back, the floor the same runtime sets. Prints
 * `{"port": N}` once it listens; runs until killed.
 *
 *   deno run -A scripts/bench/dns_server.ts dns|echo
 */
import { silentLogger } from "../../core/log.ts";
import { DnsResponder } from "../../agent/dns_message.ts";
import { startDnsServer } from "../../agent/dns_server.ts";
import { DnsZone } from "../../agent/dns_zone.ts";

/** Services in the view, and instances per service. */
export const SERVICES = 100;
export const INSTANCES = 5;

if (import.meta.main) await main(Deno.args[0]);

async function main(mode: string | undefined): Promise<void> {
  if (mode === "echo") {
    // The same datagram sockets the agent's DNS server uses (unstable `net`, on in deno.json).
    const conn = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
    console.log(JSON.stringify({ port: (conn.addr as Deno.NetAddr).port }));
    // One receive buffer, as the agent's DNS server has (the runtime's default is 64 KB a datagram).
    const buffer = new Uint8Array(65_507);
    for (;;) {
      const [message, peer] = await conn.receive(buffer);
      // Its own copy: the send may run after the next datagram overwrote the buffer.
      conn.send(message.slice(), peer).catch(() => {});
    }
  } else if (mode === "dns") {
    const zone = new DnsZone({ domain: "ironmesh", ttlSeconds: 5, namespace: "default" });
    const instances = [];
    for (let s = 0; s < SERVICES; s++) {
      for (let i = 0; i < INSTANCES; i++) {
        instances.push({
          namespace: "default",
          service: `svc${s}`,
          address: `10.${s}.0.${i + 1}`,
          port: 8080,
          labels: {},
        });
      }
    }
    zone.update(instances, [], []);
    const server = await startDnsServer({
      listen: { host: "127.0.0.1", port: 0 },
      responder: new DnsResponder(zone, { forward: false }),
      log: silentLogger,
    });
    console.log(JSON.stringify({ port: server.address.port }));
  } else {
    console.error("Usage: dns_server.ts dns|echo");
    Deno.exit(2);
  }
}
