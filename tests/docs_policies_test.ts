/**
 * The policy examples of `docs/policies.md` are what operators copy, so they
 * must stay valid as the model moves. Every ```yaml block that holds
 * `apiVersion: ironmesh.io/v1` is read as `ironmesh apply -f` reads a file
 * (`---`-separated documents): each document must pass `parsePolicy` with no
 * problem, and the block as a whole must pass `checkPolicy` without errors,
 * as the batch `apply` would send (on a mesh holding the doc's other
 * examples, so that a TrafficRoute may use the subsets of the
 * DestinationPolicy example). A block fenced ```yaml invalid is an example of
 * a mistake: at least one of its documents must be refused.
 */
import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import {
  type AnyPolicy,
  API_VERSION,
  POLICY_KINDS,
  type PolicyDraft,
  policyKey,
  policySet,
} from "../core/policy/model.ts";
import { checkPolicy, parsePolicy } from "../core/policy/validate.ts";

const DOC = new URL("../docs/policies.md", import.meta.url);
const DOC_NAME = "docs/policies.md";

/** A fenced YAML block and where it starts (1-based line of its first content line). */
interface Block {
  line: number;
  text: string;
  invalid: boolean;
}

function yamlBlocks(markdown: string): Block[] {
  const lines = markdown.split("\n");
  const out: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```yaml(\s+invalid)?\s*$/.exec(lines[i]!);
    if (!open) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !/^```\s*$/.test(lines[end]!)) end++;
    out.push({
      line: start + 1,
      text: lines.slice(start, end).join("\n"),
      invalid: open[1] !== undefined,
    });
    i = end;
  }
  return out.filter((b) => b.text.includes(`apiVersion: ${API_VERSION}`));
}

/** A block's documents as plain values, each with the line it starts on. */
function documents(block: Block): { line: number; value: unknown }[] {
  const lineOf = (offset: number) =>
    block.line + block.text.slice(0, offset).split("\n").length - 1;
  return parseAllDocuments(block.text).flatMap((doc) => {
    assert.deepEqual(
      doc.errors.map((e) => e.message),
      [],
      `${DOC_NAME}:${lineOf(doc.range[0])}: not valid YAML`,
    );
    const value = doc.toJS();
    return value === null ? [] : [{ line: lineOf(doc.contents?.range[0] ?? doc.range[0]), value }];
  });
}

function stored(draft: PolicyDraft): AnyPolicy {
  const at = "2026-01-01T00:00:00.000Z";
  return {
    apiVersion: API_VERSION,
    kind: draft.kind,
    metadata: { ...draft.metadata, revision: 1, createdAt: at, updatedAt: at, updatedBy: "docs" },
    spec: draft.spec,
  } as AnyPolicy;
}

const keyOf = (d: PolicyDraft) => policyKey(d.kind, d.metadata.namespace, d.metadata.name);

Deno.test("docs/policies.md: every policy example is valid, alone and as the batch of its block", async () => {
  const blocks = yamlBlocks(await Deno.readTextFile(DOC));
  const valid = blocks.filter((b) => !b.invalid);
  assert.ok(valid.length >= 5, `expected the examples of ${DOC_NAME}, found ${valid.length}`);

  const failures: string[] = [];
  const drafts = new Map<Block, PolicyDraft[]>();
  for (const block of valid) {
    const list: PolicyDraft[] = [];
    for (const doc of documents(block)) {
      const parsed = parsePolicy(doc.value);
      if (parsed.draft) list.push(parsed.draft);
      for (const p of parsed.problems) {
        failures.push(`${DOC_NAME}:${doc.line}: ${p.pointer || "/"}: ${p.message}`);
      }
    }
    drafts.set(block, list);
  }
  assert.deepEqual(failures, [], "policy examples that parsePolicy refuses");
  const refusals: string[] = [];

  const kinds = new Set([...drafts.values()].flat().map((d) => d.kind));
  assert.deepEqual(
    POLICY_KINDS.filter((k) => !kinds.has(k)),
    [],
    "every kind has at least one example",
  );

  // Every example of the doc, the last one of a key winning: the mesh a block is applied to.
  const everything = new Map<string, PolicyDraft>();
  for (const list of drafts.values()) for (const d of list) everything.set(keyOf(d), d);
  for (const [block, list] of drafts) {
    const mesh = new Map(everything);
    for (const d of list) mesh.set(keyOf(d), d);
    const ctx = { services: new Map(), policies: policySet([...mesh.values()].map(stored)) };
    for (const d of list) {
      for (const e of checkPolicy(d, ctx).errors) {
        refusals.push(`${DOC_NAME}:${block.line}: ${keyOf(d)}: ${e.pointer || "/"}: ${e.message}`);
      }
    }
  }
  assert.deepEqual(refusals, [], "policy examples that apply would refuse");
});

Deno.test("docs/policies.md: every example of a mistake is refused", async () => {
  const blocks = yamlBlocks(await Deno.readTextFile(DOC)).filter((b) => b.invalid);
  for (const block of blocks) {
    const problems = documents(block).flatMap((doc) => parsePolicy(doc.value).problems);
    assert.ok(
      problems.length > 0,
      `${DOC_NAME}:${block.line}: a \`yaml invalid\` block that parsePolicy accepts`,
    );
  }
});

Deno.test("docs/policies.md says what every policy kind guarantees on HTTP and on TCP ports", async () => {
  const markdown = await Deno.readTextFile(DOC);
  const start = markdown.indexOf("\n## What each policy guarantees, on HTTP and TCP services\n");
  assert.ok(start >= 0, `${DOC_NAME} has no guarantees section`);
  const section = markdown.slice(start + 1, markdown.indexOf("\n## ", start + 1));
  const rows = section.split("\n").filter((l) => l.startsWith("| ") && !l.startsWith("| ---"));
  const [header, ...body] = rows.map((r) => r.split("|").slice(1, -1).map((c) => c.trim()));
  assert.deepEqual(header, ["policy", "on an HTTP, HTTP/2 or gRPC port", "on a `tcp` port"]);
  for (const kind of POLICY_KINDS) {
    const row = body.find((cells) => cells[0]!.split(" ")[0] === kind);
    assert.ok(row, `${DOC_NAME}: no row for ${kind}`);
    assert.ok(row.every((cell) => cell.length > 0), `${DOC_NAME}: an empty cell for ${kind}`);
  }
  assert.match(section, /pathNormalization/);
});
