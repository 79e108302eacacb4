/**
 * How a sidecar's HTTP connection managers, inbound and outbound, treat
 * requests before any filter or route sees them. Proxyless clients get none
 * of this: grpc-js-xds ignores these fields, and their paths are gRPC
 * method names.
 *
 * Path normalization (MeshConfig `pathNormalization`) comes first because
 * AuthorizationPolicy paths compile to RBAC `url_path` matches and route
 * paths to route matches: unnormalized, `/public/../admin`, `//admin` or
 * `/public/..%2Fadmin` pass a DENY on `/admin/*` or match an ALLOW on
 * `/public/*`, and an app that resolves them serves `/admin` (the
 * CVE-2019-9901 class). Envoy unescapes slashes first, then normalizes
 * (RFC 3986), then merges slashes, so every rule sees the path the app will.
 */
import {
  DEFAULT_ESCAPED_SLASHES,
  DEFAULT_PATH_NORMALIZATION,
  type ESCAPED_SLASH_ACTIONS,
  type MeshConfigSpec,
} from "../../core/policy/model.ts";
import type { JsonObject } from "./model.ts";

/** Envoy's `PathWithEscapedSlashesAction` for each of our `escapedSlashes` values. */
const ESCAPED_SLASH_ACTION: Readonly<Record<typeof ESCAPED_SLASH_ACTIONS[number], string>> = {
  REJECT: "REJECT_REQUEST",
  REDIRECT: "UNESCAPE_AND_REDIRECT",
  DECODE: "UNESCAPE_AND_FORWARD",
  KEEP: "KEEP_UNCHANGED",
};

/**
 * The HttpConnectionManager fields of MeshConfig's `pathNormalization`. Each
 * is written out, even `normalize_path: false`: left out, Envoy would fall
 * back on runtime defaults that its versions change.
 */
export function pathNormalizationFields(mesh: MeshConfigSpec): JsonObject {
  const normalization = mesh.pathNormalization?.normalization ?? DEFAULT_PATH_NORMALIZATION;
  const escaped = mesh.pathNormalization?.escapedSlashes ?? DEFAULT_ESCAPED_SLASHES;
  return {
    normalize_path: normalization !== "NONE",
    // A bool whose default is false: the wire leaves it out, and so does the canonical form.
    ...(normalization === "MERGE_SLASHES" ? { merge_slashes: true } : {}),
    path_with_escaped_slashes_action: ESCAPED_SLASH_ACTION[escaped],
  };
}

/** Options of {@link sidecarConnectionManager}. */
export interface SidecarConnectionManagerOptions {
  /**
   * Some route removes the response's `server` header. Envoy's
   * `server_header_transformation` (default OVERWRITE) writes `server:
   * envoy` when the response is encoded, after every route's
   * `response_headers_to_remove` ran, so the removal takes effect only with
   * PASS_THROUGH (HttpConnectionManager's `server_header_transformation`,
   * api/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto).
   * Default: false.
   */
  removesServerHeader?: boolean;
  /**
   * The listener serves a `grpc` port, whose calls may be streams that stay
   * open and quiet for long. Default: false.
   */
  grpc?: boolean;
}

/**
 * How long a gRPC connection may go without an answer to an HTTP/2 PING
 * before Envoy closes it: with the stream idle timeout off, this is what
 * ends streams whose peer vanished.
 */
const GRPC_KEEPALIVE = { interval: "60s", timeout: "20s" } as const;

/** The HttpConnectionManager fields of every sidecar connection manager, inbound and outbound. */
export function sidecarConnectionManager(
  mesh: MeshConfigSpec,
  options: SidecarConnectionManagerOptions = {},
): JsonObject {
  return {
    ...pathNormalizationFields(mesh),
    ...(options.removesServerHeader ? { server_header_transformation: "PASS_THROUGH" } : {}),
    // Envoy answers an Upgrade it was not configured for with 403 (upgrade_configs in the
    // HttpConnectionManager proto; Istio allows websocket on every HTTP connection manager).
    upgrade_configs: [{ upgrade_type: "websocket" }],
    // Envoy ends a stream after 5 minutes without a frame either way (stream_idle_timeout,
    // default 300s): a quiet server-streaming gRPC call (a watch) would be cut. gRPC ports turn
    // it off and find dead peers by HTTP/2 PINGs instead.
    ...(options.grpc
      ? {
        stream_idle_timeout: "0s",
        http2_protocol_options: { connection_keepalive: { ...GRPC_KEEPALIVE } },
      }
      : {}),
  };
}

/** True when some route of `routes` removes the response's `server` header. */
export function removesServerHeader(routes: readonly JsonObject[]): boolean {
  return routes.some((r) => {
    const removed = r["response_headers_to_remove"];
    return Array.isArray(removed) && removed.includes("server");
  });
}
