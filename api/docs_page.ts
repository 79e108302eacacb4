/**
 * The `/docs` page: the OpenAPI document rendered on the server into one
 * self-contained HTML page. No script or style comes from a CDN, because
 * the hosts that run a mesh are often air-gapped. The field tables are shared
 * with `scripts/gen_rest_reference.ts`, so the page and the Markdown
 * reference say the same thing.
 */
import type { JsonSchema, OpenApiDocument, OperationObject } from "./openapi.ts";

/** One row of a schema's field table. */
export interface SchemaField {
  /** Dotted path: `ports[].port` for a field of the items of `ports`. */
  name: string;
  type: string;
  required: boolean;
  /** The description, then defaults and limits, in sentences. */
  description: string;
}

const REF = "#/components/schemas/";

/** The component name of a `$ref`, or `undefined`. */
export function refName(schema: JsonSchema): string | undefined {
  return typeof schema.$ref === "string" && schema.$ref.startsWith(REF)
    ? schema.$ref.slice(REF.length)
    : undefined;
}

function sub(value: unknown): JsonSchema {
  return typeof value === "object" && value !== null ? value as JsonSchema : {};
}

/** A short type for a schema: `string`, `Service[]`, `"a" | "b"`, `map<string, string>`. */
export function typeName(schema: JsonSchema): string {
  const ref = refName(schema);
  if (ref) return ref;
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  const union = schema.anyOf ?? schema.oneOf;
  if (union) return union.map((s) => typeName(sub(s))).join(" | ");
  if (Array.isArray(schema.type)) return schema.type.join(" | ");
  switch (schema.type) {
    case "array":
      return `${wrap(typeName(sub(schema.items)))}[]`;
    case "object":
      return typeof schema.additionalProperties === "object"
        ? `map<string, ${typeName(schema.additionalProperties)}>`
        : "object";
    case "string":
      return schema.format ? `string (${schema.format})` : "string";
    case undefined:
      return "any";
    default:
      return schema.type;
  }
}

function wrap(type: string): string {
  return type.includes(" | ") ? `(${type})` : type;
}

/** Defaults and limits of a schema, as short sentences. */
export function constraints(schema: JsonSchema): string[] {
  const out: string[] = [];
  if (schema.default !== undefined) out.push(`Default: \`${JSON.stringify(schema.default)}\`.`);
  const range = (min: unknown, max: unknown, unit: string) => {
    if (min !== undefined && max !== undefined) out.push(`${min} to ${max}${unit}.`);
    else if (min !== undefined) out.push(`At least ${min}${unit}.`);
    else if (max !== undefined) out.push(`At most ${max}${unit}.`);
  };
  range(schema.minimum, schema.maximum, "");
  range(schema.minLength, schema.maxLength, " characters");
  range(schema.minItems, schema.maxItems, " items");
  if (schema.pattern) out.push(`Pattern: \`${schema.pattern}\`.`);
  return out;
}

/** A schema's description, then its defaults and limits, as sentences. */
export function describe(schema: JsonSchema): string {
  // An array of described items (`addresses`: IP literals) says what its items are.
  const description = schema.description ?? sub(schema.items).description;
  const text = description ? [ensurePeriod(description)] : [];
  return [...text, ...constraints(schema)].join(" ");
}

function ensurePeriod(text: string): string {
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

function isInlineObject(schema: JsonSchema): boolean {
  return schema.type === "object" && schema.properties !== undefined;
}

/**
 * Flattens an object schema into field rows: inline objects and arrays of
 * them are expanded (`check.status`, `ports[].port`); a referenced schema is
 * named by its type, not expanded.
 */
export function schemaFields(schema: JsonSchema, prefix = ""): SchemaField[] {
  const rows: SchemaField[] = [];
  const required = new Set(schema.required ?? []);
  for (const [key, value] of Object.entries(schema.properties ?? {})) {
    const field = sub(value);
    const name = `${prefix}${key}`;
    rows.push({
      name,
      type: typeName(field),
      required: required.has(key),
      description: describe(field),
    });
    if (isInlineObject(field)) rows.push(...schemaFields(field, `${name}.`));
    const items = sub(field.items);
    if (field.type === "array" && isInlineObject(items)) {
      rows.push(...schemaFields(items, `${name}[].`));
    }
  }
  return rows;
}

/** The alternatives of a schema: its inline `oneOf` objects, titled by their constant field. */
export function variants(schema: JsonSchema): { title: string; schema: JsonSchema }[] {
  const options = (schema.oneOf ?? []).map(sub);
  if (options.length === 0 || !options.every(isInlineObject)) return [{ title: "", schema }];
  return options.map((option) => {
    const constant = Object.entries(option.properties ?? {}).find(([, p]) =>
      sub(p).const !== undefined
    );
    const title = constant
      ? `${constant[0]}: ${JSON.stringify(sub(constant[1]).const)}`
      : option.description ?? "";
    return { title, schema: option };
  });
}

/** Resolves a `$ref` to a component schema (one level), or returns the schema itself. */
export function resolve(doc: OpenApiDocument, schema: JsonSchema): JsonSchema {
  const name = refName(schema);
  return name ? doc.components.schemas[name] ?? schema : schema;
}

/** The operations of the document by tag, in the document's tag order. */
export function operationsByTag(
  doc: OpenApiDocument,
): { tag: string; description: string; operations: (OperationObject & OpRef)[] }[] {
  return doc.tags.map((tag) => ({
    tag: tag.name,
    description: tag.description,
    operations: Object.entries(doc.paths).flatMap(([path, methods]) =>
      Object.entries(methods).filter(([, op]) => op.tags.includes(tag.name)).map((
        [method, op],
      ) => ({ ...op, method, path }))
    ),
  }));
}

/** Where an operation lives. */
export interface OpRef {
  method: string;
  path: string;
}

function roles(op: OperationObject): string {
  const names = op["x-ironmesh-roles"];
  return `${names.length === 1 ? "role" : "roles"} ${names.join(", ")}`;
}

/** Who may call an operation, in words. */
export function whoMayCall(op: OperationObject): string {
  switch (op["x-ironmesh-access"]) {
    case "public":
      return "public: no credentials";
    case "mtls":
      return "a mesh certificate over mutual TLS";
    case "read":
    case "agent":
      return `${roles(op)} (or a mesh certificate over mutual TLS)`;
    default:
      return roles(op);
  }
}

// ---------------------------------------------------------------------------
// HTML.
// ---------------------------------------------------------------------------

function esc(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;");
}

/** Escapes text and turns `code` spans into `<code>`. */
function prose(text: string): string {
  return esc(text).replace(/`([^`]+)`/g, "<code>$1</code>");
}

/** A type name with every component name in it linked to its schema. */
function typeHtml(type: string, doc: OpenApiDocument): string {
  return esc(type).replace(
    /\b[A-Z][A-Za-z]+\b/g,
    (name) => name in doc.components.schemas ? `<a href="#schema-${name}">${name}</a>` : name,
  );
}

function fieldsTable(schema: JsonSchema, doc: OpenApiDocument): string {
  return variants(schema).map(({ title, schema: variant }) => {
    const rows = schemaFields(variant);
    const head = title ? `<p class="variant">When <code>${esc(title)}</code>:</p>` : "";
    if (rows.length === 0) return `${head}<p>Type: ${typeHtml(typeName(variant), doc)}</p>`;
    return `${head}<table><thead><tr><th>Field</th><th>Type</th><th>Required</th><th>Description</th></tr></thead><tbody>${
      rows.map((r) =>
        `<tr><td><code>${esc(r.name)}</code></td><td>${typeHtml(r.type, doc)}</td><td>${
          r.required ? "yes" : ""
        }</td><td>${prose(r.description)}</td></tr>`
      ).join("")
    }</tbody></table>`;
  }).join("");
}

function operationHtml(op: OperationObject & OpRef, doc: OpenApiDocument): string {
  const parts: string[] = [];
  if (op.description) parts.push(`<p>${prose(op.description)}</p>`);
  parts.push(`<p class="who"><strong>Who:</strong> ${esc(whoMayCall(op))}</p>`);
  if (op.parameters?.length) {
    parts.push(
      `<h4>Parameters</h4><table><thead><tr><th>Name</th><th>In</th><th>Type</th><th>Description</th></tr></thead><tbody>${
        op.parameters.map((p) =>
          `<tr><td><code>${esc(p.name)}</code>${
            p.required ? " (required)" : ""
          }</td><td>${p.in}</td><td>${typeHtml(typeName(p.schema), doc)}</td><td>${
            prose(describe({ ...p.schema, description: p.description }))
          }</td></tr>`
        ).join("")
      }</tbody></table>`,
    );
  }
  const body = op.requestBody?.content["application/json"].schema;
  if (body) {
    parts.push(
      `<h4>Request body <span class="type">${typeHtml(typeName(body), doc)}</span></h4>${
        fieldsTable(resolve(doc, body), doc)
      }`,
    );
  }
  parts.push(
    `<h4>Responses</h4><table><thead><tr><th>Status</th><th>Description</th><th>Body</th><th>Headers</th></tr></thead><tbody>${
      Object.entries(op.responses).map(([status, r]) => {
        const shared = r.$ref ? doc.components.responses[r.$ref.split("/").pop()!] : undefined;
        const content = r.content ?? shared?.content ?? {};
        const headers = Object.keys(r.headers ?? shared?.headers ?? {});
        return `<tr><td class="status s${status[0]}">${status}</td><td>${
          prose(r.description)
        }</td><td>${
          Object.entries(content).map(([type, c]) =>
            `${typeHtml(typeName(c.schema), doc)} <span class="media">${esc(type)}</span>`
          ).join("<br>")
        }</td><td>${headers.map((h) => `<code>${esc(h)}</code>`).join(", ")}</td></tr>`;
      }).join("")
    }</tbody></table>`,
  );
  const method = op.method.toUpperCase();
  return `<details class="op" id="op-${op.operationId}"><summary><span class="method m-${op.method}">${method}</span> <code class="path">${
    esc(op.path)
  }</code> <span class="summary">${esc(op.summary)}</span> <span class="roles">${
    esc(op["x-ironmesh-roles"].join(", "))
  }</span></summary><div class="body">${parts.join("")}</div></details>`;
}

const STYLE = `
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2433;background:#fafbfc}
header{padding:1.5rem 2rem;background:#1d2433;color:#fff}header h1{margin:0 0 .5rem}header small{font-weight:400;opacity:.7}
header a{color:#9cd1ff}header code{background:#2d3748;color:#e6edf3}header p{max-width:70rem}#filter{padding:.4rem .6rem;width:20rem;font:inherit;border-radius:4px;border:0}
.layout{display:flex;align-items:flex-start}nav{position:sticky;top:0;max-height:100vh;overflow:auto;padding:1rem 1.5rem;min-width:15rem;font-size:14px}
nav ul{list-style:none;padding-left:.5rem;margin:.2rem 0 .8rem}nav a{color:#1d2433;text-decoration:none}nav a:hover{text-decoration:underline}
main{flex:1;padding:1rem 2rem 4rem;max-width:75rem}h2{border-bottom:1px solid #d0d7de;padding-bottom:.3rem;margin-top:2rem}
.op{border:1px solid #d0d7de;border-radius:6px;margin:.5rem 0;background:#fff}.op summary{cursor:pointer;padding:.5rem .8rem}
.op .body{padding:0 1rem 1rem;border-top:1px solid #eaeef2}.method{display:inline-block;min-width:4.2rem;text-align:center;font-weight:700;font-size:12px;color:#fff;border-radius:4px;padding:.1rem .3rem}
.m-get{background:#1f6feb}.m-put{background:#9a6700}.m-post{background:#1a7f37}.m-patch{background:#8250df}.m-delete{background:#cf222e}
.path{font-weight:600}.summary{color:#57606a;margin-left:.5rem}.roles{float:right;font-size:12px;color:#57606a;background:#eaeef2;border-radius:10px;padding:.1rem .6rem}
table{border-collapse:collapse;width:100%;margin:.3rem 0 .8rem;font-size:14px}th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}td:first-child code{white-space:nowrap}code{font:13px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f6f8fa;padding:0 .2rem;border-radius:3px;word-break:break-word}
.status{font-weight:700}.s2{color:#1a7f37}.s4{color:#9a6700}.s5{color:#cf222e}.media{color:#57606a;font-size:12px}.type{font-weight:400}
.schema{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:.2rem 1rem .5rem;margin:.8rem 0}
`;

const SCRIPT = `
function openTarget() {
  const target = location.hash && document.getElementById(location.hash.slice(1));
  if (target && target.tagName === "DETAILS") target.open = true;
}
addEventListener("hashchange", openTarget);
openTarget();
const box = document.getElementById("filter");
box.addEventListener("input", () => {
  const words = box.value.toLowerCase().split(/\\s+/).filter(Boolean);
  for (const op of document.querySelectorAll(".op")) {
    const text = op.querySelector("summary").textContent.toLowerCase();
    op.hidden = !words.every((w) => text.includes(w));
  }
});
`;

/** Renders the whole page. */
export function docsPage(doc: OpenApiDocument): string {
  const groups = operationsByTag(doc).filter((g) => g.operations.length > 0);
  const nav = groups.map((g) =>
    `<li><a href="#tag-${g.tag}"><strong>${esc(g.tag)}</strong></a><ul>${
      g.operations.map((op) =>
        `<li><a href="#op-${op.operationId}">${op.method.toUpperCase()} ${esc(op.path)}</a></li>`
      ).join("")
    }</ul></li>`
  ).join("");
  const sections = groups.map((g) =>
    `<section id="tag-${g.tag}"><h2>${esc(g.tag)}</h2><p>${prose(g.description)}</p>${
      g.operations.map((op) => operationHtml(op, doc)).join("")
    }</section>`
  ).join("");
  const schemas = Object.entries(doc.components.schemas).sort(([a], [b]) => a.localeCompare(b))
    .map(([name, schema]) =>
      `<div class="schema" id="schema-${name}"><h3>${name}</h3>${
        schema.description ? `<p>${prose(ensurePeriod(schema.description))}</p>` : ""
      }${fieldsTable(schema, doc)}</div>`
    ).join("");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(doc.info.title)} ${esc(doc.info.version)}</title><style>${STYLE}</style></head>
<body><header><h1>${esc(doc.info.title)} <small>${esc(doc.info.version)}</small></h1>
<p>${prose(doc.info.description)}</p>
<p><a href="openapi.json">OpenAPI 3.1 document (JSON)</a> · <input id="filter" type="search" placeholder="Filter operations, e.g. nodes put" aria-label="Filter operations"></p></header>
<div class="layout"><nav><ul>${nav}<li><a href="#schemas"><strong>Schemas</strong></a></li></ul></nav>
<main>${sections}<section id="schemas"><h2>Schemas</h2>${schemas}</section></main></div>
<script>${SCRIPT}</script></body></html>
`;
}
