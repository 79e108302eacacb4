/**
 * The type URLs of the xDS resources, written once: the server's ADS streams
 * and codec, the generators, the agent's relay and its SDS answer all import
 * them from here (`core/`, so both `xds/` and `agent/` may).
 *
 * @module
 */

/** The prefix Envoy and gRPC use for every type URL. */
export const TYPE_URL_PREFIX = "type.googleapis.com/";

/** `type.googleapis.com/<name>`: the type URL of a message type. */
export function typeUrl(typeName: string): string {
  return TYPE_URL_PREFIX + typeName;
}

/** Listener Discovery Service resources (`envoy.config.listener.v3.Listener`). */
export const LDS_TYPE_URL = typeUrl("envoy.config.listener.v3.Listener");
/** Route Discovery Service resources (`envoy.config.route.v3.RouteConfiguration`). */
export const RDS_TYPE_URL = typeUrl("envoy.config.route.v3.RouteConfiguration");
/** Cluster Discovery Service resources (`envoy.config.cluster.v3.Cluster`). */
export const CDS_TYPE_URL = typeUrl("envoy.config.cluster.v3.Cluster");
/** Endpoint Discovery Service resources (`envoy.config.endpoint.v3.ClusterLoadAssignment`). */
export const EDS_TYPE_URL = typeUrl("envoy.config.endpoint.v3.ClusterLoadAssignment");
/** Secret Discovery Service resources (`envoy.extensions.transport_sockets.tls.v3.Secret`). */
export const SDS_TYPE_URL = typeUrl("envoy.extensions.transport_sockets.tls.v3.Secret");
/** A resource wrapped in `envoy.service.discovery.v3.Resource` (for TTLs). */
export const RESOURCE_WRAPPER_TYPE_URL = typeUrl("envoy.service.discovery.v3.Resource");
