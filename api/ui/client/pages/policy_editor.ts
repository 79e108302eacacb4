/**
 * The policy editor: YAML in, problems out *at the line of the field* they
 * point to, a dry run that shows which proxies would change and how, then
 * apply. The YAML is read with the same parser and the same pointer-to-line
 * mapping as `ironmesh apply` (`parseYamlDocuments` of `core/validate.ts`),
 * so the browser and the CLI place a problem on the same line.
 */
import { useMemo, useState } from "preact/hooks";
import type { FieldProblem } from "../../../../core/errors.ts";
import { parseYamlDocuments, type SourceDocument } from "../../../../core/validate.ts";
import { api, ApiError } from "../api.ts";
import { Diff, ErrorBox, href, html, type JsonChange, useSession } from "../ui.ts";

/** A problem placed on its line (1-based) of the editor. */
interface PlacedProblem {
  line: number;
  column: number;
  pointer: string;
  message: string;
}

interface ApplyResult {
  dryRun: boolean;
  items: {
    kind: string;
    namespace: string;
    name: string;
    action: string;
    revision: number | null;
  }[];
  warnings: FieldProblem[];
  proxies?: {
    kind: string;
    target: string;
    connected: string[];
    changes: { type: string; name: string; op: string; diff?: JsonChange[] }[];
  }[];
}

let draft = "";

/** Opens the editor with `text` in it (e.g. a stored policy's YAML). */
export function editDraft(text: string): void {
  draft = text;
  location.hash = href("policies", "edit");
}

/** Places batch problems (`/items/<i>/…`) on the lines of their documents. */
function place(
  docs: readonly SourceDocument[],
  problems: readonly FieldProblem[],
): PlacedProblem[] {
  return problems.map((p) => {
    const m = /^\/items\/(\d+)(.*)$/.exec(p.pointer);
    const doc = m ? docs[Number(m[1])] : undefined;
    if (!m || !doc) return { line: 1, column: 1, pointer: p.pointer, message: p.message };
    const { line, column } = doc.locate(m[2]!);
    return { line, column, pointer: m[2] || "/", message: p.message };
  });
}

function Result({ result }: { result: ApplyResult }) {
  return html`<section class="result" aria-label=${result.dryRun ? "Dry run" : "Applied"}>
    <h2>${result.dryRun ? "Dry run: nothing was stored" : "Applied"}</h2>
    <ul>${
    result.items.map((i) =>
      html`<li key=${`${i.kind}/${i.namespace}/${i.name}`}>${i.kind} ${
        i.namespace ? `${i.namespace}/` : ""
      }${i.name}: <strong>${i.action}</strong>${
        i.revision !== null ? ` (revision ${i.revision})` : ""
      }</li>`
    )
  }</ul>
    ${
    result.proxies && html`<h3>Proxies that would change (${result.proxies.length})</h3>
      ${
      result.proxies.length === 0 && html`<p class="muted">No proxy configuration would change.</p>`
    }
      ${
      result.proxies.map((p) =>
        html`<details class="proxy-change" key=${p.target} open>
          <summary>${p.kind} <strong>${p.target}</strong>${
          p.connected.length ? ` (connected: ${p.connected.join(", ")})` : ""
        }</summary>
          ${
          p.changes.map((c) =>
            html`
              <div key=${`${c.type}/${c.name}`}>
                <h4>${c.op} ${c.type.slice(c.type.lastIndexOf(".") + 1)} <code>${c.name}</code></h4>
                ${c.diff && html`<${Diff} changes=${c.diff} />`}
              </div>
            `
          )
        }
        </details>`
      )
    }`
  }
  </section>`;
}

/** The editor page. */
export function PolicyEditor() {
  const { canWrite } = useSession();
  const [text, setText] = useState(draft);
  const [problems, setProblems] = useState<PlacedProblem[]>([]);
  const [warnings, setWarnings] = useState<PlacedProblem[]>([]);
  const [result, setResult] = useState<ApplyResult | undefined>();
  const [error, setError] = useState<Error | undefined>();
  const [busy, setBusy] = useState(false);
  const lines = useMemo(() => text.split("\n").length, [text]);
  const bad = new Set(problems.map((p) => p.line));

  const submit = async (dryRun: boolean) => {
    setBusy(true);
    setError(undefined);
    setResult(undefined);
    setWarnings([]);
    draft = text;
    let docs: SourceDocument[];
    try {
      docs = parseYamlDocuments(text, "editor");
    } catch (e) {
      const located = (e as { fileProblems?: PlacedProblem[] }).fileProblems;
      setProblems(located ?? [{ line: 1, column: 1, pointer: "/", message: String(e) }]);
      setBusy(false);
      return;
    }
    try {
      const { body } = await api<ApplyResult>("POST", "/v1/policies", {
        body: { items: docs.map((d) => d.value) },
        query: { dryRun: dryRun ? "true" : undefined },
      });
      setProblems([]);
      setWarnings(place(docs, body.warnings));
      setResult(body);
    } catch (e) {
      if (e instanceof ApiError && e.problems.length > 0) setProblems(place(docs, e.problems));
      else setError(e as Error);
    } finally {
      setBusy(false);
    }
  };

  return html`
    <h1>Edit policies</h1>
        <p>YAML documents separated by <code>---</code>, as for <code>ironmesh apply -f</code>.
          A dry run validates them against the mesh and shows which proxies would change, storing nothing.</p>
        <div class=${`editor${problems.length ? " invalid" : ""}`}>
      <ol class="gutter" aria-hidden="true">${Array.from(
        { length: lines },
        (_, i) => html`<li key=${i} class=${bad.has(i + 1) ? "bad-line" : ""}>${i + 1}</li>`,
      )}</ol>
      <textarea id="policy-yaml" spellcheck="false" rows=${Math.max(lines + 1, 12)}
        aria-label="Policy YAML" aria-invalid=${problems.length > 0 ? "true" : "false"}
        aria-describedby="policy-problems" value=${text}
        onInput=${(e: Event) => setText((e.target as HTMLTextAreaElement).value)}></textarea>
    </div>
        <ul id="policy-problems" class="problems" aria-live="polite">${problems.map((p, i) =>
          html`<li key=${i} class="problem" data-line=${p.line} data-pointer=${p.pointer}>
        <strong>Line ${p.line}, column ${p.column}</strong> <code>${p.pointer}</code>: ${p.message}</li>`
        )}${warnings.map((p, i) =>
          html`<li key=${`w${i}`} class="warning" data-line=${p.line} data-pointer=${p.pointer}>
        Warning, line ${p.line}: <code>${p.pointer}</code>: ${p.message}</li>`
        )}</ul>
        <${ErrorBox} error=${error} />
        ${canWrite
          ? html`<p class="actions">
      <button type="button" id="dry-run" class="write" disabled=${busy || !text.trim()}
        onClick=${() => submit(true)}>Dry run</button>
      <button type="button" id="apply" class="write" disabled=${busy || !text.trim()}
        onClick=${() => submit(false)}>Apply</button></p>`
          : html`<p class="muted">Your role may read policies but not change them.</p>`}
        ${result && html`<${Result} result=${result} />`}
  `;
}
