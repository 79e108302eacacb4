/**
 * The names of generated resources. They follow Istio's scheme so that
 * operators who read `config_dump` or Envoy stats elsewhere recognise them:
 *
 * | resource | name |
 * | --- | --- |
 * | sidecar inbound listener, and its route configuration (RDS) | `inbound\|<inboundPort>` |
 * | sidecar inbound cluster (STATIC, 127.0.0.1) | `inbound\|<appPort>` |
 * | sidecar outbound listener (127.0.0.1) | `outbound\|<localPort>` |
 * | outbound cluster and its EDS resource | `outbound\|<port>\|<subset>\|<name>.<namespace>` (subset `""`: the whole port) |
 * | outbound route configuration | `<name>.<namespace>:<port>` |
 * | proxyless listener | `<name>.<namespace>`, and `<name>` in the client's own namespace |
 * | secrets | `default` (workload certificate, served by the agent), `ROOTCA` |
 *
 * Names are scoped to one proxy: `outbound|9001` is a different listener on
 * every host, and a sidecar's `outbound|…` cluster (mTLS to the peer's
 * sidecar) differs from a proxyless client's (plaintext to the app port).
 * Cache resources per proxy, never by name alone.
 */

// The secret names are shared with the agent, which serves `default` itself.
export { ROOT_CA_SECRET, WORKLOAD_CERT_SECRET } from "../../core/sds_names.ts";

/** The host part of a service's names: `<name>.<namespace>`. */
export function serviceHost(name: string, namespace: string): string {
  return `${name}.${namespace}`;
}

/** `inbound|<inboundPort>`: the mTLS listener peers connect to. */
export function inboundListenerName(inboundPort: number): string {
  return `inbound|${inboundPort}`;
}

/**
 * `inbound|<inboundPort>`: the routes of an HTTP inbound listener, over RDS
 * so that its filter chains share one set of rate limit buckets.
 */
export function inboundRouteConfigName(inboundPort: number): string {
  return `inbound|${inboundPort}`;
}

/** `inbound|<appPort>`: the static cluster that reaches the local app. */
export function inboundClusterName(appPort: number): string {
  return `inbound|${appPort}`;
}

/** `outbound|<localPort>`: the loopback listener the local app dials for one upstream. */
export function outboundListenerName(localPort: number): string {
  return `outbound|${localPort}`;
}

/**
 * `outbound|<port>|<subset>|<name>.<namespace>`: a service port's cluster,
 * also the `service_name` of its EDS resource.
 */
export function outboundClusterName(
  name: string,
  namespace: string,
  port: number,
  subset = "",
): string {
  return `outbound|${port}|${subset}|${serviceHost(name, namespace)}`;
}

/** `<name>.<namespace>:<port>`: the route configuration of a service port. */
export function routeConfigName(name: string, namespace: string, port: number): string {
  return `${serviceHost(name, namespace)}:${port}`;
}
