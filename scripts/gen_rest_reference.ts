/**
 * Generates `docs/rest-reference.md` from the OpenAPI document that the
 * server serves at `/openapi.json`, so the Markdown reference is as current
 * as the zod schemas behind the document. The output goes through
 * `deno fmt`, so the quality gate's format check agrees with it.
 *
 * Run: `deno run -A scripts/gen_rest_reference.ts --update` to rewrite the
 * file; without `--update` it exits 1 when the committed file is stale.
 */
import {
  describe,
  operationsByTag,
  resolve,
  schemaFields,
  typeName,
  variants,
  whoMayCall,
} from "../api/docs_page.ts";
import type { JsonSchema, OpenApiDocument } from "../api/openapi.ts";
import { openApiDocument } from "../api/resources.ts";

/** Where the reference lives. */
export const REFERENCE_FILE = new URL("../docs/rest-reference.md", import.meta.url);

/** The command that regenerates the reference. */
export const UPDATE_COMMAND = "deno run -A scripts/gen_rest_reference.ts --update";

/** Escapes a table cell: pipes end cells, `<` would open HTML. */
function cell(text: string): string {
  return text.replaceAll("|", "\\|").replaceAll("<", "&lt;").replaceAll("\n", " ");
}

/** A type with every component name in it linked to its section. */
function typeMd(type: string, doc: OpenApiDocument): string {
  return cell(type).replace(
    /\b[A-Z][A-Za-z]+\b/g,
    (name) => name in doc.components.schemas ? `[${name}](#${name.toLowerCase()})` : name,
  );
}

function table(head: string[], rows: string[][]): string {
  return [
    `| ${head.join(" | ")} |`,
    `| ${head.map(() => "---").join(" | ")} |`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");
}

function fieldsMd(schema: JsonSchema, doc: OpenApiDocument): string {
  return variants(schema).map(({ title, schema: variant }) => {
    const rows = schemaFields(variant);
    const head = title ? `When \`${title}\`:\n\n` : "";
    if (rows.length === 0) return `${head}Type: ${typeMd(typeName(variant), doc)}`;
    return head + table(
      ["field", "type", "required", "description"],
      rows.map((r) => [
        `\`${r.name}\``,
        typeMd(r.type, doc),
        r.required ? "yes" : "",
        cell(r.description),
      ]),
    );
  }).join("\n\n");
}

/** Renders the reference (before formatting). */
export function renderReference(doc: OpenApiDocument = openApiDocument()): string {
  const out: string[] = [
    "# REST API reference",
    `<!-- Generated from the OpenAPI document by scripts/gen_rest_reference.ts: do not edit; run \`${UPDATE_COMMAND}\`. -->`,
    `${doc.info.title} ${doc.info.version}. ${doc.info.description}`,
    "The server serves this document as OpenAPI 3.1 at `GET /openapi.json` and as a web page at `GET /docs`. [rest-api.md](rest-api.md) explains the API with examples.",
  ];
  const groups = operationsByTag(doc).filter((g) => g.operations.length > 0);
  out.push(
    "## Operations",
    table(
      ["method", "path", "who", "what"],
      groups.flatMap((g) =>
        g.operations.map((op) => [
          op.method.toUpperCase(),
          `[\`${op.path}\`](#${slug(`${op.method} ${op.path}`)})`,
          cell(op["x-ironmesh-roles"].join(", ")),
          cell(op.summary),
        ])
      ),
    ),
  );
  for (const group of groups) {
    out.push(`## ${group.tag}`, group.description + ".");
    for (const op of group.operations) {
      out.push(`### ${op.method.toUpperCase()} ${op.path}`);
      out.push([op.summary + ".", op.description ?? ""].join(" ").trim());
      out.push(`**Who:** ${whoMayCall(op)}.`);
      if (op.parameters?.length) {
        out.push(
          "**Parameters:**",
          table(
            ["name", "in", "type", "description"],
            op.parameters.map((p) => [
              `\`${p.name}\`${p.required ? " (required)" : ""}`,
              p.in,
              typeMd(typeName(p.schema), doc),
              cell(describe({ ...p.schema, description: p.description })),
            ]),
          ),
        );
      }
      const body = op.requestBody?.content["application/json"].schema;
      if (body) {
        out.push(
          `**Request body** (\`application/json\`): ${typeMd(typeName(body), doc)}`,
          fieldsMd(resolve(doc, body), doc),
        );
      }
      out.push(
        "**Responses:**",
        table(
          ["status", "description", "body", "headers"],
          Object.entries(op.responses).map(([status, r]) => {
            const shared = r.$ref ? doc.components.responses[r.$ref.split("/").pop()!] : undefined;
            const content = r.content ?? shared?.content ?? {};
            return [
              status,
              cell(r.description),
              Object.entries(content).map(([type, c]) =>
                `${typeMd(typeName(c.schema), doc)} (\`${type}\`)`
              ).join(", "),
              Object.keys(r.headers ?? shared?.headers ?? {}).map((h) => `\`${h}\``).join(", "),
            ];
          }),
        ),
      );
    }
  }
  out.push("## Schemas");
  for (
    const [name, schema] of Object.entries(doc.components.schemas).sort(([a], [b]) =>
      a.localeCompare(b)
    )
  ) {
    out.push(`### ${name}`);
    if (schema.description) out.push(schema.description + ".");
    out.push(fieldsMd(schema, doc));
  }
  return out.join("\n\n") + "\n";
}

/** GitHub's heading anchor of `text`. */
function slug(text: string): string {
  return text.toLowerCase().replace(/[^\w\- ]/g, "").replaceAll(" ", "-");
}

/** Formats Markdown as `deno fmt` does, with the repository's settings. */
export async function formatMarkdown(text: string): Promise<string> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--ext=md", "-"],
    cwd: new URL("..", import.meta.url),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const { success, stdout, stderr } = await child.output();
  if (!success) {
    throw new Error(`Cannot format the reference: ${new TextDecoder().decode(stderr)}`);
  }
  return new TextDecoder().decode(stdout);
}

/** The reference as it should be committed. */
export async function referenceMarkdown(): Promise<string> {
  return await formatMarkdown(renderReference());
}

if (import.meta.main) {
  const fresh = await referenceMarkdown();
  if (Deno.args.includes("--update")) {
    await Deno.writeTextFile(REFERENCE_FILE, fresh);
    console.log(`Wrote ${REFERENCE_FILE.pathname}`);
  } else {
    const current = await Deno.readTextFile(REFERENCE_FILE).catch(() => "");
    if (current !== fresh) {
      console.error(`docs/rest-reference.md is stale: run \`${UPDATE_COMMAND}\``);
      Deno.exit(1);
    }
  }
}
