/**
 * Policies: the list by kind, each policy's YAML, its history with the diff
 * between any two revisions, and rollback (operators). Writes go through the
 * editor (`policy_editor.ts`), which dry-runs first.
 */
import { useState } from "preact/hooks";
import { stringify } from "yaml";
import { jsonDiff } from "../../../../core/json_diff.ts";
import { api } from "../api.ts";
import {
  Diff,
  ErrorBox,
  get,
  href,
  html,
  type JsonChange,
  Loading,
  Time,
  useData,
  usePagedList,
  useSession,
} from "../ui.ts";
import { editDraft } from "./policy_editor.ts";

const KINDS = [
  "TrafficRoute",
  "DestinationPolicy",
  "AuthorizationPolicy",
  "RateLimit",
  "MeshConfig",
];

interface Policy {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace: string;
    labels: Record<string, string>;
    revision: number;
    updatedAt: string;
    updatedBy: string;
  };
  spec: unknown;
}

interface Revision {
  revision: number;
  op: string;
  at: string;
  actor: string;
  object: Policy | null;
  changes: JsonChange[];
}

/** The API path of one policy (MeshConfig is not namespaced). */
function policyPath(kind: string, namespace: string, name: string): string {
  const k = kind.toLowerCase();
  return namespace
    ? `/v1/policies/${k}/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}`
    : `/v1/policies/${k}/${encodeURIComponent(name)}`;
}

/** A stored policy as the YAML a user would apply. */
export function policyYaml(p: Policy): string {
  const metadata: Record<string, unknown> = { name: p.metadata.name };
  if (p.metadata.namespace) metadata.namespace = p.metadata.namespace;
  if (Object.keys(p.metadata.labels).length) metadata.labels = p.metadata.labels;
  return stringify({ apiVersion: p.apiVersion, kind: p.kind, metadata, spec: p.spec });
}

/** The policy list. */
export function Policies() {
  const { canWrite } = useSession();
  const [kind, setKind] = useState("");
  const list = usePagedList<Policy>("/v1/policies", { kind: kind || undefined });
  return html`<h1>Policies</h1>
    <div class="filters">
      <label>Kind <select value=${kind} onChange=${(e: Event) =>
    setKind((e.target as HTMLSelectElement).value)}>
        <option value="">all</option>
        ${KINDS.map((k) => html`<option key=${k} value=${k}>${k}</option>`)}
      </select></label>
      ${
    canWrite && html`<a class="button write" href=${href("policies", "edit")}>New or edit YAML</a>`
  }
    </div>
    <${ErrorBox} error=${list.error} />
    ${
    !list.data
      ? html`<${Loading} />`
      : list.data.items.length === 0
      ? html`<p class="muted">No policies.</p>`
      : html`
        <table>
          <thead>
            <tr>
              <th scope="col">Kind</th>
              <th scope="col">Policy</th>
              <th scope="col">Revision</th>
              <th scope="col">Updated</th>
              <th scope="col">By</th>
            </tr>
          </thead>
          <tbody>${list.data.items.map((p) =>
            html`
              <tr key=${`${p.kind}/${p.metadata.namespace}/${p.metadata.name}`}>
                <td>${p.kind}</td>
                <td><a href=${href(
                  "policies",
                  p.kind,
                  p.metadata.namespace || "-",
                  p.metadata.name,
                )}>${p.metadata.namespace ? `${p.metadata.namespace}/` : ""}${p.metadata
                  .name}</a></td>
                <td>${p.metadata.revision}</td>
                <td>
                  <${Time} iso=${p.metadata.updatedAt} />
                </td>
                <td>${p.metadata.updatedBy}</td>
              </tr>
            `
          )}</tbody>
        </table>${list.pager}
      `
  }`;
}

function History(
  { path, revisions, reload }: { path: string; revisions: Revision[]; reload: () => void },
) {
  const { canWrite } = useSession();
  const newest = revisions[revisions.length - 1]?.revision ?? 0;
  const [from, setFrom] = useState(0);
  const [to, setTo] = useState(0);
  const [error, setError] = useState<Error | undefined>();
  const pick = (n: number) => revisions.find((r) => r.revision === n)?.object ?? null;
  const a = from || (revisions[revisions.length - 2]?.revision ?? newest);
  const b = to || newest;
  const rollback = async (revision: number) => {
    setError(undefined);
    try {
      await api("POST", `${path}/rollback`, { body: { revision } });
      reload();
    } catch (e) {
      setError(e as Error);
    }
  };
  const select = (value: number, set: (n: number) => void, label: string) =>
    html`<label>${label} <select value=${value} onChange=${(e: Event) =>
      set(Number((e.target as HTMLSelectElement).value))}>${
      revisions.map((r) =>
        html`<option key=${r.revision} value=${r.revision}>${r.revision}</option>`
      )
    }</select></label>`;
  return html`
    <h2>History</h2>
        <${ErrorBox} error=${error} />
        <table class="history">
      <thead>
        <tr><th scope="col">Revision</th><th scope="col">Change</th><th scope="col">When</th>
            <th scope="col">By</th><th scope="col">What changed</th>
            ${canWrite && html`<th scope="col">Actions</th>`}</tr>
      </thead>
      <tbody>${[...revisions].reverse().map((r) =>
        html`<tr key=${r.revision} data-revision=${r.revision}>
        <td>${r.revision}</td><td>${r.op}</td><td><${Time} iso=${r.at} /></td><td>${r.actor}</td>
        <td><${Diff} changes=${r.changes} /></td>
        ${
          canWrite && html`<td>${
            r.revision !== newest && r.object &&
            html`
              <button type="button" class="write" onClick=${() => rollback(r.revision)}
                aria-label=${`Roll back to revision ${r.revision}`}>Roll back to ${r
                  .revision}</button>
            `
          }</td>`
        }
      </tr>`
      )}</tbody>
    </table>
        ${revisions.length > 1 && html`
          <h3>Compare two revisions</h3>
          <div class="filters">${select(a, setFrom, "From")} ${select(b, setTo, "To")}</div>
          <${Diff} changes=${jsonDiff(pick(a)?.spec ?? null, pick(b)?.spec ?? null)} />
        `}
  `;
}

/** One policy: its YAML and history. */
export function PolicyDetail(
  { kind, namespace, name }: { kind: string; namespace: string; name: string },
) {
  const { canWrite } = useSession();
  const path = policyPath(kind, namespace, name);
  const policy = useData((signal) => get<Policy>(path, { signal }), [path]);
  const history = useData(
    (signal) => get<{ items: Revision[] }>(`${path}/history`, { signal }),
    [path],
  );
  const reload = () => {
    policy.reload();
    history.reload();
  };
  return html`<h1>${kind} ${namespace ? `${namespace}/` : ""}${name}</h1>
    <p><a href=${href("policies")}>All policies</a></p>
    <${ErrorBox} error=${policy.error} />
    ${
    !policy.data ? html`<${Loading} />` : html`
      <p>Revision ${policy.data.metadata.revision}, updated <${Time} iso=${policy.data.metadata
        .updatedAt} />
        by ${policy.data.metadata.updatedBy}</p>
      <pre class="yaml" aria-label="YAML">${policyYaml(policy.data)}</pre>
      ${canWrite && html`<button type="button" class="write" onClick=${() =>
        editDraft(policyYaml(policy.data!))}>Edit</button>`}
    `
  }
    <${ErrorBox} error=${history.error} />
    ${
    history.data &&
    html`<${History} path=${path} revisions=${history.data.items} reload=${reload} />`
  }`;
}
