/**
 * Every resource of the REST API, each with its sub-app, in the order the
 * document lists them: `createApp` mounts these, and the OpenAPI document is
 * built from their declarations.
 */
import type { Hono } from "hono";
import type { ApiContext } from "./app.ts";
import { AUDIT, auditApp } from "./audit.ts";
import { BACKUP, backupApp } from "./backup.ts";
import { CA, caApp } from "./ca.ts";
import { DOCS, docsApp } from "./docs.ts";
import { EVENTS, eventsApp } from "./events.ts";
import { INSTALL, installApp } from "./install.ts";
import { INSTANCES, instancesApp } from "./instances.ts";
import { NODES, nodesApp } from "./nodes.ts";
import { buildOpenApiDocument, type OpenApiDocument } from "./openapi.ts";
import type { ApiEnv, Resource } from "./operation.ts";
import { policiesApp } from "./policies.ts";
import { POLICIES } from "./policy_operations.ts";
import { PROXIES, proxiesApp } from "./proxies.ts";
import { NAMESPACES, namespacesApp, SERVICES, servicesApp } from "./services.ts";
import { STATUS, statusApp } from "./status.ts";
import { SUMMARY, summaryApp } from "./summary.ts";
import { TOKENS, tokensApp } from "./tokens.ts";
import { UI, uiApp } from "./ui.ts";
import { WHOAMI, whoamiApp } from "./whoami.ts";

/** A resource and how to build its sub-app. */
export interface MountedResource {
  declared: Resource;
  app(context: ApiContext): Hono<ApiEnv>;
}

/** Every resource, mounted at its prefix. */
export const RESOURCES: readonly MountedResource[] = [
  { declared: STATUS, app: statusApp },
  { declared: DOCS, app: docsApp },
  { declared: CA, app: caApp },
  { declared: NAMESPACES, app: namespacesApp },
  { declared: SUMMARY, app: summaryApp },
  { declared: SERVICES, app: servicesApp },
  { declared: NODES, app: nodesApp },
  { declared: INSTANCES, app: instancesApp },
  { declared: EVENTS, app: eventsApp },
  { declared: TOKENS, app: tokensApp },
  { declared: WHOAMI, app: whoamiApp },
  { declared: PROXIES, app: proxiesApp },
  { declared: POLICIES, app: policiesApp },
  { declared: AUDIT, app: auditApp },
  { declared: BACKUP, app: backupApp },
  { declared: INSTALL, app: installApp },
  { declared: UI, app: uiApp },
];

let cached: OpenApiDocument | undefined;

/** The OpenAPI document, built on first use and then shared (treat it as read-only). */
export function openApiDocument(): OpenApiDocument {
  return cached ??= buildOpenApiDocument(RESOURCES.map((r) => r.declared));
}
