/**
 * The certificate authority's routes: the trust bundle and enrolment are
 * public (a host has no credentials yet), renewal is proven by the current
 * certificate over mTLS, rotation status and start need a token.
 */
import { z } from "zod";
import { InvalidError } from "../core/errors.ts";
import { enrolRequestSchema, renewRequestSchema } from "../core/model.ts";
import type { ApiContext } from "./app.ts";
import { queryParam, resource, timestamp } from "./operation.ts";
import { readBody } from "./request.ts";
import { leaderStatusSchema } from "./status.ts";

/** One root of the trust bundle. */
export const bundleRootSchema = z.object({
  pem: z.string(),
  fingerprint: z.string().describe("SHA-256 of the DER, lower-case hex without colons"),
  subject: z.string(),
  notBefore: timestamp,
  notAfter: timestamp,
  generation: z.number().int(),
}).describe("One root certificate of the trust bundle");

const trustBundleSchema = z.object({
  trustDomain: z.string().describe("The SPIFFE trust domain of the mesh"),
  roots: z.array(bundleRootSchema).describe("Oldest generation first"),
  bundlePem: z.string().describe("The roots' PEM, concatenated"),
  bundleFingerprint: z.string().describe(
    "SHA-256 over the sorted root fingerprints; changes whenever the set does",
  ),
  retiredRoots: z.array(z.object({
    fingerprint: z.string().describe("SHA-256 of the DER, lower-case hex without colons"),
    generation: z.number().int(),
  })).describe(
    "Roots a rotation retired (no longer trusted), oldest first: a join token that pins one " +
      "was created before the rotation",
  ),
}).describe("The roots peers must trust now: every published or active generation's");

/** What enrolment and renewal answer. */
export const issuedIdentitySchema = z.object({
  node: z.string(),
  identity: z.string().describe("SPIFFE ID of the certificate"),
  serial: z.string(),
  certificate: z.string().describe("The leaf and its intermediate, PEM"),
  bundle: z.string().describe("The trust bundle, PEM"),
  bundleFingerprint: z.string(),
  notAfter: timestamp,
}).describe("A workload certificate just issued by enrolment or renewal");

/** One CA generation in the rotation status. */
export const generationStatusSchema = z.object({
  id: z.number().int(),
  stage: z.enum(["published", "active", "retired"]),
  imported: z.boolean().describe(
    "True for operator-supplied material, which cannot be rotated or renewed here",
  ),
  rootFingerprint: z.string(),
  rootNotAfter: timestamp,
  intermediateNotAfter: timestamp.describe("Expiry of the current intermediate"),
}).describe("One generation (root and intermediate) of the CA");

/** Where a root rotation stands. */
export const rotationStatusSchema = z.object({
  stage: z.enum(["steady", "published", "switched"]).describe(
    "`published`: the new root is trusted but not signing; `switched`: it signs, the old one is still trusted",
  ),
  signingRoot: z.string().describe("Fingerprint of the root new certificates chain to"),
  bundleFingerprint: z.string(),
  generations: z.array(generationStatusSchema),
  leaves: z.number().int().describe("Current, unexpired workload certificates"),
  leavesByRoot: z.record(z.string(), z.number().int()).describe(
    "Current certificates per root fingerprint",
  ),
  leavesOnOtherRoots: z.number().int().describe("Current certificates not on the signing root"),
  nodesAwaitingBundle: z.array(z.string()).describe(
    "Live enrolled nodes that have not fetched the current bundle yet",
  ),
}).describe("Where a root rotation stands");

/** The rotation status with the replica that takes its steps. */
export const caStatusSchema = rotationStatusSchema.extend({
  leader: leaderStatusSchema.describe(
    "Which replica leads: it alone renews the intermediate and takes the rotation's steps, for every replica (docs/ha.md)",
  ),
}).describe("Where a root rotation stands, and which replica moves it on");

/** The CA's routes. */
export const CA = resource({
  prefix: "/v1/ca",
  responses: {
    TrustBundle: trustBundleSchema,
    BundleRoot: bundleRootSchema,
    IssuedIdentity: issuedIdentitySchema,
    GenerationStatus: generationStatusSchema,
    RotationStatus: caStatusSchema,
  },
  requests: { EnrolRequest: enrolRequestSchema, RenewRequest: renewRequestSchema },
  operations: {
    getTrustBundle: {
      method: "get",
      path: "/roots",
      tag: "Identity",
      summary: "The trust bundle",
      description:
        "The roots peers must trust now. Public, so a host can fetch it before it enrols; an agent calling over mutual TLS also reports that it holds this bundle, which a root rotation waits for.",
      access: "public",
      params: [
        queryParam(
          "format",
          z.enum(["json", "pem"]),
          "`json` (the default) or `pem`: the bundle as PEM text",
        ),
      ],
      errors: { 422: "An unknown format" },
      replies: [{
        status: 200,
        description: "The bundle",
        body: [trustBundleSchema, {
          mediaType: "application/x-pem-file",
          schema: { type: "string" },
        }],
      }],
    },
    enrol: {
      method: "post",
      path: "/enrol",
      tag: "Identity",
      summary: "Enrol a host with a join token",
      description:
        "Signs a workload certificate for the node named in the body; the join token in the body is the credential, so no `Authorization` header is needed. Each use of the token is counted.",
      access: "public",
      body: enrolRequestSchema,
      replies: [{
        status: 200,
        description: "The certificate and the trust bundle",
        body: issuedIdentitySchema,
      }],
      errors: {
        401: "The join token is malformed, unknown, expired or revoked",
        403:
          "The token enrols another node, the node is held by another token, or the CSR asks for more than this identity",
        409: "The join token has no uses left",
        422: "The body or the CSR is invalid",
        503: "The CA is closed (the server is shutting down)",
      },
    },
    renew: {
      method: "post",
      path: "/renew",
      tag: "Identity",
      summary: "Renew the caller's certificate",
      description:
        "Proven by the current certificate: call over mutual TLS with it. The new certificate has the same identity.",
      access: "mtls",
      body: renewRequestSchema,
      replies: [{
        status: 200,
        description: "The new certificate and the trust bundle",
        body: issuedIdentitySchema,
      }],
      errors: {
        401:
          "No client certificate and no token, or the certificate is expired, revoked or not trusted",
        403: "Called with a token instead of a certificate, or the CSR asks for another identity",
        422: "The body or the CSR is invalid",
        429: "Too many renewals right now; retry after `Retry-After` seconds",
      },
    },
    getCaStatus: {
      method: "get",
      path: "/status",
      tag: "Identity",
      summary: "Root rotation status",
      access: "read",
      replies: [{ status: 200, description: "The rotation status", body: caStatusSchema }],
    },
    startRotation: {
      method: "post",
      path: "/rotation",
      tag: "Identity",
      summary: "Start a root rotation",
      description:
        "Publishes a new root in the bundle at once; it starts signing once every live node has fetched the bundle, and the old root is retired once no current certificate chains to it.",
      access: "admin",
      replies: [{ status: 202, description: "The rotation started", body: caStatusSchema }],
      errors: { 409: "A root rotation is already in progress" },
    },
  },
});

/** The sub-app of {@link CA}. */
export function caApp({ deps, resourceApp, certificateOf }: ApiContext) {
  const { identity } = deps;
  const ops = CA.operations;
  return resourceApp(CA, {
    getTrustBundle: (c) => {
      const bundle = identity.bundle();
      let cert = null;
      try {
        cert = certificateOf(c);
      } catch {
        // A bad certificate may still read the public bundle; it just reports nothing.
      }
      if (cert) identity.bundleFetched(cert.node, bundle.fingerprint);
      const format = c.req.query("format") ?? "json";
      if (format !== "json" && format !== "pem") {
        throw new InvalidError(`Invalid format "${format}": use json or pem`, [{
          in: "query",
          pointer: "/format",
          message: "Must be json or pem",
        }]);
      }
      if (format === "pem") {
        return c.body(bundle.pem, 200, { "content-type": "application/x-pem-file" });
      }
      return c.json({
        trustDomain: identity.trustDomain,
        roots: bundle.roots,
        bundlePem: bundle.pem,
        bundleFingerprint: bundle.fingerprint,
        retiredRoots: bundle.retired,
      });
    },
    enrol: async (c) => {
      const body = await readBody(c, ops.enrol.body, "enrolment");
      return c.json(await identity.enrol(body));
    },
    renew: async (c) => {
      // Declared `mtls`: a caller without a certificate was refused before this runs.
      const certificate = c.get("principal").certificate!;
      const body = await readBody(c, ops.renew.body, "renewal");
      return c.json(await identity.renew(certificate, body.csr));
    },
    getCaStatus: async (c) => {
      return c.json({ ...await identity.rotationStatus(), leader: deps.leader() });
    },
    startRotation: async (c) => {
      await identity.startRotation();
      return c.json({ ...await identity.rotationStatus(), leader: deps.leader() }, 202);
    },
  });
}
