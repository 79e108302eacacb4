/** The proxy routes: connected xDS proxies, what they were sent, and which policies shape them. */
import { z } from "zod";
import { NotFoundError } from "../core/errors.ts";
import { POLICY_KINDS } from "../core/policy/model.ts";
import { proxyStatusSchema } from "../core/proxy_status.ts";
import type { ApiContext } from "./app.ts";
import { listOf, pathParam, resource } from "./operation.ts";

/** A service, by namespace and name. */
export const serviceRefSchema = z.object({
  namespace: z.string(),
  service: z.string(),
}).describe("A service, by namespace and name");

/** One policy that applies to a proxy, and why. */
export const appliedPolicySchema = z.object({
  kind: z.enum(POLICY_KINDS),
  namespace: z.string(),
  name: z.string(),
  revision: z.number().int(),
  direction: z.enum(["outbound", "inbound", "mesh"]).describe(
    "`outbound`: shapes traffic the proxy sends; `inbound`: guards traffic it receives; `mesh`: MeshConfig",
  ),
  service: z.string().describe(
    'The service it applies through, `<name>.<namespace>`; `""` for MeshConfig',
  ),
  reason: z.string().describe("Why it applies, in words"),
}).describe("One policy that applies to a proxy, and why");

/** One part of a policy a proxyless proxy does not honour as written. */
export const proxylessGapSchema = z.object({
  kind: z.enum(POLICY_KINDS),
  namespace: z.string(),
  name: z.string(),
  field: z.string().describe('A JSON pointer into the policy\'s spec; `""` for the whole policy'),
  effect: z.string().describe("What happens instead"),
}).describe("A part of a policy a proxyless gRPC proxy does not honour as written");

const proxyPoliciesSchema = z.object({
  id: z.string().describe("The stream id when connected, else the node name"),
  node: z.string(),
  kind: z.enum(["sidecar", "proxyless"]),
  outbound: z.array(serviceRefSchema).describe(
    "Services it sends to: a sidecar's upstreams; for proxyless clients, every service with a gRPC or HTTP/2 port",
  ),
  inbound: z.array(serviceRefSchema).describe(
    "Services of the instances behind a sidecar; for proxyless, the gRPC services of its node",
  ),
  policies: z.array(appliedPolicySchema).describe(
    "MeshConfig first, then outbound services, then inbound ones",
  ),
  notHonoured: z.array(proxylessGapSchema).optional().describe(
    "Proxyless only: the parts of those policies gRPC does not apply as written",
  ),
}).describe("Which policies shape a proxy's configuration, and why");

const configDumpSchema = z.object({
  id: z.string(),
  resources: z.record(z.string(), z.array(z.record(z.string(), z.unknown()))).describe(
    "What was last sent, by type URL, in Envoy's JSON form",
  ),
}).describe("What was last sent to one proxy");

const proxyList = listOf(proxyStatusSchema, "connected proxies");

/** The proxy routes. */
export const PROXIES = resource({
  prefix: "/v1/proxies",
  responses: {
    ProxyStatus: proxyStatusSchema,
    ProxyList: proxyList,
    ConfigDump: configDumpSchema,
    ServiceRef: serviceRefSchema,
    AppliedPolicy: appliedPolicySchema,
    ProxylessGap: proxylessGapSchema,
    ProxyPolicies: proxyPoliciesSchema,
  },
  operations: {
    listProxies: {
      method: "get",
      path: "",
      tag: "xDS",
      summary: "Connected proxies and their sync state (like istioctl proxy-status)",
      access: "read",
      replies: [{ status: 200, description: "Every connected proxy", body: proxyList }],
    },
    getConfigDump: {
      method: "get",
      path: "/{id}/config_dump",
      tag: "xDS",
      summary: "What was last sent to one proxy",
      access: "read",
      params: [{
        ...pathParam("id", z.string(), "Proxy stream id from /v1/proxies"),
        unchecked: true,
      }],
      replies: [{ status: 200, description: "The resources, by type", body: configDumpSchema }],
      errors: { 404: "No such connected proxy" },
    },
    explainProxy: {
      method: "get",
      path: "/{id}/policies",
      tag: "Policies",
      summary: "Which policies apply to a proxy, and why (ironmesh explain)",
      description:
        "Works for a connected proxy (by stream id) and for a registered node's sidecar (by node name), connected or not. Uses the same matching as the xDS generators, as of the last push.",
      access: "read",
      params: [{
        ...pathParam(
          "id",
          z.string(),
          "A proxy stream id from /v1/proxies, or a node name (its sidecar)",
        ),
        unchecked: true,
      }],
      replies: [{
        status: 200,
        description: "The proxy's services and the policies that apply",
        body: proxyPoliciesSchema,
      }],
      errors: { 404: "Neither a connected proxy nor a registered node" },
    },
  },
});

/** The sub-app of {@link PROXIES}. */
export function proxiesApp({ deps, resourceApp }: ApiContext) {
  return resourceApp(PROXIES, {
    listProxies: (c) => {
      const items = deps.proxies().sort((a, b) => a.id.localeCompare(b.id));
      return c.json({ items, next: null });
    },
    getConfigDump: (c) => {
      const id = c.req.param("id")!;
      const dump = deps.configDump(id);
      if (!dump) throw new NotFoundError(`Proxy "${id}" is not connected`);
      return c.json({ id, resources: dump });
    },
    explainProxy: async (c) => {
      const id = c.req.param("id")!;
      const explained = await deps.explainProxy(id);
      if (!explained) {
        throw new NotFoundError(`"${id}" is neither a connected proxy nor a registered node`);
      }
      return c.json(explained);
    },
  });
}
