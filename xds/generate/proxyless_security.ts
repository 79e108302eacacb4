/**
 * Mesh mTLS and AuthorizationPolicy for proxyless gRPC, in the terms gRPC's
 * xDS implementations accept (gRFC A29 security, A36 server-side xDS, A41
 * RBAC; checked against `@grpc/grpc-js-xds` 1.14):
 *
 * - **Server Listeners.** A gRPC server binding `IP:port` asks for the
 *   Listener its bootstrap's template names (`core/grpc_bootstrap.ts`).
 *   Every instance registered with protocol `grpc` gets one for its address
 *   and one each for `0.0.0.0` and `[::]` on its port: one filter chain whose
 *   HttpConnectionManager carries the RBAC filters the sidecar's inbound
 *   listener gets (`authorization.ts`, the same compilation) and the router,
 *   with an inline route table of one non-forwarding route (a server's
 *   routes must not forward). In STRICT mode the chain requires a client
 *   certificate that chains to the bundle, both from the bootstrap's
 *   certificate provider.
 * - **Client clusters** carry an UpstreamTlsContext naming the same
 *   provider and the destination's SPIFFE IDs, so `XdsChannelCredentials`
 *   speaks mesh mTLS.
 *
 * Where we differ from the sidecar, and why:
 *
 * - **PERMISSIVE is plaintext.** gRPC cannot tell TLS from plaintext on a
 *   port (A36: a filter chain match other than `transport_protocol:
 *   raw_buffer` never matches), so there is no TLS chain beside a
 *   plaintext one as the sidecar has. In PERMISSIVE the server's chain has
 *   no TLS (`XdsServerCredentials` then use the app's fallback
 *   credentials) and clusters carry none (`XdsChannelCredentials` fall
 *   back too), as Istio's proxyless gRPC does.
 * - **Only clients that can, get TLS.** gRPC refuses a Cluster or Listener
 *   naming a certificate provider its bootstrap lacks, so TLS contexts go
 *   only to clients whose node says they have ours
 *   (`ProxylessRequest.mtls`); in STRICT mode the others get no server
 *   Listener at all (their servers never serve: closed, not open) and
 *   plaintext clusters, as before.
 * - **An RBAC filter is always there.** grpc-js-xds 1.14 knows the RBAC
 *   filter only with `GRPC_XDS_EXPERIMENTAL_RBAC=true`; without it, it
 *   refuses a Listener that has one. A server Listener therefore always
 *   carries one (a DENY filter with no policy denies nothing), so a server
 *   that cannot enforce policies never starts serving, rather than serving
 *   until the first policy is written and then keeping its last Listener.
 * - **No fault filter on servers.** grpc-js-xds injects faults on the
 *   client side only, and refuses a server Listener with a fault filter;
 *   TrafficRoute faults reach proxyless clients through their own
 *   listeners (`resources.ts`, `apiListener`).
 * - **The client's SAN is not checked by the server's TLS.** A29 leaves
 *   `match_subject_alt_names` of a server's validation context unused; a
 *   certificate chaining to the mesh's bundle is a mesh identity, and which
 *   one may call is the RBAC filter's to say.
 */
import { GRPC_CERTIFICATE_PROVIDER, serverListenerName } from "../../core/grpc_bootstrap.ts";
import { rbacFilters } from "./authorization.ts";
import { anyOf, httpConnectionManagerFilter, socketAddress, TYPE } from "./envoy.ts";
import type { InboundEntry, JsonObject, MeshEndpoint, MeshService, ProxyRequest } from "./model.ts";
import { inboundListenerName } from "./names.ts";
import { type PushContext, serviceKey, shared } from "./push_context.ts";

/** The bootstrap's certificate provider, as a TLS context names it. */
function provider(): JsonObject {
  return { instance_name: GRPC_CERTIFICATE_PROVIDER };
}

/**
 * Whether a proxyless client speaks mesh mTLS: the mesh is STRICT and its
 * bootstrap has our certificate provider.
 */
export function proxylessMtls(push: PushContext, request: ProxyRequest): boolean {
  return request.kind === "proxyless" && request.mtls === true &&
    push.mesh.mtls?.mode !== "PERMISSIVE";
}

/**
 * The client side: the workload certificate and the bundle from the
 * bootstrap's provider; the server must present one of `peerIdentities`
 * (never empty: an empty list would accept any mesh certificate). grpc-js
 * reads `match_subject_alt_names` (deprecated in Envoy for
 * `match_typed_subject_alt_names`, which it ignores) and refuses
 * `tls_params`.
 */
export function upstreamProviderTls(trustDomain: string, peerIdentities: readonly string[]) {
  const ids = peerIdentities.length > 0 ? peerIdentities : [`spiffe://${trustDomain}/no-endpoints`];
  return {
    name: "envoy.transport_sockets.tls",
    typed_config: anyOf(TYPE.upstreamTlsContext, {
      common_tls_context: {
        tls_certificate_provider_instance: provider(),
        validation_context: {
          ca_certificate_provider_instance: provider(),
          match_subject_alt_names: ids.map((id) => ({ exact: id })),
        },
      },
    }),
  };
}

/** The server side: a client certificate of the trust domain, required. */
function downstreamProviderTls(trustDomain: string): JsonObject {
  return {
    name: "envoy.transport_sockets.tls",
    typed_config: anyOf(TYPE.downstreamTlsContext, {
      common_tls_context: {
        tls_certificate_provider_instance: provider(),
        validation_context: {
          ca_certificate_provider_instance: provider(),
          // For Envoy's reading of the same Listener; gRPC leaves it to RBAC (module comment).
          match_typed_subject_alt_names: [{
            san_type: "URI",
            matcher: { prefix: `spiffe://${trustDomain}/` },
          }],
        },
      },
      require_client_certificate: true,
    }),
  };
}

/** A DENY filter with no policy: denies nothing, and makes RBAC support a condition of serving. */
const NO_POLICY_RBAC: JsonObject = {
  name: "envoy.filters.http.rbac.deny",
  typed_config: anyOf(TYPE.httpRbac, { rules: { action: "DENY" }, rules_stat_prefix: "deny_" }),
};

/** The filter chain of every server Listener of one service port. */
function serverChain(push: PushContext, entry: InboundEntry, permissive: boolean): JsonObject {
  const key = `proxyless server chain ${
    JSON.stringify([entry.namespace, entry.service, entry.appPort, permissive])
  }`;
  return shared(push, key, () => {
    const rbac = rbacFilters(push, entry, true);
    const routes = inboundListenerName(entry.appPort);
    // The stat prefix names the transport so that a change of the mesh's mTLS mode changes the
    // connection manager too: grpc-js-xds 1.14.1 ignores a new server Listener that differs
    // from the one it serves only in its TLS (its equivalence check of `transport_socket` is
    // inverted), and would keep requiring TLS after a switch to PERMISSIVE.
    const statPrefix = `inbound_${entry.appPort}${permissive ? "_plaintext" : ""}`;
    const hcm = httpConnectionManagerFilter(statPrefix, {
      inline: {
        name: routes,
        virtual_hosts: [{
          name: routes,
          domains: ["*"],
          routes: [{ match: { prefix: "/" }, non_forwarding_action: {} }],
        }],
      },
    }, { httpFilters: rbac.length > 0 ? rbac : [NO_POLICY_RBAC] });
    return {
      filters: [hcm],
      ...(permissive ? {} : { transport_socket: downstreamProviderTls(push.view.trustDomain) }),
    };
  });
}

/** The hosts a gRPC server may bind to serve `endpoint`: its address, and any address. */
function bindHosts(endpoint: MeshEndpoint): string[] {
  return [...new Set([endpoint.address, "0.0.0.0", "::"])];
}

/**
 * The server Listeners of every `grpc` instance of `services` (see the
 * module comment), whatever its health: a server that is not serving yet
 * is unhealthy until it has its Listener.
 */
export function serverListeners(
  push: PushContext,
  services: readonly MeshService[],
  request: ProxyRequest,
): JsonObject[] {
  const permissive = push.mesh.mtls?.mode === "PERMISSIVE";
  if (!permissive && !proxylessMtls(push, request)) return [];
  const out: JsonObject[] = [];
  for (const service of services) {
    const endpoints = push.endpointsByService.get(serviceKey(service.name, service.namespace)) ??
      [];
    for (const e of endpoints) {
      if (e.protocol !== "grpc") continue;
      const entry: InboundEntry = {
        id: `${e.node}/${e.port}`,
        service: service.name,
        namespace: service.namespace,
        inboundPort: e.port,
        appPort: e.port,
        protocol: "grpc",
      };
      for (const host of bindHosts(e)) {
        const name = serverListenerName(e.node, { host, port: e.port });
        const key = `proxyless server listener ${
          JSON.stringify([name, service.namespace, service.name, permissive])
        }`;
        out.push(shared(push, key, () => ({
          name,
          address: socketAddress(host, e.port),
          traffic_direction: "INBOUND",
          filter_chains: [serverChain(push, entry, permissive)],
        })));
      }
    }
  }
  return out;
}
