/**
 * The mesh the xDS bench (`xds.ts`) builds and reads over the REST API: S
 * services of two instances each on 20-instance nodes, and the server's view
 * of its proxies.
 *
 * @module
 */
import type { XdsServer } from "./xds_server.ts";

export const INSTANCES_PER_SERVICE = 2;
export const INSTANCES_PER_NODE = 20;
export const NAMESPACE = "default";

export async function api(server: XdsServer, method: string, path: string, body?: unknown) {
  const res = await fetch(`http://${server.http}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${server.adminToken}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path} answered ${res.status}: ${text.slice(0, 500)}`);
  return text ? JSON.parse(text) : null;
}

/** Node n holds instances n*20 … n*20+19; instance j serves svc-(j mod S), so a service's two
 * instances sit on different nodes (S >= 20). */
export function nodeName(n: number): string {
  return `xds-bench-${String(n).padStart(4, "0")}`;
}
export function nodeAddress(n: number): string {
  return `10.${64 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
}
export function registration(n: number, total: number, services: number) {
  const instances = [];
  for (let j = n * INSTANCES_PER_NODE; j < Math.min(total, (n + 1) * INSTANCES_PER_NODE); j++) {
    instances.push({
      id: `i${j}`,
      namespace: NAMESPACE,
      service: `svc-${j % services}`,
      port: 9000,
      protocol: "grpc",
      check: "passing",
    });
  }
  return {
    hostname: `${nodeName(n)}.bench`,
    addresses: [nodeAddress(n)],
    agentVersion: "xds-bench",
    heartbeatInterval: "10m",
    instances,
  };
}

export async function populate(
  server: XdsServer,
  services: number,
): Promise<{ ms: number; nodes: number }> {
  const total = services * INSTANCES_PER_SERVICE;
  const nodes = Math.ceil(total / INSTANCES_PER_NODE);
  const start = performance.now();
  const batch = Math.max(1, Math.ceil(nodes / 4));
  for (let first = 0; first < nodes; first += batch) {
    const list = Array.from({ length: Math.min(batch, nodes - first) }, (_, i) => first + i);
    // Up to 8 registrations in flight within a batch.
    let next = 0;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (next < list.length) {
        const n = list[next++]!;
        await api(
          server,
          "PUT",
          `/v1/nodes/${nodeName(n)}/registration`,
          registration(n, total, services),
        );
      }
    }));
  }
  return { ms: performance.now() - start, nodes };
}

/** The `c`-th of up to S distinct services, spread over 0 … S-1 (a stride coprime to S). */
export function spreadService(c: number, offset: number, S: number): number {
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  let stride = 97;
  while (gcd(stride, S) !== 1) stride++;
  return (c * stride + offset) % S;
}

export interface ProxyStatusLite {
  kind: string;
  types: { inSync: boolean }[];
}

export async function proxiesInSync(
  server: XdsServer,
): Promise<{ streams: number; inSync: number }> {
  const body = await api(server, "GET", "/v1/proxies");
  const items = (Array.isArray(body) ? body : body.items) as ProxyStatusLite[];
  const inSync = items.filter((p) => p.types.length === 4 && p.types.every((t) => t.inSync)).length;
  return { streams: items.length, inSync };
}
