/**
 * Fixtures shared by the ADS tests (state of the world and delta): hand-built
 * snapshots with minimal bodies the strict codec accepts, and a fixed peer.
 */
import type { ProxyPeer } from "./ads_server.ts";
import { contentVersion } from "./generate/canonical.ts";
import { TYPE_URLS } from "./generate/generate.ts";
import type { JsonObject, ProxySnapshot, Resource, ResourceKind } from "./generate/model.ts";

export const LDS = TYPE_URLS.listeners;
export const RDS = TYPE_URLS.routes;
export const CDS = TYPE_URLS.clusters;
export const EDS = TYPE_URLS.endpoints;
export const PEER: ProxyPeer = {
  node: "vm-1",
  identity: "spiffe://ironmesh.test/ns/default/sa/web",
  kind: "sidecar",
};

export function resource(kind: ResourceKind, name: string, body: JsonObject): Resource {
  return { name, typeUrl: TYPE_URLS[kind], body, version: contentVersion(body) };
}

export function cluster(name: string, timeout = "1s"): Resource {
  return resource("clusters", name, {
    name,
    type: "EDS",
    connect_timeout: timeout,
    eds_cluster_config: { eds_config: { ads: {}, resource_api_version: "V3" } },
  });
}

export function endpoints(name: string, port = 8080): Resource {
  return resource("endpoints", name, {
    cluster_name: name,
    endpoints: [{
      lb_endpoints: [{
        endpoint: { address: { socket_address: { address: "10.0.0.1", port_value: port } } },
      }],
    }],
  });
}

export function listener(name: string, port: number): Resource {
  return resource("listeners", name, {
    name,
    address: { socket_address: { address: "0.0.0.0", port_value: port } },
  });
}

export function route(name: string, to: string): Resource {
  return resource("routes", name, {
    name,
    virtual_hosts: [{
      name: "all",
      domains: ["*"],
      routes: [{ match: { prefix: "/" }, route: { cluster: to } }],
    }],
  });
}

export function snapshot(parts: Partial<ProxySnapshot>): ProxySnapshot {
  const sorted = (list: Resource[] = []) => [...list].sort((a, b) => a.name < b.name ? -1 : 1);
  return {
    clusters: sorted(parts.clusters),
    endpoints: sorted(parts.endpoints),
    listeners: sorted(parts.listeners),
    routes: sorted(parts.routes),
    secrets: sorted(parts.secrets),
  };
}

export const BASE = snapshot({
  listeners: [listener("l1", 15001), listener("l2", 15002)],
  routes: [route("r1", "a"), route("r2", "b")],
  clusters: [cluster("a"), cluster("b")],
  endpoints: [endpoints("a"), endpoints("b")],
});
