/**
 * A proxyless gRPC server or client as a separate Node.js program, for the
 * end-to-end tests of mesh mTLS and AuthorizationPolicy (issue 15). It runs
 * `@grpc/grpc-js-xds` (the copy in the repository's node_modules, pinned by
 * deno.lock) on the runtime it is written for: under Deno 2.9.6 an
 * `XdsServer` keeps serving connections of a replaced server Listener with
 * its old filters (drained HTTP/2 sessions are never closed), so a policy
 * change would not reach running clients; and grpc-js inside the Deno test
 * process can abort it natively (nghttp2). Both ends read the bootstrap
 * named by `GRPC_XDS_BOOTSTRAP` (the agent's `grpc-bootstrap.json`); the
 * server needs `GRPC_XDS_EXPERIMENTAL_RBAC=true`.
 *
 * - `server IP:PORT`: an `XdsServer` with `XdsServerCredentials` (fallback:
 *   plaintext) serving `/ironmesh.test.Echo/Call`, which answers with the
 *   caller's certificate SAN as the server saw it (`plaintext` without one).
 *   Prints `serving PORT` once its server Listener arrived.
 * - `client TARGET`: calls `TARGET` every 50 ms with a 1 s deadline and
 *   prints one JSON line per call, `{"code": N, "reply": "…", "at": ms}`.
 *   `xds:///name` targets use `XdsChannelCredentials` (fallback: plaintext);
 *   `IP:PORT` targets are plain gRPC clients without TLS, as a client from
 *   outside the mesh.
 * - `load TARGET SECONDS CONCURRENCY`: the same calls, `CONCURRENCY` at a
 *   time and back to back, for `SECONDS` after the first success (the
 *   benchmark, `scripts/bench/proxyless.ts`); prints one JSON line,
 *   `{"calls": N, "failed": N, "seconds": S, "p50Ms": X, "p99Ms": Y}`.
 *
 * Run: `node tests/proxyless_peer.mjs server 0.0.0.0:50051`.
 */
import * as grpc from "@grpc/grpc-js";
import * as xds from "@grpc/grpc-js-xds";

const ECHO_METHOD = "/ironmesh.test.Echo/Call";
const raw = (b) => b;
const definition = {
  call: {
    path: ECHO_METHOD,
    requestStream: false,
    responseStream: false,
    requestSerialize: raw,
    requestDeserialize: raw,
    responseSerialize: raw,
    responseDeserialize: raw,
  },
};

function serve(bind) {
  // A replaced Listener (a policy change) drains the connections of the old one; the default
  // grace is 10 minutes, in which they keep the old filters. A second keeps the tests short.
  const server = new xds.XdsServer({ drainGraceTimeMs: 1_000 });
  server.addService(definition, {
    call: (call, callback) => {
      const san = call.getAuthContext().sslPeerCertificate?.subjectaltname;
      callback(null, Buffer.from(san ?? "plaintext"));
    },
  });
  const credentials = new xds.XdsServerCredentials(grpc.ServerCredentials.createInsecure());
  server.bindAsync(bind, credentials, (error, port) => {
    if (error) {
      console.error(`bind failed: ${error.message}`);
      process.exit(1);
    }
    console.log(`serving ${port}`);
  });
}

function callForever(target) {
  const client = clientFor(target);
  const once = () =>
    client.makeUnaryRequest(
      ECHO_METHOD,
      raw,
      raw,
      Buffer.from("ping"),
      new grpc.Metadata(),
      { deadline: Date.now() + 1_000 },
      (error, reply) => {
        console.log(JSON.stringify({
          code: error ? error.code : 0,
          reply: error ? error.details : reply.toString(),
          at: Date.now(),
        }));
        setTimeout(once, 50);
      },
    );
  once();
}

function clientFor(target) {
  const credentials = target.startsWith("xds:")
    ? new xds.XdsChannelCredentials(grpc.credentials.createInsecure())
    : grpc.credentials.createInsecure();
  return new grpc.Client(target, credentials);
}

/** The last failed call's code and details, said when the first call never succeeds. */
let lastError = "";

function call(client) {
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      ECHO_METHOD,
      raw,
      raw,
      Buffer.from("ping"),
      new grpc.Metadata(),
      { deadline: Date.now() + 1_000 },
      (error) => {
        if (error) lastError = `${error.code} ${error.details}`;
        resolve(error ? error.code : 0);
      },
    );
  });
}

async function load(target, seconds, concurrency) {
  const client = clientFor(target);
  // A client that never gets its config waits silently (NOTES.md): give up, saying the last error.
  const firstBy = Date.now() + 30_000;
  while ((await call(client)) !== 0) {
    if (Date.now() > firstBy) {
      console.error(`no successful call in 30 s; last error: ${lastError}`);
      process.exit(1);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const latencies = [];
  let failed = 0;
  const start = performance.now();
  const end = start + seconds * 1_000;
  const worker = async () => {
    while (performance.now() < end) {
      const t = performance.now();
      if ((await call(client)) === 0) latencies.push(performance.now() - t);
      else failed++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = (performance.now() - start) / 1_000;
  latencies.sort((a, b) => a - b);
  const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
  console.log(JSON.stringify({
    calls: latencies.length,
    failed,
    seconds: elapsed,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
  }));
  process.exit(0);
}

const [mode, arg, seconds, concurrency] = process.argv.slice(2);
xds.register();
if (mode === "server" && arg) serve(arg);
else if (mode === "client" && arg) callForever(arg);
else if (mode === "load" && arg) await load(arg, Number(seconds ?? 10), Number(concurrency ?? 16));
else {
  throw new Error(
    "Usage: proxyless_peer.mjs server IP:PORT | client TARGET | load TARGET SECONDS CONCURRENCY",
  );
}
