/**
 * The `server.yaml` that install.sh writes shows the settings commented out with their defaults;
 * those defaults must be the server's own (core/server_config.ts), or the file misleads.
 */
import assert from "node:assert/strict";
import { serverConfigSchema } from "../core/server_config.ts";
import { ROOT } from "./harness.ts";

Deno.test("install.sh: the commented defaults of server.yaml are the server's defaults", async () => {
  const script = await Deno.readTextFile(`${ROOT}install.sh`);
  const body = /^server_yaml\(\) \{\n([\s\S]*?)\n\}/m.exec(script)?.[1];
  assert.ok(body, "install.sh has server_yaml()");
  const defaults = serverConfigSchema.parse({}) as Record<string, unknown>;
  const shown = [...body.matchAll(/^# (\w+): (\S+)/gm)]
    .filter(([, key]) => Object.hasOwn(defaults, key!) && key !== "dataDir");
  assert.ok(shown.length >= 3, `found ${shown.length} commented settings`);
  for (const [line, key, value] of shown) {
    const fallback = defaults[key!];
    // Examples (advertise, tlsSan) have no default to agree with.
    if (
      fallback === undefined || fallback === "" || (Array.isArray(fallback) && !fallback.length)
    ) {
      continue;
    }
    assert.equal(value, String(fallback), `install.sh: "${line}"`);
  }
});
