/**
 * A test double of the Ironmesh server as the enrolled agent sees it: a real
 * `node:https` server on 127.0.0.1 and a free port, with a small CA of its
 * own (root, intermediate, serving certificate for IP 127.0.0.1), that
 * requests client certificates the way the real server does and implements
 * the roots, enrol, renew, registration, heartbeat and deregistration
 * endpoints. It records every request and what it saw of the peer, and a
 * test can override any answer. Tests only.
 *
 * Why it remains: it injects the faults the real server cannot be made to
 * produce on demand (a forced 5xx or 429, a registration that answers 404,
 * a join token pinned to a root the server does not have, a saved
 * certificate that expired). Every test that injects none runs against the
 * real server (`_real_server_testing.ts`), so what it checks cannot drift
 * from what the server does; a test that moves there takes its assertions
 * with it.
 */
import { createServer, type Server } from "node:https";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { fingerprint } from "./pki.ts";
import { x509 } from "../ca/x509.ts";
import {
  JOIN_TOKEN_AUDIENCE,
  JOIN_TOKEN_ISSUER,
  type JoinTokenClaims,
  joinTokenIdentity,
} from "../core/join_token.ts";

const ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

function randomSerial(): string {
  // A first byte of 0x10–0x7f keeps the DER integer positive and free of a
  // leading zero, so every tool prints the same 16 hex digits.
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  bytes[0] = 0x10 + (bytes[0]! % 0x70);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function keyPem(key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await crypto.subtle.exportKey("pkcs8", key), "PRIVATE KEY") +
    "\n";
}

/** What {@link TestCa.issue} puts in a leaf. */
export interface LeafParams {
  publicKey: CryptoKey;
  commonName: string;
  uris?: string[];
  ips?: string[];
  notBefore: Date;
  notAfter: Date;
  usage: "server" | "client";
}

/** A root and an intermediate that issues leaves; for tests. */
export interface TestCa {
  root: x509.X509Certificate;
  rootPem: string;
  intermediatePem: string;
  /** `sha256:<hex>` of the root's DER, as a join token pins it. */
  pin: string;
  /** Issues a leaf; returns the PEM chain, leaf then intermediate. */
  issue(params: LeafParams): Promise<string>;
}

/** Creates a root (self-signed) and an intermediate, valid from an hour ago for a day. */
export async function createTestCa(name: string): Promise<TestCa> {
  const now = Date.now();
  const notBefore = new Date(now - 3_600_000);
  const notAfter = new Date(now + 86_400_000);
  const rootKeys = await crypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"]);
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: `CN=${name} Root`,
    notBefore,
    notAfter,
    keys: rootKeys,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 1, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey),
    ],
  });
  const intKeys = await crypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"]);
  const intermediate = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: `CN=${name} Intermediate`,
    issuer: root.subject,
    notBefore,
    notAfter,
    signingKey: rootKeys.privateKey,
    publicKey: intKeys.publicKey,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(intKeys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(root),
    ],
  });
  const intermediatePem = intermediate.toString("pem") + "\n";
  return {
    root,
    rootPem: root.toString("pem") + "\n",
    intermediatePem,
    pin: await fingerprint(root),
    async issue(params) {
      const names: x509.JsonGeneralName[] = [
        ...(params.uris ?? []).map((value) => ({ type: "url" as const, value })),
        ...(params.ips ?? []).map((value) => ({ type: "ip" as const, value })),
      ];
      const leaf = await x509.X509CertificateGenerator.create({
        serialNumber: randomSerial(),
        subject: `CN=${params.commonName}`,
        issuer: intermediate.subject,
        notBefore: params.notBefore,
        notAfter: params.notAfter,
        signingKey: intKeys.privateKey,
        publicKey: params.publicKey,
        signingAlgorithm: ALGORITHM,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([
            params.usage === "server"
              ? x509.ExtendedKeyUsage.serverAuth
              : x509.ExtendedKeyUsage.clientAuth,
          ]),
          new x509.SubjectAlternativeNameExtension(names, false),
          await x509.AuthorityKeyIdentifierExtension.create(intermediate),
        ],
      });
      return leaf.toString("pem") + "\n" + intermediatePem;
    },
  };
}

/** One request the double received, with what it saw of the TLS peer. */
export interface SeenRequest {
  method: string;
  path: string;
  /** The raw body text; tests check that no private key was ever sent. */
  text: string;
  body: unknown;
  auth: string | null;
  /** Whether the peer presented a certificate that chains to a trusted root and is valid now. */
  authorized: boolean;
  /** CN, SAN (`URI:spiffe://…`) and serial of the peer's certificate, when it sent one. */
  peer: { cn: string | undefined; san: string | undefined; serial: string | undefined };
  /** `performance.now()` on arrival. */
  at: number;
  /** The status answered. */
  status?: number;
}

/** Decides the answer to a request; `undefined` means the double's own answer. */
export type TlsAnswer = (
  request: SeenRequest,
  index: number,
) => Response | undefined | Promise<Response | undefined>;

/** Options of {@link startTlsServerDouble}. */
export interface TlsDoubleOptions {
  /** Lifetime of issued leaves from their issuance; X.509 times have whole seconds. Default: 1 h. */
  leafLifetimeMs?: number;
  answer?: TlsAnswer;
  /** Pins (`sha256:HEX`) the root list names as retired by a rotation, with generations 1, 2, …. */
  retiredPins?: string[];
}

/** Claims of a join token made by {@link TlsServerDouble.joinToken}. */
export interface DoubleTokenClaims {
  ns?: string;
  sa?: string;
  node?: string;
  /** Expiry, ms since the epoch. Default: in 10 minutes. */
  expMs?: number;
  pin?: string;
  srv?: string[];
}

/** A running double; call `close()` in a `finally`. */
export interface TlsServerDouble {
  url: string;
  trustDomain: string;
  requests: SeenRequest[];
  /** The CA that issues every leaf. */
  readonly ca: TestCa;
  /** Serials of every issued client certificate, in order. */
  issued: string[];
  /** The current bundle's fingerprint, as heartbeats report it. */
  readonly bundleFingerprint: string;
  /** A join token the double accepts once. */
  joinToken(claims?: DoubleTokenClaims): string;
  /** Makes heartbeats answer `renew: true` until the next successful renewal. */
  askRenewal(): void;
  close(): Promise<void>;
}

/** The URI SANs a CSR asks for. */
export function csrUris(csr: x509.Pkcs10CertificateRequest): string[] {
  const san = csr.extensions.find((e) => e instanceof x509.SubjectAlternativeNameExtension);
  return san?.names.items.filter((n) => n.type === "url").map((n) => n.value) ?? [];
}

function b64url(value: unknown): string {
  const bytes = new TextEncoder().encode(JSON.stringify(value));
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replaceAll("=", "");
}

function problemResponse(status: number, title: string, detail: string): Response {
  return new Response(JSON.stringify({ type: "about:blank", title, status, detail }), {
    status,
    headers: { "content-type": "application/problem+json" },
  });
}

async function bundleFingerprint(roots: x509.X509Certificate[]): Promise<string> {
  const parts = roots.map((r) => new Uint8Array(r.rawData));
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    all.set(part, offset);
    offset += part.length;
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  return "sha256:" + Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function servingIdentity(ca: TestCa): Promise<{ key: string; cert: string }> {
  const keys = await crypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"]);
  const now = Date.now();
  const cert = await ca.issue({
    publicKey: keys.publicKey,
    commonName: "ironmesh-server",
    ips: ["127.0.0.1"],
    notBefore: new Date(now - 3_600_000),
    notAfter: new Date(now + 86_400_000),
    usage: "server",
  });
  return { key: await keyPem(keys.privateKey), cert };
}

/** Starts the double on 127.0.0.1 and a free port. */
export async function startTlsServerDouble(
  options: TlsDoubleOptions = {},
): Promise<TlsServerDouble> {
  const trustDomain = "ironmesh.test";
  const lifetimeMs = options.leafLifetimeMs ?? 3_600_000;
  // notBefore a minute before issuance, as the real server sets it for clients whose clocks lag.
  const backdateMs = 60_000;
  const ca = await createTestCa("Test");
  const roots = [ca];
  const fp = await bundleFingerprint(roots.map((r) => r.root));
  let renewAsked = false;
  const tokens = new Map<string, { claims: JoinTokenClaims; used: boolean }>();
  const requests: SeenRequest[] = [];
  const issued: string[] = [];
  const sockets = new Set<Socket>();

  const rootsReply = () => ({
    trustDomain,
    roots: roots.map((r) => ({
      pem: r.rootPem,
      fingerprint: r.pin,
      subject: r.root.subject,
      notBefore: r.root.notBefore.toISOString(),
      notAfter: r.root.notAfter.toISOString(),
    })),
    bundlePem: roots.map((r) => r.rootPem).join(""),
    bundleFingerprint: fp,
    retiredRoots: (options.retiredPins ?? []).map((pin, i) => ({
      fingerprint: pin.replace(/^sha256:/, ""),
      generation: i + 1,
    })),
  });

  const issueFor = async (csrPem: string, node: string, identity: string) => {
    const csr = new x509.Pkcs10CertificateRequest(csrPem);
    if (!(await csr.verify())) return problemResponse(422, "Invalid CSR", "Bad CSR signature");
    const cn = csr.subjectName.getField("CN")[0];
    const uris = csrUris(csr);
    if (cn !== node) {
      return problemResponse(403, "Forbidden", `CSR is for "${cn}", not node "${node}"`);
    }
    if (uris.length !== 1 || uris[0] !== identity) {
      return problemResponse(403, "Forbidden", `CSR asks for "${uris.join(", ")}"`);
    }
    // Whole seconds, as X.509 stores them.
    const now = Date.now();
    const notBefore = Math.floor((now - backdateMs) / 1000) * 1000;
    const notAfter = Math.floor((now + lifetimeMs) / 1000) * 1000;
    const certificate = await ca.issue({
      publicKey: await csr.publicKey.export(),
      commonName: node,
      uris: [identity],
      notBefore: new Date(notBefore),
      notAfter: new Date(notAfter),
      usage: "client",
    });
    issued.push(new x509.X509Certificate(certificate).serialNumber);
    return Response.json({
      node,
      identity,
      certificate,
      bundle: roots.map((r) => r.rootPem).join(""),
      bundleFingerprint: fp,
      notAfter: new Date(notAfter).toISOString(),
    });
  };

  const handle = async (seen: SeenRequest): Promise<Response> => {
    const body = (seen.body ?? {}) as Record<string, unknown>;
    if (seen.method === "GET" && seen.path === "/v1/ca/roots") return Response.json(rootsReply());
    if (seen.method === "POST" && seen.path === "/v1/ca/enrol") {
      const token = tokens.get(String(body.token));
      if (!token) return problemResponse(401, "Unauthorized", "Unknown join token");
      if (token.used) return problemResponse(409, "Conflict", "Join token already used");
      token.used = true;
      const c = token.claims;
      if (c.node !== undefined && c.node !== body.node) {
        return problemResponse(403, "Forbidden", `Token is for node "${c.node}"`);
      }
      return await issueFor(String(body.csr), String(body.node), joinTokenIdentity(c));
    }
    if (!seen.authorized || seen.peer.cn === undefined) {
      return problemResponse(401, "Unauthorized", "A valid client certificate is required");
    }
    const identity = seen.peer.san?.replace(/^URI:/, "") ?? "";
    if (seen.method === "POST" && seen.path === "/v1/ca/renew") {
      const response = await issueFor(String(body.csr), seen.peer.cn, identity);
      if (response.ok) renewAsked = false;
      return response;
    }
    const match = /^\/v1\/nodes\/([^/]+)(\/registration|\/heartbeat)?$/.exec(seen.path);
    if (!match) return problemResponse(404, "Not Found", `No route "${seen.path}"`);
    if (match[1] !== seen.peer.cn) {
      return problemResponse(403, "Forbidden", `Certificate is for "${seen.peer.cn}"`);
    }
    if (seen.method === "PUT" && match[2] === "/registration") {
      return Response.json({ node: { name: match[1] }, instances: [] });
    }
    if (seen.method === "POST" && match[2] === "/heartbeat") {
      return Response.json({ ca: { bundleFingerprint: fp, renew: renewAsked } });
    }
    if (seen.method === "DELETE" && match[2] === undefined) {
      return new Response(null, { status: 204 });
    }
    return problemResponse(405, "Method Not Allowed", seen.method);
  };

  const serving = await servingIdentity(ca);
  const server: Server = createServer({
    key: serving.key,
    cert: serving.cert,
    ca: ca.rootPem,
    requestCert: true,
    rejectUnauthorized: false,
  }, (req, res) => {
    const chunks: Uint8Array[] = [];
    req.on("data", (chunk: Uint8Array) => chunks.push(chunk));
    req.on("end", async () => {
      const socket = req.socket as TLSSocket;
      const cert = socket.getPeerCertificate();
      const hasCert = cert !== null && typeof cert === "object" && "subject" in cert &&
        cert.subject !== undefined;
      const text = new TextDecoder().decode(
        chunks.reduce((all, c) => {
          const joined = new Uint8Array(all.length + c.length);
          joined.set(all);
          joined.set(c, all.length);
          return joined;
        }, new Uint8Array()),
      );
      let body: unknown;
      try {
        body = text === "" ? undefined : JSON.parse(text);
      } catch {
        body = text;
      }
      const seen: SeenRequest = {
        method: req.method ?? "",
        path: (req.url ?? "").split("?")[0]!,
        text,
        body,
        auth: typeof req.headers.authorization === "string" ? req.headers.authorization : null,
        authorized: socket.authorized === true,
        peer: {
          cn: hasCert ? cert.subject.CN as string | undefined : undefined,
          san: hasCert ? cert.subjectaltname : undefined,
          // Lower case, as the x509 library and the agent print it.
          serial: hasCert ? cert.serialNumber?.toLowerCase() : undefined,
        },
        at: performance.now(),
      };
      const index = requests.push(seen) - 1;
      let response: Response;
      try {
        response = (await options.answer?.(seen, index)) ?? await handle(seen);
      } catch (error) {
        response = problemResponse(500, "Internal Server Error", String(error));
      }
      seen.status = response.status;
      const headers: Record<string, string> = {};
      response.headers.forEach((value, key) => headers[key] = value);
      res.writeHead(response.status, headers);
      res.end(await response.text());
    });
  });
  server.on("secureConnection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  const url = `https://127.0.0.1:${port}`;

  return {
    url,
    trustDomain,
    requests,
    ca,
    issued,
    bundleFingerprint: fp,
    joinToken(claims = {}) {
      const jti = crypto.randomUUID();
      const now = Date.now();
      const payload: JoinTokenClaims & { iss: string; aud: string } = {
        jti,
        iat: Math.floor(now / 1000),
        exp: Math.floor((claims.expMs ?? now + 600_000) / 1000),
        iss: JOIN_TOKEN_ISSUER,
        aud: JOIN_TOKEN_AUDIENCE,
        td: trustDomain,
        ns: claims.ns ?? "default",
        sa: claims.sa ?? "web",
        ...(claims.node === undefined ? {} : { node: claims.node }),
        srv: claims.srv ?? [url],
        pin: claims.pin ?? ca.pin,
      };
      const token = `${b64url({ alg: "EdDSA", typ: "JWT" })}.${b64url(payload)}.${
        b64url("test-double-not-signed")
      }`;
      tokens.set(token, { claims: payload, used: false });
      return token;
    },
    askRenewal() {
      renewAsked = true;
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}
