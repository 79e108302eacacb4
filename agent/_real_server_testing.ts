/**
 * The real server as an enrolled agent sees it, in-process: the app of
 * `api/` with the real CA, join tokens and identity service of `ca/`
 * (`api/_testing.ts`), served over the real TLS port (`api/tls_listener.ts`)
 * with a serving certificate from that CA, reloaded when the trust changes
 * as `ironmesh server` does (`cmd/server_start.ts`), so a root rotation is
 * the server's own. Every agent test runs against it, so what it checks is
 * what the server does. A test that needs a fault the server does not
 * produce on demand (a 5xx, a 429, a refused certificate, a 404 to a
 * heartbeat) injects exactly that answer with {@link RealServerOptions.fault};
 * everything else is still the server's.
 */
import type { TLSSocket } from "node:tls";
import { type TestApp, withTestApp } from "../api/_testing.ts";
import { listenTls } from "../api/tls_listener.ts";
import { joinRequest } from "../ca/_testing.ts";
import { normalizeSerial } from "../ca/identity.ts";
import { x509 } from "../ca/x509.ts";
import { systemClock } from "../core/clock.ts";
import { DEFAULT_CONNECTION_LIMITS as LIMITS } from "../core/server_config.ts";

/** The trust domain of the server; the tests spell identities in it. */
const TRUST_DOMAIN = "ironmesh.test";

/** One request the server received, with what it saw of the peer's certificate. */
export interface ServedRequest {
  method: string;
  path: string;
  /** The raw body text; tests check that no private key was ever sent. */
  text: string;
  /** The body as JSON, when it is. */
  body: unknown;
  auth: string | null;
  /** `performance.now()` on arrival. */
  at: number;
  /** Whether the peer presented a certificate that chains to the server's trust bundle. */
  authorized: boolean;
  /**
   * CN, SAN (`URI:spiffe://…`) and serial of the peer's certificate; the
   * serial as `normalizeSerial()` spells it (lower-case hex, no leading zero),
   * as the server's records and `issued` do, so a test compares it to another
   * spelling through `normalizeSerial()`.
   */
  peer: { cn: string | undefined; san: string | undefined; serial: string | undefined };
  status?: number;
}

/** The running server; see {@link withRealServer}. */
export interface RealServer extends TestApp {
  url: string;
  requests: ServedRequest[];
  /** Serials (`normalizeSerial()`) of the certificates enrolment and renewal answered, in order. */
  issued: string[];
  /** Settles when the TLS port serves the material of the last trust change. */
  tlsReloaded(): Promise<void>;
  /** A join token the server accepts once, as `ironmesh token create --kind join` makes it. */
  joinToken(
    claims?: { node?: string; namespace?: string; serviceAccount?: string },
  ): Promise<string>;
}

/** The registration, heartbeat and deregistration calls the server received. */
export function nodeCalls(server: { requests: ServedRequest[] }): ServedRequest[] {
  return server.requests.filter((r) => r.path.startsWith("/v1/nodes/"));
}

/** Options of {@link withRealServer}. */
export interface RealServerOptions {
  /** Lifetime of workload certificates. Default: 1 h. */
  leafTtlMs?: number;
  /**
   * Sees each request before the server: a response it returns is the
   * answer instead of the server's (the fault a test injects); `undefined`
   * leaves the request to the server.
   */
  fault?: (request: ServedRequest) => Response | undefined;
}

/** Runs `fn` with the real server on 127.0.0.1 and a free port, then stops and removes it. */
export async function withRealServer(
  fn: (server: RealServer) => Promise<void>,
  options: RealServerOptions = {},
): Promise<void> {
  let url = "";
  await withTestApp(async (t) => {
    const requests: ServedRequest[] = [];
    const issued: string[] = [];
    const material = async () => {
      const serving = await t.authority.issueServerCertificate({
        dnsNames: ["localhost"],
        ipAddresses: ["127.0.0.1"],
      });
      return { key: serving.keyPem, cert: serving.chainPem, ca: t.authority.bundle().pem };
    };
    const tls = await listenTls({ host: "127.0.0.1", port: 0 }, await material(), async (
      request,
      env,
    ) => {
      const socket = (env as { incoming: { socket: TLSSocket } }).incoming.socket;
      const cert = socket.getPeerCertificate();
      const text = request.body === null ? "" : await request.clone().text();
      const seen: ServedRequest = {
        method: request.method,
        path: new URL(request.url).pathname,
        text,
        body: text === "" ? undefined : JSON.parse(text),
        auth: request.headers.get("authorization"),
        at: performance.now(),
        authorized: socket.authorized,
        peer: {
          cn: cert?.subject?.CN as string | undefined,
          san: cert?.subjectaltname || undefined,
          serial: cert?.serialNumber ? normalizeSerial(cert.serialNumber) : undefined,
        },
      };
      requests.push(seen);
      const injected = options.fault?.(seen);
      const response = injected ?? await t.app.fetch(request, env);
      seen.status = response.status;
      if (
        injected === undefined && response.ok &&
        (seen.path === "/v1/ca/enrol" || seen.path === "/v1/ca/renew")
      ) {
        const { certificate } = await response.clone().json() as { certificate: string };
        issued.push(normalizeSerial(new x509.X509Certificate(certificate).serialNumber));
      }
      return response;
    }, LIMITS);
    // As the server does: new trust or a new signing CA reaches the TLS port at once.
    let reloading = Promise.resolve();
    t.identity.events.trustChanged = () => {
      reloading = material().then((next) => tls.reload(next));
    };
    url = `https://127.0.0.1:${tls.address.port}`;
    const joinToken: RealServer["joinToken"] = async (claims = {}) => {
      const request = joinRequest({
        namespace: claims.namespace ?? "default",
        serviceAccount: claims.serviceAccount ?? "web",
        ...(claims.node === undefined ? {} : { node: claims.node }),
      });
      return (await t.identity.createJoinToken(request, [url])).token;
    };
    try {
      await fn({ ...t, url, requests, issued, joinToken, tlsReloaded: () => reloading });
    } finally {
      await tls.stop();
    }
  }, {
    clock: systemClock,
    trustDomain: TRUST_DOMAIN,
    advertise: () => [url],
    ...(options.leafTtlMs === undefined ? {} : { leafTtlMs: options.leafTtlMs }),
  });
}
