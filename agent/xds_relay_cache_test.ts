import assert from "node:assert/strict";
import { jsonLogger, silentLogger } from "../core/log.ts";
import { MAX_NODES, nodeKey, XdsCache } from "./xds_relay_cache.ts";

const T = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const bytes = (text: string) => new TextEncoder().encode(text);
const names = (cache: XdsCache, node: string) => [...(cache.sotw(node, T)?.resources.keys() ?? [])];

Deno.test("XdsCache: a state-of-the-world response replaces the names it answered", () => {
  const cache = new XdsCache({ log: silentLogger });
  cache.putSotw("n", T, "*", "1", [{ name: "a", any: bytes("a") }, { name: "b", any: bytes("b") }]);
  assert.deepEqual(names(cache, "n"), ["a", "b"]);
  // An answer for {b, c} without b: b no longer exists; a was not asked about and stays.
  cache.putSotw("n", T, new Set(["b", "c"]), "2", [{ name: "c", any: bytes("c") }]);
  assert.deepEqual(names(cache, "n").sort(), ["a", "c"]);
  assert.equal(cache.sotw("n", T)!.version, "2");
  // A wildcard answer replaces everything.
  cache.putSotw("n", T, "*", "3", [{ name: "d", any: bytes("d") }]);
  assert.deepEqual(names(cache, "n"), ["d"]);
  assert.equal(cache.sotw("other", T), undefined);
});

Deno.test("XdsCache: delta resources keep their versions; removals delete", () => {
  const cache = new XdsCache({ log: silentLogger });
  cache.applyDelta("n", T, [{ name: "a", version: "1", bytes: bytes("a") }], []);
  cache.applyDelta("n", T, [{ name: "b", version: "2", bytes: bytes("b") }], ["a"]);
  assert.deepEqual([...cache.delta("n", T)].map(([k, v]) => [k, v.version]), [["b", "2"]]);
  assert.equal(cache.delta("other", T).size, 0);
});

Deno.test("XdsCache keeps the most recently used nodes, at most MAX_NODES", () => {
  const cache = new XdsCache({ log: silentLogger });
  for (let i = 0; i <= MAX_NODES; i++) cache.putSotw(`n${i}`, T, "*", "1", []);
  assert.equal(cache.size, MAX_NODES);
  assert.equal(cache.sotw("n0", T), undefined, "the oldest went");
  assert.ok(cache.sotw(`n${MAX_NODES}`, T));
  assert.notEqual(nodeKey(bytes("x")), nodeKey(bytes("y")));
  assert.equal(nodeKey(null), "");
});

Deno.test("XdsCache survives a restart through its file, and ignores an unreadable one", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/xds/cache.json`;
  try {
    const cache = new XdsCache({ path, log: silentLogger, flushDelayMs: 10_000 });
    cache.putSotw("n", T, "*", "7", [{ name: "a", any: bytes("A") }]);
    cache.applyDelta("n", T, [{ name: "b", version: "3", bytes: bytes("B") }], []);
    await cache.flush();
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    const again = new XdsCache({ path, log: silentLogger });
    await again.load();
    assert.equal(again.sotw("n", T)!.version, "7");
    assert.deepEqual(again.sotw("n", T)!.resources.get("a"), bytes("A"));
    assert.deepEqual(again.delta("n", T).get("b"), { version: "3", bytes: bytes("B") });

    await Deno.writeTextFile(path, "{not json");
    const lines: string[] = [];
    const broken = new XdsCache({ path, log: jsonLogger((l) => lines.push(l)) });
    await broken.load();
    assert.equal(broken.size, 0);
    assert.ok(lines.some((l) => l.includes("Ignoring an unreadable xDS cache")), lines.join("\n"));
    await new XdsCache({ path: `${dir}/none.json`, log: silentLogger }).load();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
