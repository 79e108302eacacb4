/** The overview: the mesh in numbers, the CA's state, and the latest policy writes. */
import { Badge, ErrorBox, get, href, html, Loading, Time, useData } from "../ui.ts";

interface Summary {
  services: number;
  instances: { healthy: number; unhealthy: number; draining: number };
  nodes: { alive: number; stale: number; draining: number };
  proxies: { connected: number; inSync: number; outOfSync: number };
}

interface Generation {
  id: number;
  stage: string;
  rootNotAfter: string;
  intermediateNotAfter: string;
}

/** `RotationStatus` of the API. */
export interface Rotation {
  stage: string;
  signingRoot: string;
  generations: Generation[];
  leaves: number;
  leavesOnOtherRoots: number;
  nodesAwaitingBundle: string[];
}

/** `AuditEntry` of the API. */
export interface AuditEntry {
  id: number;
  at: string;
  actor: string;
  action: string;
  kind: string;
  namespace: string;
  name: string;
  outcome: string;
  detail: string;
}

function Card({ title, link, children }: { title: string; link: string; children: unknown }) {
  return html`<section class="card" aria-label=${title}>
    <h2><a href=${link}>${title}</a></h2>
    ${children}
  </section>`;
}

function Count({ n, label, tone }: { n: number; label: string; tone?: string }) {
  return html`<div class=${`count tone-${tone ?? "neutral"}`}><strong>${n}</strong> ${label}</div>`;
}

/** The audit entries as a table. */
export function AuditTable({ items }: { items: AuditEntry[] }) {
  if (items.length === 0) return html`<p class="muted">No policy writes yet.</p>`;
  return html`
    <table>
      <thead>
        <tr>
          <th scope="col">When</th>
          <th scope="col">Who</th>
          <th scope="col">What</th>
          <th scope="col">Policy</th>
          <th scope="col">Outcome</th>
        </tr>
      </thead>
      <tbody>${items.map((a) =>
        html`
          <tr key=${a.id}>
            <td>
              <${Time} iso=${a.at} />
            </td>
            <td>${a.actor}</td>
            <td>${a.action}</td>
            <td>${a.kind} ${a.namespace ? `${a.namespace}/` : ""}${a.name}</td>
            <td><${Badge} value=${a.outcome} tone=${a.outcome === "ok" ? "good" : "bad"} /> ${a
              .detail}</td>
          </tr>
        `
      )}</tbody>
    </table>
  `;
}

/**
 * The last ten audit entries. The log is listed oldest first, so this walks
 * it a thousand entries at a time to its end.
 */
async function recentAudit(signal: AbortSignal): Promise<{ items: AuditEntry[] }> {
  let items: AuditEntry[] = [];
  let after: string | null = null;
  do {
    const page: { items: AuditEntry[]; next: string | null } = await get("/v1/audit", {
      query: { limit: 1000, after },
      signal,
    });
    items = [...items, ...page.items].slice(-10);
    after = page.next;
  } while (after !== null);
  return { items: items.reverse() };
}

/** The overview page. */
export function Overview() {
  const summary = useData((signal) => get<Summary>("/v1/summary", { signal }), [], { live: true });
  const ca = useData((signal) => get<Rotation>("/v1/ca/status", { signal }), [], { live: true });
  const audit = useData((signal) => recentAudit(signal), [], { live: true });
  const s = summary.data;
  const signing = ca.data?.generations.find((g) => g.stage === "active");
  return html`<h1>Overview</h1>
    <${ErrorBox} error=${summary.error ?? ca.error ?? audit.error} />
    ${
    !s ? html`<${Loading} />` : html`
      <div class="cards">
        <${Card} title="Services" link=${href("services")}>
          <${Count} n=${s.services} label="services" />
          <//>
          <${Card} title="Instances" link=${href("services")}>
            <${Count} n=${s.instances.healthy} label="healthy" tone="good" />
            <${Count} n=${s.instances.unhealthy} label="unhealthy" tone="bad" />
            <${Count} n=${s.instances.draining} label="draining" tone="warn" />
            <//>
            <${Card} title="Nodes" link=${href("nodes")}>
              <${Count} n=${s.nodes.alive} label="alive" tone="good" />
              <${Count} n=${s.nodes.stale} label="stale" tone="bad" />
              <${Count} n=${s.nodes.draining} label="draining" tone="warn" />
              <//>
              <${Card} title="Proxies" link=${href("proxies")}>
                <${Count} n=${s.proxies.inSync} label="in sync" tone="good" />
                <${Count} n=${s.proxies.outOfSync} label="out of sync" tone=${s.proxies.outOfSync
                  ? "bad"
                  : "neutral"} />
                <//>
                <${Card} title="Certificate authority" link=${href("identity")}>
              ${ca.data && html`<div>Rotation stage <${Badge} value=${ca.data.stage} /></div>
          <div>Signing root expires <${Time} iso=${signing?.rootNotAfter} /></div>
          <div>Intermediate expires <${Time} iso=${signing?.intermediateNotAfter} /></div>
          ${
                ca.data.nodesAwaitingBundle.length > 0 &&
                html`<div>${ca.data.nodesAwaitingBundle.length} nodes awaiting the new bundle</div>`
              }`}
            <//>
          </div>
    `
  }
    <h2>Recent policy writes</h2>
    ${audit.data ? html`<${AuditTable} items=${audit.data.items} />` : html`<${Loading} />`}`;
}
