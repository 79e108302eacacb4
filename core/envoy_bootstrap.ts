/**
 * The bootstrap of the host's Envoy sidecar, built here with the rest of the
 * mesh's Envoy configuration so that one place owns Envoy documents; the
 * agent only writes it to disk and supervises Envoy (`agent/envoy.ts`).
 */
import type { HostPort } from "./address.ts";
import type { Labels } from "./labels.ts";
import { MAX_RE2_PROGRAM_SIZE } from "./policy/re2_program_size.ts";
import { typeUrl } from "./xds_type_urls.ts";

/** Envoy's admin interface: loopback only, the port Istio's sidecars use. */
export const ENVOY_ADMIN = { host: "127.0.0.1", port: 15000 } as const;
/** Name of the static cluster that leads to the agent's local xDS endpoint. */
export const XDS_CLUSTER = "xds";

/** What the bootstrap depends on. */
export interface BootstrapParams {
  /** The node name; Envoy's node id and cluster. */
  node: string;
  /** The node's labels; `region` and `zone` become Envoy's locality. */
  labels: Labels;
  /** The agent's local xDS endpoint (the bound address). */
  xds: HostPort;
}

/**
 * The Envoy bootstrap (`envoy.config.bootstrap.v3.Bootstrap`, proto JSON
 * with snake_case names): node identity and locality, ADS for listeners and
 * clusters (the rest follows through ADS), a static `xds` cluster to the
 * local xDS endpoint over HTTP/2 without TLS, the admin interface on
 * 127.0.0.1:15000, and the runtime's regex size limit. Pure: the same input gives the same document.
 */
export function envoyBootstrap(params: BootstrapParams): Record<string, unknown> {
  const locality: Record<string, string> = {};
  if (params.labels.region) locality.region = params.labels.region;
  if (params.labels.zone) locality.zone = params.labels.zone;
  const socketAddress = (a: { host: string; port: number }) => ({
    socket_address: { address: a.host === "localhost" ? "127.0.0.1" : a.host, port_value: a.port },
  });
  return {
    node: {
      id: params.node,
      cluster: params.node,
      metadata: { IRONMESH_PROXY: "sidecar" },
      locality,
    },
    dynamic_resources: {
      ads_config: {
        api_type: "GRPC",
        transport_api_version: "V3",
        grpc_services: [{ envoy_grpc: { cluster_name: XDS_CLUSTER } }],
        set_node_on_first_message_only: true,
      },
      lds_config: { ads: {}, resource_api_version: "V3" },
      cds_config: { ads: {}, resource_api_version: "V3" },
    },
    static_resources: {
      clusters: [{
        name: XDS_CLUSTER,
        type: "STATIC",
        connect_timeout: "1s",
        load_assignment: {
          cluster_name: XDS_CLUSTER,
          endpoints: [{
            lb_endpoints: [{ endpoint: { address: socketAddress(params.xds) } }],
          }],
        },
        typed_extension_protocol_options: {
          "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": typeUrl("envoy.extensions.upstreams.http.v3.HttpProtocolOptions"),
            explicit_http_config: { http2_protocol_options: {} },
          },
        },
      }],
    },
    admin: { address: socketAddress(ENVOY_ADMIN) },
    // Envoy refuses a safe_regex whose RE2 program is larger than this runtime key
    // (default 100: `[a-z]{100}` NACKs its whole route table); Istio's bootstrap sets
    // 32768, and policy validation refuses what would not fit (core/policy/re2.ts).
    // The admin layer keeps `/runtime_modify` working for an operator.
    layered_runtime: {
      layers: [
        {
          name: "global config",
          static_layer: { "re2.max_program_size.error_level": MAX_RE2_PROGRAM_SIZE },
        },
        { name: "admin", admin_layer: {} },
      ],
    },
  };
}
