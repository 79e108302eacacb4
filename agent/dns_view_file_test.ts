import assert from "node:assert/strict";
import { jsonLogger } from "../core/log.ts";
import { dnsViewPath, loadView, type RegistryView, ViewFile } from "./dns_view_file.ts";

function logLines(): { log: ReturnType<typeof jsonLogger>; lines: string[] } {
  const lines: string[] = [];
  return { log: jsonLogger((l) => lines.push(l), { level: "debug" }), lines };
}

const view = (port: number): RegistryView => ({
  services: [{ namespace: "default", name: "web" }, { namespace: "default", name: "idle" }],
  instances: [{ namespace: "default", service: "web", address: "::1", port, labels: { v: "1" } }],
  subsets: [{ namespace: "default", service: "web", name: "v1", labels: { v: "1" } }],
});

Deno.test("ViewFile writes the latest view (mode 0600) and loadView() reads it back", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = dnsViewPath(dir);
    const { log } = logLines();
    assert.equal(await loadView(path, log), undefined, "no file yet: no view");
    const file = new ViewFile(path, log);
    for (let port = 1; port <= 50; port++) file.save(view(port));
    await file.flush();
    assert.deepEqual(await loadView(path, log), view(50));
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.equal((await Deno.stat(`${dir}/dns`)).mode! & 0o777, 0o700);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadView() ignores, with a warning, a file it cannot read", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = dnsViewPath(dir);
    await Deno.mkdir(`${dir}/dns`);
    for (
      const [text, why] of [
        ["{", /JSON/],
        [JSON.stringify({ format: 99, services: [], instances: [], subsets: [] }), /format 99/],
        [
          JSON.stringify({ format: 1, services: [], instances: [{ port: "x" }], subsets: [] }),
          /instances: expected/,
        ],
      ] as const
    ) {
      await Deno.writeTextFile(path, text);
      const { log, lines } = logLines();
      assert.equal(await loadView(path, log), undefined);
      assert.match(lines.join("\n"), /Ignoring an unreadable DNS view/);
      assert.match(lines.join("\n"), why);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
