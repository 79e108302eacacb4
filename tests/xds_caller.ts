/**
 * A proxyless gRPC client as a separate program, for end-to-end tests: it
 * dials `xds:///<target>` through the xDS server named by
 * `GRPC_XDS_BOOTSTRAP_CONFIG` (an agent's local endpoint), calls the echo
 * method every 20 ms with a 1 s deadline, and prints a JSON line of counts
 * every 200 ms: `{"ok": N, "failed": N, "waiting": N, "byBackend": {...},
 * "lastAt": {...}, "lastError": "…"}`, `lastAt` being the time (ms since the
 * epoch) of each backend's latest answer. Calls before the first success (the
 * client has no configuration yet) count as `waiting`, not as failures.
 *
 * Run: `deno run -A tests/xds_caller.ts echo.default`.
 */
import * as grpc from "@grpc/grpc-js";
import * as grpcXds from "@grpc/grpc-js-xds";
import { echo } from "./echo_backend.ts";

const target = Deno.args[0];
if (target === undefined) throw new Error("Usage: xds_caller.ts SERVICE.NAMESPACE");
grpcXds.register();
const client = new grpc.Client(`xds:///${target}`, grpc.credentials.createInsecure());
const counts = {
  ok: 0,
  failed: 0,
  waiting: 0,
  byBackend: {} as Record<string, number>,
  lastAt: {} as Record<string, number>,
  lastError: "",
};
setInterval(() => console.log(JSON.stringify(counts)), 200);
Deno.addSignalListener("SIGTERM", () => {
  console.log(JSON.stringify(counts));
  Deno.exit(0);
});
while (true) {
  const result = await echo(client);
  if (result.ok) {
    counts.ok++;
    counts.byBackend[result.name] = (counts.byBackend[result.name] ?? 0) + 1;
    counts.lastAt[result.name] = Date.now();
  } else if (counts.ok === 0) {
    counts.waiting++;
  } else {
    counts.failed++;
    counts.lastError = `${grpc.status[result.code]}: ${result.details}`;
  }
  await new Promise((r) => setTimeout(r, 20));
}
