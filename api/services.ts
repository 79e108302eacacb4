/** The service routes: namespaces, and services with their ports. */
import { z } from "zod";
import { servicePortSchema, servicePutSchema, serviceSchema } from "../core/model.ts";
import { labelName } from "../core/names.ts";
import type { ApiContext } from "./app.ts";
import { listHandler } from "./list.ts";
import { IF_MATCH, IF_NONE_MATCH, listOf, listQuery, pathParam, resource } from "./operation.ts";
import { etag, pathName, readBody, readPreconditions, refuseQuery } from "./request.ts";

const namespaceSchema = z.object({
  name: z.string(),
  services: z.number().int().describe("Number of services in the namespace"),
}).describe("A namespace with its number of services");

/** A page of namespaces. */
export const namespaceList = listOf(namespaceSchema, "namespaces");
/** A page of services. */
export const serviceList = listOf(serviceSchema, "services");

const NAMESPACE = pathParam("namespace", labelName, "Namespace: a DNS-1123 label");
const NAME = pathParam("name", labelName, "Service name: a DNS-1123 label");

/** `GET /v1/namespaces`: its own path, but about services. */
export const NAMESPACES = resource({
  prefix: "/v1/namespaces",
  responses: { Namespace: namespaceSchema, NamespaceList: namespaceList },
  operations: {
    listNamespaces: {
      method: "get",
      path: "",
      tag: "Services",
      summary: "List namespaces",
      description: "Every namespace that has services, with their counts, in one page.",
      access: "read",
      replies: [{
        status: 200,
        description: "The namespaces",
        body: namespaceList,
        headers: ["X-Ironmesh-Index"],
      }],
    },
  },
});

/** The service routes. */
export const SERVICES = resource({
  prefix: "/v1/services",
  responses: { ServicePort: servicePortSchema, Service: serviceSchema, ServiceList: serviceList },
  requests: { ServicePut: servicePutSchema },
  operations: {
    listServices: {
      method: "get",
      path: "",
      tag: "Services",
      summary: "List services",
      access: "read",
      params: listQuery("namespace"),
      replies: [{
        status: 200,
        description: "A page of services",
        body: serviceList,
        headers: ["X-Ironmesh-Index"],
      }],
    },
    getService: {
      method: "get",
      path: "/{namespace}/{name}",
      tag: "Services",
      summary: "Get a service",
      access: "read",
      params: [NAMESPACE, NAME],
      replies: [{
        status: 200,
        description: "The service",
        body: serviceSchema,
        headers: ["ETag"],
      }],
      errors: { 404: "The service does not exist" },
    },
    putService: {
      method: "put",
      path: "/{namespace}/{name}",
      tag: "Services",
      summary: "Create or replace a service",
      description:
        "The service becomes `managedBy: api`. Ports that registered instances use are kept even when left out. An identical `PUT` changes nothing and adds no revision.",
      access: "write",
      params: [NAMESPACE, NAME, IF_MATCH, IF_NONE_MATCH],
      body: servicePutSchema,
      replies: [
        {
          status: 200,
          description: "Replaced (or unchanged)",
          body: serviceSchema,
          headers: ["ETag"],
        },
        { status: 201, description: "Created", body: serviceSchema, headers: ["ETag"] },
      ],
      errors: {
        409: "A port is declared with another protocol than a registered instance uses",
        422: "The body is invalid (e.g. a port declared twice), or a path parameter or header is",
      },
    },
    deleteService: {
      method: "delete",
      path: "/{namespace}/{name}",
      tag: "Services",
      summary: "Delete a service",
      access: "write",
      params: [NAMESPACE, NAME, IF_MATCH],
      replies: [{ status: 204, description: "Deleted" }],
      errors: {
        404: "The service does not exist",
        409: "The service still has instances: deregister them first",
      },
    },
  },
});

/** The sub-app of {@link NAMESPACES}. */
export function namespacesApp({ deps, resourceApp }: ApiContext) {
  const { registry } = deps;
  return resourceApp(NAMESPACES, {
    listNamespaces: async (c) => {
      // One page, no filters: a parameter here is a mistake to report, as on the other lists.
      refuseQuery(c);
      const items = await registry.namespaces();
      c.header("x-ironmesh-index", String(registry.feed.revision));
      return c.json({ items, next: null });
    },
  });
}

/** The sub-app of {@link SERVICES}. */
export function servicesApp({ deps, resourceApp }: ApiContext) {
  const { registry } = deps;
  const ops = SERVICES.operations;
  return resourceApp(SERVICES, {
    listServices: listHandler(ops.listServices, {
      feed: registry.feed,
      page: (filter) => registry.listServices(filter),
    }),
    getService: async (c) => {
      const service = await registry.getService(
        pathName(c, "namespace", "label"),
        pathName(c, "name", "label"),
      );
      c.header("etag", etag(service.revision));
      return c.json(service);
    },
    putService: async (c) => {
      const namespace = pathName(c, "namespace", "label");
      const name = pathName(c, "name", "label");
      const pre = readPreconditions(c);
      const body = await readBody(c, ops.putService.body, "service");
      const { service, created } = await registry.putService(namespace, name, body, pre);
      c.header("etag", etag(service.revision));
      return c.json(service, created ? 201 : 200);
    },
    deleteService: async (c) => {
      const namespace = pathName(c, "namespace", "label");
      const name = pathName(c, "name", "label");
      await registry.deleteService(namespace, name, readPreconditions(c));
      return c.body(null, 204);
    },
  });
}
