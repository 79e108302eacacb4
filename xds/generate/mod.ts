/**
 * Pure xDS generation: from one consistent view of the registry to the Envoy
 * resources of one proxy (an Envoy sidecar on a VM, or a proxyless gRPC
 * client). No I/O, no clock, no globals: the same input gives the same bytes.
 *
 * ```ts
 * const push = buildPushContext(view);          // once per push
 * const snapshot = generateProxy(push, request); // once per proxy
 * const problems = consistent(snapshot);          // [] before serving it
 * ```
 */
export type {
  InboundEntry,
  JsonObject,
  JsonValue,
  Locality,
  MeshEndpoint,
  MeshService,
  MeshServicePort,
  MeshView,
  Protocol,
  ProxylessRequest,
  ProxyRequest,
  ProxySnapshot,
  Resource,
  ResourceKind,
  SidecarRequest,
  UpstreamEntry,
} from "./model.ts";
export { RESOURCE_KINDS } from "./model.ts";
export {
  consistent,
  type GenerateOptions,
  generateProxy,
  TYPE_URLS,
  typeVersion,
} from "./generate.ts";
export { buildPushContext, type PushContext } from "./push_context.ts";
export { PROXYLESS_GENERATORS, SIDECAR_GENERATORS } from "./generators.ts";
export * from "./names.ts";
export {
  apiListener,
  clusterLoadAssignment,
  edsCluster,
  inboundCluster,
  inboundListener,
  outboundListener,
  rootCaSecret,
  routeConfiguration,
} from "./resources.ts";
export { canonicalJson, contentVersion } from "./canonical.ts";
export { ruleProblems } from "./envoy_rules.ts";
