/**
 * Nodes: agent version, addresses, labels, last heartbeat, conditions; an
 * admin decommissions one after typing its name, as Kuma and Consul ask for
 * destructive actions.
 */
import { useState } from "preact/hooks";
import { api } from "../api.ts";
import {
  Badge,
  ErrorBox,
  get,
  href,
  html,
  Labels,
  Loading,
  Time,
  useData,
  usePagedList,
  useSession,
} from "../ui.ts";

interface MeshNode {
  name: string;
  hostname: string;
  addresses: string[];
  labels: Record<string, string>;
  agentVersion: string;
  status: string;
  draining: boolean;
  conditions: { type: string; reason: string; message: string }[];
  upstreams: { service: string; namespace: string; localPort: number }[];
  lastHeartbeat: string;
  registeredAt: string;
}

function Decommission({ node, done }: { node: string; done: () => void }) {
  const [asking, setAsking] = useState(false);
  const [typed, setTyped] = useState("");
  const [error, setError] = useState<Error | undefined>();
  if (!asking) {
    return html`<button type="button" class="write danger" onClick=${() => setAsking(true)}>
      Decommission</button>`;
  }
  const confirm = async (e: Event) => {
    e.preventDefault();
    try {
      await api("DELETE", `/v1/nodes/${encodeURIComponent(node)}`);
      done();
    } catch (err) {
      setError(err as Error);
    }
  };
  return html`
    <form class="confirm" onSubmit=${confirm}>
      <label>Type <code>${node}</code> to decommission it
          <input value=${typed} onInput=${(e: Event) =>
            setTyped((e.target as HTMLInputElement).value)} /></label>
      <button type="submit" class="write danger" disabled=${typed !==
        node}>Decommission ${node}</button>
      <button type="button" onClick=${() => setAsking(false)}>Cancel</button>
      <${ErrorBox} error=${error} />
    </form>
  `;
}

function NodeTable({ items, reload }: { items: MeshNode[]; reload: () => void }) {
  const { isAdmin } = useSession();
  return html`
    <table>
      <thead>
        <tr><th scope="col">Node</th><th scope="col">Status</th><th scope="col">Agent</th>
          <th scope="col">Addresses</th><th scope="col">Labels</th><th scope="col">Last heartbeat</th>
          <th scope="col">Conditions</th>${isAdmin && html`<th scope="col">Actions</th>`}</tr>
      </thead>
      <tbody>${items.map((n) =>
        html`<tr key=${n.name} data-node=${n.name}>
        <th scope="row"><a href=${href("nodes", n.name)}>${n.name}</a>
          <div class="muted">${n.hostname}</div></th>
        <td><${Badge} value=${n.status} tone=${n.status === "alive" ? "good" : "bad"} />
          ${
          n.draining && html`
            <${Badge} value="draining" tone="warn" />
          `
        }</td>
        <td>${n.agentVersion}</td>
        <td>${n.addresses.join(", ")}</td>
        <td><${Labels} labels=${n.labels} /></td>
        <td><${Time} iso=${n.lastHeartbeat} /></td>
        <td>${
          n.conditions.length === 0
            ? html`<span class="muted">none</span>`
            : n.conditions.map((c) =>
              html`<div key=${c.type}><${Badge} value=${c.type} tone="bad" /> ${c.message}</div>`
            )
        }</td>
        ${
          isAdmin && html`
            <td>
              <${Decommission} node=${n.name} done=${reload} />
            </td>
          `
        }
      </tr>`
      )}</tbody>
    </table>
  `;
}

/** The nodes list. */
export function Nodes() {
  const list = usePagedList<MeshNode>("/v1/nodes", {}, { live: true });
  return html`<h1>Nodes</h1>
    <${ErrorBox} error=${list.error} />
    ${
    !list.data
      ? html`<${Loading} />`
      : html`<${NodeTable} items=${list.data.items} reload=${list.reload} />${list.pager}`
  }`;
}

/** One node, with the upstreams its agent declared. */
export function NodeDetail({ name }: { name: string }) {
  const node = useData(
    (signal) => get<MeshNode>(`/v1/nodes/${encodeURIComponent(name)}`, { signal }),
    [name],
    { live: true },
  );
  return html`<h1>Node ${name}</h1>
    <p><a href=${href("nodes")}>All nodes</a></p>
    <${ErrorBox} error=${node.error} />
    ${
    !node.data
      ? html`<${Loading} />`
      : html`<${NodeTable} items=${[node.data]} reload=${node.reload} />
      <h2>Upstreams</h2>
      ${
        node.data.upstreams.length === 0
          ? html`<p class="muted">None declared.</p>`
          : html`<ul>${
            node.data.upstreams.map((u) =>
              html`<li key=${u.service}><a href=${
                href("services", u.namespace, u.service)
              }>${u.service}.${u.namespace}</a>
            on localhost:${u.localPort}</li>`
            )
          }</ul>`
      }`
  }`;
}
