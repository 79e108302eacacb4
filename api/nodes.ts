/** The node routes: registration and heartbeats from agents, drains and removal by operators. */
import { z } from "zod";
import { formatDuration } from "../core/duration.ts";
import { NotFoundError } from "../core/errors.ts";
import {
  drainPatchSchema,
  heartbeatSchema,
  instanceRegistrationSchema,
  instanceSchema,
  meshNodeSchema,
  nodeRegistrationSchema,
} from "../core/model.ts";
import { nodeName } from "../core/names.ts";
import type { ApiContext } from "./app.ts";
import { listHandler } from "./list.ts";
import { IF_MATCH, listOf, listQuery, pathParam, type Reply, resource } from "./operation.ts";
import { etag, pathName, readBody, readPreconditions } from "./request.ts";

/** What a registration answers. */
export const registrationResultSchema = z.object({
  node: meshNodeSchema,
  instances: z.array(instanceSchema),
}).describe("The node and its instances as registered");

const heartbeatResultSchema = z.object({
  ttl: z.string().describe("The node's TTL as a duration, e.g. `15s`"),
  ttlMs: z.number().int(),
  revision: z.number().int().describe("The registry revision after this heartbeat"),
  ca: z.object({
    bundleFingerprint: z.string().describe("The bundle the agent should hold"),
    renew: z.boolean().describe("True when the agent should renew its certificate now"),
  }).exactOptional().describe("Only for callers over mutual TLS: hints about the trust bundle"),
}).describe("What a heartbeat answers");

const nodeList = listOf(meshNodeSchema, "nodes");
/** The answer of a read or a write of one node. */
const ONE: Reply[] = [{
  status: 200,
  description: "The node",
  body: meshNodeSchema,
  headers: ["ETag"],
}];
const NAME = pathParam(
  "name",
  nodeName,
  "Node name: a DNS-1123 subdomain of at most 64 characters",
);

/** The node routes. */
export const NODES = resource({
  prefix: "/v1/nodes",
  responses: {
    Node: meshNodeSchema,
    NodeList: nodeList,
    RegistrationResult: registrationResultSchema,
    HeartbeatResult: heartbeatResultSchema,
  },
  requests: {
    NodeRegistration: nodeRegistrationSchema,
    InstanceRegistration: instanceRegistrationSchema,
    Heartbeat: heartbeatSchema,
    DrainPatch: drainPatchSchema,
  },
  operations: {
    listNodes: {
      method: "get",
      path: "",
      tag: "Nodes",
      summary: "List nodes",
      access: "read",
      params: listQuery("status"),
      replies: [{
        status: 200,
        description: "A page of nodes",
        body: nodeList,
        headers: ["X-Ironmesh-Index"],
      }],
    },
    getNode: {
      method: "get",
      path: "/{name}",
      tag: "Nodes",
      summary: "Get a node",
      access: "read",
      params: [NAME],
      replies: ONE,
      errors: { 404: "The node is not registered" },
    },
    drainNode: {
      method: "patch",
      path: "/{name}",
      tag: "Nodes",
      summary: "Drain or undrain a node",
      description:
        "A drained node's instances stop receiving traffic. The drain survives re-registration.",
      access: "write",
      params: [NAME, IF_MATCH],
      body: drainPatchSchema,
      replies: ONE,
      errors: { 404: "The node is not registered" },
    },
    deleteNode: {
      method: "delete",
      path: "/{name}",
      tag: "Nodes",
      summary: "Remove a node and its instances",
      description:
        "An operator removing a node decommissions it: its certificates are revoked, also when the node enrolled but is not registered (never registered, left, or reaped). An agent leaving keeps its identity for its return.",
      access: "agent",
      params: [NAME, IF_MATCH],
      replies: [{ status: 204, description: "Removed, or decommissioned" }],
      errors: {
        403: "The role may not do this, or the node belongs to another agent token",
        404:
          "The node is not registered and (for an operator) holds no unexpired certificate either",
      },
    },
    registerNode: {
      method: "put",
      path: "/{name}/registration",
      tag: "Nodes",
      summary: "Register a node with all its instances",
      description:
        "The node's whole state, idempotent: instances left out are removed, the same registration twice changes nothing. Counts as a heartbeat.",
      access: "agent",
      params: [NAME],
      body: nodeRegistrationSchema,
      replies: [{
        status: 200,
        description: "The node and its instances",
        body: registrationResultSchema,
        headers: ["ETag"],
      }],
      errors: { 403: "The role may not do this, or the node belongs to another agent token" },
    },
    heartbeat: {
      method: "post",
      path: "/{name}/heartbeat",
      tag: "Nodes",
      summary: "Heartbeat with check statuses",
      access: "agent",
      params: [NAME],
      body: heartbeatSchema,
      replies: [{ status: 200, description: "The node's TTL", body: heartbeatResultSchema }],
      errors: {
        403: "The role may not do this, or the node belongs to another agent token",
        404: "The node is not registered: register it first",
        409: "A check names an instance the node did not register: register again",
      },
    },
  },
});

/** The heartbeat's route pattern, logged at debug like reads: it is the bulk of the traffic. */
export const HEARTBEAT_ROUTE = "/v1/nodes/:name/heartbeat";

/** The sub-app of {@link NODES}. */
export function nodesApp({ deps, resourceApp }: ApiContext) {
  const { registry, identity, metrics } = deps;
  const ops = NODES.operations;
  // Labelled children, cached: looking labels up per heartbeat costs at 20,000/s.
  const beats = {
    changed: metrics.heartbeats.labels({ result: "changed" }),
    unchanged: metrics.heartbeats.labels({ result: "unchanged" }),
    rejected: metrics.heartbeats.labels({ result: "rejected" }),
  };
  return resourceApp(NODES, {
    listNodes: listHandler(ops.listNodes, {
      feed: registry.feed,
      page: (filter) => registry.listNodes(filter),
    }),
    getNode: async (c) => {
      const node = await registry.getNode(pathName(c, "name", "node"));
      c.header("etag", etag(node.revision));
      return c.json(node);
    },
    drainNode: async (c) => {
      const name = pathName(c, "name", "node");
      const pre = readPreconditions(c);
      const body = await readBody(c, ops.drainNode.body, "node patch");
      const node = await registry.drainNode(name, body.draining, pre);
      c.header("etag", etag(node.revision));
      return c.json(node);
    },
    deleteNode: async (c) => {
      const principal = c.get("principal");
      const name = pathName(c, "name", "node");
      if (principal.role === "agent") {
        // An agent leaving keeps its identity for its return.
        await registry.deregister(name, principal, readPreconditions(c));
        return c.body(null, 204);
      }
      // An operator removing a node decommissions it: its certificates are revoked even when the
      // node already left the registry (deregistered or reaped), so its identity cannot come back.
      let registered = true;
      try {
        await registry.deregister(name, principal, readPreconditions(c));
      } catch (error) {
        if (!(error instanceof NotFoundError)) throw error;
        registered = false;
      }
      const revoked = await identity.decommission(name);
      if (!registered && revoked.length === 0) {
        throw new NotFoundError(`Node "${name}" is not known`);
      }
      return c.body(null, 204);
    },
    registerNode: async (c) => {
      const principal = c.get("principal");
      const name = pathName(c, "name", "node");
      const body = await readBody(c, ops.registerNode.body, "registration");
      const result = await registry.register(name, body, principal);
      c.header("etag", etag(result.node.revision));
      return c.json(result);
    },
    heartbeat: async (c) => {
      const principal = c.get("principal");
      try {
        const name = pathName(c, "name", "node");
        const body = await readBody(c, ops.heartbeat.body, "heartbeat");
        const result = await registry.heartbeat(name, body, principal);
        // Reported on every heartbeat, so a restarted server knows at once who holds which bundle.
        if (principal.certificate && body.bundleFingerprint) {
          identity.bundleFetched(principal.certificate.node, body.bundleFingerprint);
        }
        (result.changed ? beats.changed : beats.unchanged).inc();
        return c.json({
          ttl: formatDuration(result.ttlMs),
          ttlMs: result.ttlMs,
          revision: registry.feed.revision,
          ...(principal.certificate ? { ca: identity.hints(principal.certificate) } : {}),
        });
      } catch (error) {
        beats.rejected.inc();
        throw error;
      }
    },
  }, {
    // A heartbeat refused for its token's role is a rejected heartbeat too.
    refused: (_, op) => {
      if (op.operationId === "heartbeat") beats.rejected.inc();
    },
  });
}
