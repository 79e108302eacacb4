/**
 * The quickstart's files (`examples/`) are what a new operator runs first:
 * they must stay valid as the agent configuration and the policy model move.
 */
import assert from "node:assert/strict";
import { parseAgentConfig } from "../core/agent_config.ts";
import { API_VERSION, type PolicyDraft, policySet } from "../core/policy/model.ts";
import { checkPolicy, parsePolicy } from "../core/policy/validate.ts";
import { parseYamlDocuments } from "../core/validate.ts";

const read = (name: string) => Deno.readTextFile(new URL(`../examples/${name}`, import.meta.url));

Deno.test("examples/agent.yaml is a valid agent configuration", async () => {
  const config = parseAgentConfig(await read("agent.yaml"), "examples/agent.yaml");
  assert.deepEqual(config.services.map((s) => [s.name, s.port, s.inboundPort]), [
    ["hello", 8080, 18080],
  ]);
  assert.deepEqual(config.upstreams.map((u) => [u.service, u.localPort]), [
    ["hello.default", 19080],
  ]);
});

Deno.test("examples/policies.yaml applies cleanly to the quickstart's hello service", async () => {
  const docs = parseYamlDocuments(await read("policies.yaml"), "examples/policies.yaml");
  const drafts = docs.map((d) => {
    const parsed = parsePolicy(d.value);
    assert.deepEqual(parsed.problems, [], `document ${d.index + 1}`);
    return parsed.draft as PolicyDraft;
  });
  assert.deepEqual(drafts.map((d) => d.kind), ["DestinationPolicy", "TrafficRoute", "RateLimit"]);
  const stamp = { revision: 1, createdAt: "", updatedAt: "", updatedBy: "" };
  const policies = policySet(
    drafts.map((d) => ({ ...d, apiVersion: API_VERSION, metadata: { ...d.metadata, ...stamp } })),
  );
  const services = new Map([["default/hello", {
    ports: [{ port: 8080, protocol: "http" as const }],
  }]]);
  for (const draft of drafts) {
    assert.deepEqual(checkPolicy(draft, { services, policies }), { errors: [], warnings: [] });
  }
});
