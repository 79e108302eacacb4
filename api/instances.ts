/** The instance routes: endpoints of services on nodes, and their drains. */
import { z } from "zod";
import { drainPatchSchema, instanceSchema } from "../core/model.ts";
import type { ApiContext } from "./app.ts";
import { listHandler } from "./list.ts";
import { IF_MATCH, listOf, listQuery, pathParam, type Reply, resource } from "./operation.ts";
import { etag, pathInstanceId, readBody, readPreconditions } from "./request.ts";

const instanceList = listOf(instanceSchema, "instances");
/** The answer of a read or a write of one instance. */
const ONE: Reply[] = [{
  status: 200,
  description: "The instance",
  body: instanceSchema,
  headers: ["ETag"],
}];
const ID = pathParam("id", z.string(), "Instance id `<local-id>@<node>`, e.g. `web@vm-1`");

/** The instance routes. */
export const INSTANCES = resource({
  prefix: "/v1/instances",
  responses: { Instance: instanceSchema, InstanceList: instanceList },
  operations: {
    listInstances: {
      method: "get",
      path: "",
      tag: "Instances",
      summary: "List instances",
      access: "read",
      params: listQuery("namespace", "service", "node", "health"),
      replies: [{
        status: 200,
        description: "A page of instances",
        body: instanceList,
        headers: ["X-Ironmesh-Index"],
      }],
    },
    getInstance: {
      method: "get",
      path: "/{id}",
      tag: "Instances",
      summary: "Get an instance",
      access: "read",
      params: [ID],
      replies: ONE,
      errors: { 404: "The instance does not exist" },
    },
    drainInstance: {
      method: "patch",
      path: "/{id}",
      tag: "Instances",
      summary: "Drain or undrain an instance",
      access: "write",
      params: [ID, IF_MATCH],
      body: drainPatchSchema,
      replies: ONE,
      errors: { 404: "The instance does not exist" },
    },
  },
});

/** The sub-app of {@link INSTANCES}. */
export function instancesApp({ deps, resourceApp }: ApiContext) {
  const { registry } = deps;
  const ops = INSTANCES.operations;
  return resourceApp(INSTANCES, {
    listInstances: listHandler(ops.listInstances, {
      feed: registry.feed,
      page: (filter) => registry.listInstances(filter),
    }),
    getInstance: async (c) => {
      const instance = await registry.getInstance(pathInstanceId(c));
      c.header("etag", etag(instance.revision));
      return c.json(instance);
    },
    drainInstance: async (c) => {
      const id = pathInstanceId(c);
      const pre = readPreconditions(c);
      const body = await readBody(c, ops.drainInstance.body, "instance patch");
      const instance = await registry.drainInstance(id, body.draining, pre);
      c.header("etag", etag(instance.revision));
      return c.json(instance);
    },
  });
}
