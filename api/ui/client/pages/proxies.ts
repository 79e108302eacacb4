/**
 * Proxies: per resource type, what was sent and what was ACKed, the last
 * NACK with its error; for one proxy, what it was sent as a collapsible tree
 * and *why* it has that config (`explain`: each policy that applies, and the
 * reason), which neither Consul's nor Kuma's UI shows.
 */
import { Badge, ErrorBox, get, href, html, Loading, Time, Tree, useData } from "../ui.ts";

interface TypeStatus {
  typeUrl: string;
  sentVersion: string | null;
  ackedVersion: string | null;
  lastNack: { version: string; message: string; at: string } | null;
  inSync: boolean;
}

interface Proxy {
  id: string;
  node: string;
  identity: string;
  kind: string;
  connectedAt: string;
  types: TypeStatus[];
}

interface Explained {
  outbound: { namespace: string; service: string }[];
  inbound: { namespace: string; service: string }[];
  policies: {
    kind: string;
    namespace: string;
    name: string;
    revision: number;
    direction: string;
    service: string;
    reason: string;
  }[];
}

function shortType(url: string): string {
  return url.slice(url.lastIndexOf(".") + 1);
}

function TypeTable({ types }: { types: TypeStatus[] }) {
  return html`
    <table class="types">
      <thead>
        <tr>
          <th scope="col">Type</th>
          <th scope="col">Sent</th>
          <th scope="col">ACKed</th>
          <th scope="col">Last NACK</th>
        </tr>
      </thead>
      <tbody>${types.map((t) =>
        html`
          <tr key=${t.typeUrl} class=${t.inSync ? "" : "out-of-sync"}>
            <td title=${t.typeUrl}>${shortType(t.typeUrl)}</td>
            <td><code>${t.sentVersion ?? "—"}</code></td>
            <td><code>${t.ackedVersion ?? "—"}</code>
                    ${!t.inSync && html`
                      <${Badge} value="out of sync" tone="bad" />
                    `}</td>
            <td>${t.lastNack
              ? html`<code>${t.lastNack.version}</code> <${Time} iso=${t.lastNack.at} />
              <pre class="output">${t.lastNack.message}</pre>`
              : html`<span class="muted">none</span>`}</td>
          </tr>
        `
      )}</tbody>
    </table>
  `;
}

/** Every connected proxy. */
export function Proxies() {
  const list = useData(
    (signal) => get<{ items: Proxy[] }>("/v1/proxies", { signal }),
    [],
    { live: true },
  );
  return html`<h1>Proxies</h1>
    <p><button type="button" onClick=${list.reload}>Refresh</button></p>
    <${ErrorBox} error=${list.error} />
    ${
    !list.data
      ? html`<${Loading} />`
      : list.data.items.length === 0
      ? html`<p class="muted">No proxy is connected.</p>`
      : html`
        <table>
          <thead>
            <tr>
              <th scope="col">Proxy</th>
              <th scope="col">Node</th>
              <th scope="col">Kind</th>
              <th scope="col">Connected since</th>
              <th scope="col">Sync</th>
            </tr>
          </thead>
          <tbody>${list.data.items.map((p) => {
            const behind = p.types.filter((t) => !t.inSync).length;
            return html`
              <tr key=${p.id}>
                <th scope="row"><a href=${href("proxies", p.id)}>${p.id}</a>
                          <div class="muted">${p.identity}</div></th>
                <td><a href=${href("nodes", p.node)}>${p.node}</a></td>
                <td>${p.kind}</td>
                <td>
                  <${Time} iso=${p.connectedAt} />
                </td>
                <td>${behind === 0
                  ? html`<${Badge} value="in sync" tone="good" />`
                  : html`<${Badge} value=${`${behind} types behind`} tone="bad" />`}</td>
              </tr>
            `;
          })}</tbody>
        </table>
      `
  }`;
}

/** One proxy: sync state, why it has its config, and what it was sent. */
export function ProxyDetail({ id }: { id: string }) {
  const path = `/v1/proxies/${encodeURIComponent(id)}`;
  const status = useData(
    async (signal) =>
      (await get<{ items: Proxy[] }>("/v1/proxies", { signal })).items.find((p) => p.id === id),
    [id],
    { live: true },
  );
  const explained = useData((signal) => get<Explained>(`${path}/policies`, { signal }), [id]);
  const dump = useData(
    (signal) => get<{ resources: Record<string, unknown[]> }>(`${path}/config_dump`, { signal }),
    [id],
  );
  const p = status.data;
  return html`<h1>Proxy ${id}</h1>
    <p><a href=${href("proxies")}>All proxies</a></p>
    <${ErrorBox} error=${status.error} />
    ${
    p && html`
      <p>${p.kind} on <a href=${href("nodes", p.node)}>${p.node}</a>, identity
            <code>${p.identity}</code>, connected since <${Time} iso=${p.connectedAt} /></p>
      <${TypeTable} types=${p.types} />
    `
  }
    <h2>Why it has this configuration</h2>
    <${ErrorBox} error=${explained.error} />
    ${
    !explained.data ? html`<${Loading} />` : html`
      <p>Sends to: ${explained.data.outbound.map((s) => `${s.service}.${s.namespace}`).join(", ") ||
        "nothing"}. Serves: ${explained.data.inbound.map((s) => `${s.service}.${s.namespace}`).join(
          ", ",
        ) || "nothing"}.</p>
      ${explained.data.policies.length === 0
        ? html`<p class="muted">No policy applies: defaults only.</p>`
        : html`
          <table>
            <thead>
              <tr>
                <th scope="col">Policy</th>
                <th scope="col">Direction</th>
                <th scope="col">Why</th>
              </tr>
            </thead>
            <tbody>${explained.data.policies.map((a) =>
              html`
                <tr key=${`${a.kind}/${a.namespace}/${a.name}/${a.service}`}>
                  <td><a href=${href("policies", a.kind, a.namespace || "-", a.name)}>${a.kind}
                                ${a.namespace ? `${a.namespace}/` : ""}${a.name}</a> (revision ${a
                                  .revision})</td>
                  <td>${a.direction}</td>
                  <td>${a.reason}</td>
                </tr>
              `
            )}</tbody>
          </table>
        `}
    `
  }
    <h2>Configuration sent</h2>
    <${ErrorBox} error=${dump.error} />
    ${
    !dump.data
      ? html`<${Loading} />`
      : html`<div class="tree-root">${
        Object.entries(dump.data.resources).map(([type, resources]) =>
          html`<${Tree} key=${type} name=${`${
            shortType(type)
          } (${resources.length})`} value=${resources} />`
        )
      }</div>`
  }`;
}
