/**
 * Issue 15: proxyless gRPC secured with mesh mTLS and AuthorizationPolicy,
 * proven with the independent xDS implementation. The real server, a real
 * agent that writes `grpc-bootstrap.json`, and `@grpc/grpc-js-xds` 1.14's
 * `XdsServer` and `XdsChannelCredentials` as separate Node.js processes
 * (`proxyless_peer.mjs`, which says why Node) using that bootstrap.
 */
import assert from "node:assert/strict";
import { createServer } from "node:net";
// Loaded for its side effect: Deno sets up node_modules, where the Node.js peers find it.
import "@grpc/grpc-js-xds";
import { Proc, ROOT, runCli, ServerProc, startAgent, tempDir, waitFor } from "./harness.ts";

const NS = "default";
const API_VERSION = "ironmesh.io/v1";

/** A port free now on every interface (the XdsServer binds it on all of them). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

interface CallLine {
  code: number;
  reply: string;
  at: number;
}

/** The call lines a `client` peer printed after `since` (ms since the epoch). */
function callsSince(proc: Proc, since: number): CallLine[] {
  return proc.output.split("\n").flatMap((line) => {
    if (!line.startsWith("{")) return [];
    const parsed = JSON.parse(line) as CallLine;
    return parsed.at > since ? [parsed] : [];
  });
}

/**
 * Waits until the last `n` calls since `since` all have `code` (and, if
 * given, a reply matching `reply`); returns the time the wait ended.
 */
async function settlesTo(
  proc: Proc,
  what: string,
  code: number,
  options: { since?: number; n?: number; reply?: RegExp; timeoutMs?: number } = {},
): Promise<number> {
  const since = options.since ?? Date.now();
  const n = options.n ?? 5;
  await waitFor(what, () => {
    const last = callsSince(proc, since).slice(-n);
    return last.length === n &&
      last.every((c) => c.code === code && (options.reply?.test(c.reply) ?? true));
  }, options.timeoutMs ?? 15_000).catch((error) => {
    const tail = proc.output.split("\n").slice(-5).join("\n");
    throw new Error(`${(error as Error).message}; ${proc.name} printed last:\n${tail}`, {
      cause: error,
    });
  });
  return Date.now();
}

/**
 * Starts an agent for `node` whose one service, `echo` on `port`, is
 * proxyless gRPC: it takes xDS from the server's gRPC port and serves it on
 * a local xDS endpoint of its own.
 */
async function startProxylessAgent(
  server: ServerProc,
  node: string,
  port: number,
  refreshInterval: string,
): Promise<{ proc: Proc; dataDir: string }> {
  const info = JSON.parse(await Deno.readTextFile(`${server.dataDir}/server.json`));
  return await startAgent(
    node,
    server,
    `
node: {name: ${node}, address: 127.0.0.1}
heartbeat: {interval: 1s}
proxyless: {refreshInterval: ${refreshInterval}}
services:
  - {name: echo, port: ${port}, protocol: grpc}
`,
    {
      joinToken: await server.joinToken(),
      extraArgs: ["--xds-server", info.grpc, "--local-xds-addr", "127.0.0.1:0"],
    },
  );
}

/** The agent's `agent.json` once it names the gRPC bootstrap it wrote. */
async function grpcState(
  dataDir: string,
): Promise<{ grpcBootstrap: string; certificate: { identity: string } }> {
  return await waitFor("agent.json with grpcBootstrap", async () => {
    const s = JSON.parse(await Deno.readTextFile(`${dataDir}/agent.json`));
    return typeof s.grpcBootstrap === "string" ? s : undefined;
  });
}

/** A proxyless peer (`proxyless_peer.mjs`) under Node.js, with the agent's bootstrap. */
function peer(name: string, args: string[], bootstrap: string): Proc {
  return new Proc(name, [`${ROOT}tests/proxyless_peer.mjs`, ...args], {
    GRPC_XDS_BOOTSTRAP: bootstrap,
    GRPC_XDS_EXPERIMENTAL_RBAC: "true",
  }, "node");
}

Deno.test("proxyless gRPC over mesh mTLS: SPIFFE IDs, STRICT and PERMISSIVE, AuthorizationPolicy DENY, ALLOW, not* and DENY over ALLOW", async () => {
  const dir = await tempDir("proxyless-mtls");
  const server = await ServerProc.start(dir, ["--push-debounce", "20ms"]);
  const port = await freePort();
  const procs: Proc[] = [];
  const agent = await startProxylessAgent(server, "vm-a", port, "1s");
  procs.push(agent.proc);
  try {
    const state = await grpcState(agent.dataDir);
    const bootstrap: string = state.grpcBootstrap;
    const identity: string = state.certificate.identity;
    await waitFor(
      "echo@vm-a registered",
      async () => (await server.instance("echo@vm-a")) !== null,
    );

    // The server binds 0.0.0.0:<port>: it serves once its server Listener came over xDS.
    const echo = peer("proxyless server", ["server", `0.0.0.0:${port}`], bootstrap);
    procs.push(echo);
    await echo.waitForLine(/^serving \d+/, 20_000);

    // mTLS: the call succeeds and the server sees the client's SPIFFE ID.
    const client = peer("proxyless client", ["client", `xds:///echo.${NS}`], bootstrap);
    procs.push(client);
    await settlesTo(client, "mTLS calls that carry the client's SPIFFE ID", 0, {
      reply: new RegExp(`URI:${identity.replaceAll(".", "\\.")}`),
      timeoutMs: 20_000,
    });

    // STRICT: a plaintext client from outside the mesh is refused.
    const plain = peer("plaintext client", ["client", `127.0.0.1:${port}`], bootstrap);
    procs.push(plain);
    await settlesTo(plain, "plaintext calls refused in STRICT", 14);
    // Stopped, so its reconnection backoff (which grows with every refusal) cannot slow the end.
    await plain.stop("SIGKILL");

    // A DENY of the client's identity turns its calls into PERMISSION_DENIED; removing it restores them.
    const policy = (name: string, spec: Record<string, unknown>) =>
      server.api("PUT", `/v1/policies/authorizationpolicy/${NS}/${name}`, {
        body: { apiVersion: API_VERSION, kind: "AuthorizationPolicy", metadata: { name }, spec },
      });
    const deny = await policy("deny-client", {
      service: "echo",
      action: "DENY",
      rules: [{ from: [{ identities: [identity] }] }],
    });
    assert.ok([200, 201].includes(deny.status), JSON.stringify(deny.body));
    const deniedAt = Date.now();
    const denied = await settlesTo(client, "PERMISSION_DENIED after the DENY", 7, {
      since: deniedAt,
    });
    console.log(`DENY reached the proxyless server in <= ${denied - deniedAt} ms`);
    assert.equal(
      (await server.api("DELETE", `/v1/policies/authorizationpolicy/${NS}/deny-client`)).status,
      200,
    );
    await settlesTo(client, "calls restored once the DENY is gone", 0);

    // ALLOW on method paths: the echo method is allowed, so calls go through ...
    const allow = (paths: string[]) =>
      policy("allow-methods", {
        service: "echo",
        action: "ALLOW",
        rules: [{ from: [{ namespaces: [NS] }], to: [{ paths }] }],
      });
    assert.ok([200, 201].includes((await allow(["/ironmesh.test.Echo/Call"])).status));
    await settlesTo(client, "calls to an allowed method", 0, { since: Date.now() + 500 });
    // ... and an ALLOW naming only another method denies it.
    assert.equal((await allow(["/ironmesh.test.Echo/Other"])).status, 200);
    await settlesTo(client, "PERMISSION_DENIED for a method no ALLOW names", 7);
    assert.ok([200, 201].includes((await allow(["/ironmesh.test.Echo/*"])).status));
    await settlesTo(client, "calls under an allowed prefix", 0);

    // ALLOW on identities, and the `not*` forms: every step flips the outcome, so each one is seen
    // to take effect.
    const allowFrom = (from: Record<string, unknown>) =>
      policy("allow-methods", { service: "echo", action: "ALLOW", rules: [{ from: [from] }] });
    const other = identity.replace(/\/sa\/[^/]+$/, "/sa/someone-else");
    assert.notEqual(other, identity);
    assert.equal((await allowFrom({ identities: [other] })).status, 200);
    await settlesTo(client, "PERMISSION_DENIED when the ALLOW names another identity", 7);
    assert.equal((await allowFrom({ identities: [identity] })).status, 200);
    await settlesTo(client, "calls from the identity the ALLOW names", 0);
    assert.equal((await allowFrom({ notIdentities: [identity] })).status, 200);
    await settlesTo(client, "PERMISSION_DENIED when the ALLOW excludes the identity", 7);
    assert.equal((await allowFrom({ notIdentities: [other] })).status, 200);
    await settlesTo(client, "calls when the ALLOW excludes only another identity", 0);

    // DENY beats ALLOW: a DENY of the method wins over the ALLOW that admits the caller.
    const denyPath = await policy("deny-method", {
      service: "echo",
      action: "DENY",
      rules: [{ to: [{ paths: ["/ironmesh.test.Echo/Call"] }] }],
    });
    assert.equal(denyPath.status, 201, JSON.stringify(denyPath.body));
    await settlesTo(client, "PERMISSION_DENIED: the DENY beats the ALLOW", 7);
    assert.equal(
      (await server.api("DELETE", `/v1/policies/authorizationpolicy/${NS}/deny-method`)).status,
      200,
    );
    await settlesTo(client, "calls once the DENY is gone and the ALLOW remains", 0);

    // PERMISSIVE: plaintext is served, to the client from outside and to the mesh client alike.
    const mesh = await server.api("PUT", "/v1/policies/meshconfig/mesh", {
      body: {
        apiVersion: API_VERSION,
        kind: "MeshConfig",
        metadata: { name: "mesh" },
        spec: { mtls: { mode: "PERMISSIVE" } },
      },
    });
    assert.ok([200, 201].includes(mesh.status), JSON.stringify(mesh.body));
    // The mode change alone (no policy changed with it) reaches the running server: plaintext
    // calls get past the transport to the RBAC filter (served or denied by the ALLOW still
    // there) instead of being refused for lacking TLS (UNAVAILABLE) or timing out.
    const plainAgain = peer("plaintext client", ["client", `127.0.0.1:${port}`], bootstrap);
    procs.push(plainAgain);
    const modeSince = Date.now();
    await waitFor("plaintext calls past the transport after the mode change alone", () => {
      const last = callsSince(plainAgain, modeSince).slice(-5);
      return last.length === 5 && last.every((c) => c.code === 0 || c.code === 7);
    }, 15_000).catch((error) => {
      const tail = plainAgain.output.split("\n").slice(-5).join("\n");
      throw new Error(`${(error as Error).message}; the plaintext client printed last:\n${tail}`);
    });
    // The ALLOW above names namespaces, which a caller without a certificate cannot prove.
    assert.equal(
      (await server.api("DELETE", `/v1/policies/authorizationpolicy/${NS}/allow-methods`)).status,
      200,
    );
    await settlesTo(plainAgain, "plaintext calls served in PERMISSIVE", 0, {
      reply: /^plaintext$/,
    });
    await settlesTo(client, "the mesh client served in PERMISSIVE", 0);

    // What a proxyless proxy cannot honour is said: a RateLimit of the service it serves, and
    // PERMISSIVE meaning plaintext.
    const limit = await server.api("PUT", `/v1/policies/ratelimit/${NS}/echo`, {
      body: {
        apiVersion: API_VERSION,
        kind: "RateLimit",
        metadata: { name: "echo" },
        spec: { service: "echo", limit: { requests: 100, per: "1s" } },
      },
    });
    assert.equal(limit.status, 201, JSON.stringify(limit.body));
    const proxies = (await server.api("GET", "/v1/proxies")).body.items as {
      id: string;
      kind: string;
      mtls?: boolean;
    }[];
    const proxyless = proxies.find((p) => p.kind === "proxyless" && p.mtls);
    assert.ok(proxyless, JSON.stringify(proxies));
    // Explain reads the push pipeline's view, which takes the RateLimit at its next push.
    const explain = async () => {
      const r = await server.api("GET", `/v1/proxies/${encodeURIComponent(proxyless.id)}/policies`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body;
    };
    const notHonoured = (body: { notHonoured: { kind: string; field: string }[] }) =>
      body.notHonoured.map((g) => `${g.kind} ${g.field}`);
    const explained = await waitFor(
      "explain to name the RateLimit",
      async () => {
        const body = await explain();
        return notHonoured(body).includes("RateLimit ") ? body : undefined;
      },
    );
    assert.deepEqual(explained.inbound, [{ namespace: NS, service: "echo" }]);
    assert.deepEqual(notHonoured(explained), ["MeshConfig /mtls/mode", "RateLimit "]);
  } finally {
    for (const p of procs.reverse()) await p.stop("SIGKILL");
    await server.proc.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await Deno.remove(agent.dataDir, { recursive: true }).catch(() => {});
  }
});

Deno.test("proxyless gRPC over mesh mTLS: a root rotation and 4 s leaves under continuous calls, 0 failed", async () => {
  const dir = await tempDir("proxyless-rotation");
  const server = await ServerProc.start(dir, [
    "--push-debounce",
    "20ms",
    "--leaf-ttl",
    "4s",
    "--max-leaf-ttl",
    "4s",
  ]);
  const port = await freePort();
  const procs: Proc[] = [];
  const agent = await startProxylessAgent(server, "vm-r", port, "200ms");
  procs.push(agent.proc);
  try {
    const state = await grpcState(agent.dataDir);
    const bootstrap: string = state.grpcBootstrap;
    const echo = peer("proxyless server", ["server", `0.0.0.0:${port}`], bootstrap);
    procs.push(echo);
    await echo.waitForLine(/^serving \d+/, 20_000);
    const client = peer("proxyless client", ["client", `xds:///echo.${NS}`], bootstrap);
    procs.push(client);
    const first = await settlesTo(client, "mTLS calls", 0, { timeoutMs: 20_000 });

    const credentials = `${agent.dataDir}/grpc/credentials.pem`;
    const before = await Deno.readTextFile(credentials);
    const env = { IRONMESH_SERVER: server.url, IRONMESH_TOKEN: server.adminToken };
    const oldRoot = (await server.api("GET", "/v1/ca/status")).body.signingRoot;
    const rotate = await runCli(["ca", "rotate"], env);
    assert.equal(rotate.code, 0, rotate.stderr);
    await waitFor("rotation complete", async () => {
      const status = (await server.api("GET", "/v1/ca/status")).body;
      return status.stage === "steady" && status.signingRoot !== oldRoot;
    }, 60_000);
    // Leaves of the new root only, renewed several times: calls on fresh connections still work.
    await new Promise((r) => setTimeout(r, 6_000));
    const last = await settlesTo(client, "mTLS calls after the rotation", 0);
    assert.notEqual(await Deno.readTextFile(credentials), before, "the files were rewritten");

    const calls = callsSince(client, first).filter((c) => c.at <= last);
    const failed = calls.filter((c) => c.code !== 0);
    assert.ok(calls.length > 100, `${calls.length} calls`);
    assert.deepEqual(failed.slice(0, 3), [], `${failed.length} of ${calls.length} calls failed`);
  } finally {
    for (const p of procs.reverse()) await p.stop("SIGKILL");
    await server.proc.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await Deno.remove(agent.dataDir, { recursive: true }).catch(() => {});
  }
});
