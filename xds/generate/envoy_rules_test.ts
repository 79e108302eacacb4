import assert from "node:assert/strict";
import { ruleProblems } from "./envoy_rules.ts";
import type { ProxySnapshot, Resource } from "./model.ts";
import { edsCluster } from "./resources.ts";
import { contentVersion } from "./canonical.ts";

const CLUSTER_URL = "type.googleapis.com/envoy.config.cluster.v3.Cluster";

function cluster(name: string, body = edsCluster(name, { connectTimeoutMs: 5_000 })): Resource {
  return { name, typeUrl: CLUSTER_URL, body, version: contentVersion(body) };
}

function snapshot(clusters: Resource[]): ProxySnapshot {
  return { clusters, endpoints: [], listeners: [], routes: [], secrets: [] };
}

Deno.test("ruleProblems names the resource, the field and the rule Envoy would refuse", () => {
  const good = cluster("outbound|80||web.shop");
  const bad = cluster("outbound|81||web.shop", { ...good.body, connect_timeout: "0s" });
  assert.deepEqual(ruleProblems(snapshot([good, bad])), [
    'envoy.config.cluster.v3.Cluster "outbound|81||web.shop": connect_timeout: must be > 0s, got 0s [duration.gt]',
  ]);
});

Deno.test("ruleProblems checks a clean version once and a broken one every time", () => {
  const good = cluster("outbound|80||web.shop");
  const bad = cluster("outbound|81||web.shop", { ...good.body, connect_timeout: "0s" });
  const checked = new Set<string>();
  assert.equal(ruleProblems(snapshot([good, bad]), checked).length, 1);
  assert.deepEqual([...checked], [`${CLUSTER_URL}|${good.version}`]);
  assert.equal(ruleProblems(snapshot([good, bad]), checked).length, 1);
  // A clean version in the set is trusted: the set is keyed by content.
  const forged = { ...bad, version: good.version };
  assert.deepEqual(ruleProblems(snapshot([forged]), checked), []);
});
