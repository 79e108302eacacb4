import { z } from "zod";

/** One xDS resource type of one proxy: what was sent, what it ACKed, its last NACK. */
export const typeStatusSchema = z.object({
  typeUrl: z.string().describe(
    "The resource type, e.g. `type.googleapis.com/envoy.config.cluster.v3.Cluster`",
  ),
  subscribed: z.union([z.array(z.string()), z.literal("*")]).describe(
    "Resource names the proxy subscribed to; `*` for a wildcard subscription",
  ),
  sentVersion: z.string().nullable().describe("Version last sent"),
  ackedVersion: z.string().nullable().describe("Version last acknowledged"),
  lastNack: z.object({
    version: z.string(),
    message: z.string(),
    at: z.string(),
  }).nullable().describe("The last rejected version and the proxy's error; it is never re-sent"),
  inSync: z.boolean().describe("True when the proxy acknowledged what was last sent"),
}).describe("One xDS resource type of one proxy");
/** Parsed {@link typeStatusSchema}. */
export type TypeStatus = z.infer<typeof typeStatusSchema>;

/** One connected proxy, like `istioctl proxy-status`. */
export const proxyStatusSchema = z.object({
  id: z.string().describe("Stream id; use it for the config dump"),
  node: z.string(),
  identity: z.string().describe("SPIFFE ID from the proxy's certificate"),
  kind: z.enum(["sidecar", "proxyless"]),
  mtls: z.boolean().optional().describe(
    "Proxyless only: its bootstrap has the mesh's certificate provider, so it gets mTLS and server Listeners",
  ),
  connectedAt: z.string(),
  types: z.array(typeStatusSchema),
}).describe("A connected xDS proxy");
/** Parsed {@link proxyStatusSchema}. */
export type ProxyStatus = z.infer<typeof proxyStatusSchema>;
