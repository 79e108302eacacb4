/**
 * A gRPC service and a proxyless client for the quickstart: traffic through
 * the mesh on a machine without Envoy. The client finds the service the way
 * any `@grpc/grpc-js-xds` application does, by dialing `xds:///NAME.NAMESPACE`
 * through the xDS endpoint of its host's agent: the agent relays to the
 * server, which answers with the service's healthy instances, and the client
 * balances over them itself (no sidecar in the path). The calls are
 * plaintext: this bootstrap names no certificate provider, so the server
 * sends plaintext clusters (mesh mTLS for proxyless apps: docs/xds.md).
 *
 *   deno run -A examples/echo_grpc.ts serve PORT         # prints "echo listening on 127.0.0.1:PORT"
 *   deno run -A examples/echo_grpc.ts call echo.default [--agent-dir DIR] [--count N] [--wait 30s]
 *
 * `call` reads the agent's local xDS address from `DIR/agent.json` (default
 * `./ironmesh-agent-data`), sends N calls (default 3), prints who answered each
 * one, and exits 0; it waits up to `--wait` for the first answer (the first
 * call waits while the client fetches its configuration), and exits 1 with
 * the reason when none came.
 */
import * as grpc from "@grpc/grpc-js";
import * as grpcXds from "@grpc/grpc-js-xds";
import { parseArgs } from "node:util";

/** The one method: the request's bytes come back, prefixed with who answered. */
const METHOD = "/ironmesh.example.Echo/Say";
const raw = (b: Buffer) => b;
const definition = {
  path: METHOD,
  requestStream: false,
  responseStream: false,
  requestSerialize: raw,
  requestDeserialize: raw,
  responseSerialize: raw,
  responseDeserialize: raw,
};

function serve(port: number): void {
  const server = new grpc.Server();
  // Port 0 picks a free port: the name says the one bound.
  let name = `echo on 127.0.0.1:${port}`;
  server.addService({ say: definition }, {
    say: (call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) =>
      done(null, Buffer.from(`${name}: ${call.request.toString()}`)),
  });
  server.bindAsync(
    `127.0.0.1:${port}`,
    grpc.ServerCredentials.createInsecure(),
    (error, bound) => {
      if (error) {
        console.error(`Cannot listen on 127.0.0.1:${port}: ${error.message}`);
        Deno.exit(1);
      }
      name = `echo on 127.0.0.1:${bound}`;
      console.log(`echo listening on 127.0.0.1:${bound}`);
    },
  );
}

function say(client: grpc.Client, text: string, deadlineMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      METHOD,
      raw,
      raw,
      Buffer.from(text),
      { deadline: Date.now() + deadlineMs },
      (error, reply) => error ? reject(error) : resolve(reply!.toString()),
    );
  });
}

async function call(target: string, options: { agentDir: string; count: number; waitMs: number }) {
  let xds: string;
  try {
    xds = JSON.parse(await Deno.readTextFile(`${options.agentDir}/agent.json`)).xds;
  } catch (error) {
    console.error(
      `Cannot read the agent's xDS address from ${options.agentDir}/agent.json (${
        (error as Error).message
      }): is the agent running with --data-dir ${options.agentDir}?`,
    );
    Deno.exit(1);
  }
  // What every proxyless client needs: where its xDS server is, and who it is.
  Deno.env.set(
    "GRPC_XDS_BOOTSTRAP_CONFIG",
    JSON.stringify({
      xds_servers: [{
        server_uri: xds,
        channel_creds: [{ type: "insecure" }],
        server_features: ["xds_v3"],
      }],
      node: { id: `echo-client-${Deno.pid}`, locality: {} },
    }),
  );
  grpcXds.register();
  const client = new grpc.Client(`xds:///${target}`, grpc.credentials.createInsecure());
  const deadline = Date.now() + options.waitMs;
  let last = "";
  for (let i = 1; i <= options.count;) {
    try {
      console.log(await say(client, `hello ${i}`, Math.max(1_000, deadline - Date.now())));
      i++;
    } catch (error) {
      last = (error as Error).message;
      if (Date.now() >= deadline) {
        console.error(`No answer from xds:///${target} via ${xds}: ${last}`);
        Deno.exit(1);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  client.close();
  Deno.exit(0);
}

const { positionals, values } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    "agent-dir": { type: "string", default: "./ironmesh-agent-data" },
    count: { type: "string", default: "3" },
    wait: { type: "string", default: "30s" },
  },
});
const [mode, arg] = positionals;
if (mode === "serve" && arg !== undefined && /^\d+$/.test(arg)) {
  serve(Number(arg));
} else if (mode === "call" && arg !== undefined && /^[a-z0-9-]+\.[a-z0-9-]+$/.test(arg)) {
  const wait = values.wait.match(/^(\d+)s$/);
  const count = Number(values.count);
  if (!wait || !Number.isInteger(count) || count < 1) {
    console.error('--wait takes seconds such as "30s", --count a whole number from 1');
    Deno.exit(2);
  }
  await call(arg, { agentDir: values["agent-dir"], count, waitMs: Number(wait[1]) * 1000 });
} else {
  console.error(
    "Usage: echo_grpc.ts serve PORT | echo_grpc.ts call NAME.NAMESPACE [--agent-dir DIR] [--count N] [--wait 30s]",
  );
  Deno.exit(2);
}
