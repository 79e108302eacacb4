/**
 * `deno task bench --only proxyless`: proxyless gRPC calls through the mesh
 * over mTLS against plaintext, same machine, same run (issue 15).
 *
 * 1. Starts the real server (`--push-debounce 10ms`) and one agent with a
 *    gRPC service `echo`; the agent writes `grpc-bootstrap.json`.
 * 2. For each of STRICT (mTLS), PERMISSIVE (plaintext on both sides) and
 *    STRICT again (so a drift of the machine shows as a difference between
 *    the two mTLS runs): writes MeshConfig `mtls.mode`, starts a fresh
 *    proxyless gRPC server (`tests/proxyless_peer.mjs server`,
 *    `@grpc/grpc-js-xds` 1.14 `XdsServer` with `XdsServerCredentials`, under
 *    Node.js) with that bootstrap, which serves once its server Listener
 *    came, and runs the load client (`proxyless_peer.mjs load`:
 *    `XdsChannelCredentials`, `--concurrency` calls in flight on one
 *    channel) for `--seconds`.
 *
 * Prints a markdown table (calls/s, p50, p99, failed calls); progress goes to
 * stderr. Options: `--seconds N` (default 10), `--concurrency N` (default 16).
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { markdownTable } from "./report.ts";
import { launchServer } from "./server_process.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const PEER = `${ROOT}tests/proxyless_peer.mjs`;

const { values } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "10" },
    concurrency: { type: "string", default: "16" },
  },
});
const seconds = Number(values.seconds);
const concurrency = Number(values.concurrency);

function log(text: string): void {
  console.error(`[proxyless] ${text}`);
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`Timed out waiting for ${what}`);
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "0.0.0.0", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

interface LoadResult {
  calls: number;
  failed: number;
  seconds: number;
  p50Ms: number;
  p99Ms: number;
}

const dataDir = await Deno.makeTempDir({ prefix: "ironmesh-bench-proxyless-" });
const agentDir = await Deno.makeTempDir({ prefix: "ironmesh-bench-proxyless-agent-" });
const server = await launchServer({ dataDir, args: ["--push-debounce", "10ms"] });
const api = async (method: string, path: string, body?: unknown) => {
  const res = await fetch(`http://${server.info.http}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${server.adminToken}`,
      ...(body ? { "content-type": "application/json" } : {}),
    },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
};
const children: Deno.ChildProcess[] = [];
try {
  const port = freePort();
  const token = (await api("POST", "/v1/tokens", { kind: "join", serviceAccount: "bench" })).token;
  await Deno.writeTextFile(
    `${agentDir}/agent.yaml`,
    `node: {name: bench-1, address: 127.0.0.1}\nheartbeat: {interval: 1s}\nservices:\n  - {name: echo, port: ${port}, protocol: grpc}\n`,
  );
  const agent = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${ROOT}cmd/main.ts`,
      "agent",
      "--server",
      `https://${server.info.https}`,
      "--join-token",
      token,
      "--config",
      `${agentDir}/agent.yaml`,
      "--data-dir",
      agentDir,
      "--xds-server",
      server.info.grpc,
      "--local-xds-addr",
      "127.0.0.1:0",
      "--dns-addr",
      "127.0.0.1:0",
      "--metrics-addr",
      "127.0.0.1:0",
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  children.push(agent);
  const bootstrap = await until("the agent's grpc-bootstrap.json", async () => {
    const state = JSON.parse(await Deno.readTextFile(`${agentDir}/agent.json`));
    return typeof state.grpcBootstrap === "string" ? state.grpcBootstrap as string : undefined;
  });
  const env = { GRPC_XDS_BOOTSTRAP: bootstrap, GRPC_XDS_EXPERIMENTAL_RBAC: "true" };
  /** A fresh proxyless server (the old one killed first): it serves once its Listener came. */
  let echo: Deno.ChildProcess | null = null;
  const startEcho = async () => {
    if (echo) {
      echo.kill("SIGKILL");
      await echo.status;
      children.splice(children.indexOf(echo), 1);
    }
    echo = new Deno.Command("node", {
      args: [PEER, "server", `0.0.0.0:${port}`],
      env,
      stdout: "piped",
      stderr: "null",
    }).spawn();
    children.push(echo);
    const reader = echo.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    while (!/serving \d+/.test(seen)) {
      const { value, done } = await reader.read();
      if (done) throw new Error("The proxyless server exited before serving");
      seen += value;
    }
    reader.releaseLock();
    log(`proxyless server serving on ${port}`);
  };

  const run = async (label: string): Promise<string[]> => {
    const out = await new Deno.Command("node", {
      args: [PEER, "load", "xds:///echo.default", String(seconds), String(concurrency)],
      env,
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(`The ${label} load client failed: ${new TextDecoder().decode(out.stderr)}`);
    }
    const result = JSON.parse(new TextDecoder().decode(out.stdout).trim()) as LoadResult;
    log(`${label}: ${JSON.stringify(result)}`);
    return [
      label,
      Math.round(result.calls / result.seconds).toLocaleString("en-US"),
      result.p50Ms.toFixed(2),
      result.p99Ms.toFixed(2),
      String(result.failed),
    ];
  };
  const mode = (m: string) =>
    api("PUT", "/v1/policies/meshconfig/mesh", {
      apiVersion: "ironmesh.io/v1",
      kind: "MeshConfig",
      metadata: { name: "mesh" },
      spec: { mtls: { mode: m } },
    });
  // Each mode gets a fresh server and load client, which read the Listener and clusters of
  // that mode at their start: a run measures calls, not how a running server takes a mode change
  // (grpc-js-xds 1.14.1 ignored one until the server's stat prefix named the transport; docs/xds.md).
  const rows: string[][] = [];
  for (
    const [m, label] of [["STRICT", "mTLS (STRICT)"], ["PERMISSIVE", "plaintext (PERMISSIVE)"], [
      "STRICT",
      "mTLS (STRICT), again",
    ]]
  ) {
    await mode(m!);
    await new Promise((r) => setTimeout(r, 1_000));
    await startEcho();
    rows.push(await run(label!));
  }
  console.log(
    `Proxyless gRPC unary calls, one XdsChannelCredentials channel, ${concurrency} in flight, ${seconds} s each, Node.js ${
      new TextDecoder().decode(
        (await new Deno.Command("node", { args: ["--version"] }).output()).stdout,
      )
        .trim()
    } peers:\n`,
  );
  console.log(markdownTable(["transport", "calls/s", "p50 ms", "p99 ms", "failed"], rows));
} finally {
  for (const c of children.reverse()) {
    try {
      c.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await c.status;
  }
  await server.stop();
  await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  await Deno.remove(agentDir, { recursive: true }).catch(() => {});
}
