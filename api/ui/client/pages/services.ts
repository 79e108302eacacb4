/**
 * Services, and the instances of one service: health with the check's last
 * output, labels, node; operators drain and undrain. Both lists are paged by
 * the API, and the instance list reloads on every registry change, so an
 * instance whose check fails turns red on an open page.
 */
import { useState } from "preact/hooks";
import { api } from "../api.ts";
import {
  ErrorBox,
  Health,
  href,
  html,
  Labels,
  Loading,
  Time,
  usePagedList,
  useSession,
} from "../ui.ts";

interface Service {
  namespace: string;
  name: string;
  ports: { name?: string; port: number; protocol: string }[];
  labels: Record<string, string>;
  managedBy: string;
}

interface Instance {
  id: string;
  node: string;
  namespace: string;
  service: string;
  address: string;
  port: number;
  protocol: string;
  labels: Record<string, string>;
  check: { status: string; output: string; updatedAt: string };
  draining: boolean;
  health: string;
}

/** The services list. */
export function Services() {
  const [namespace, setNamespace] = useState("");
  const list = usePagedList<Service>("/v1/services", { namespace: namespace || undefined }, {
    live: true,
  });
  return html`
    <h1>Services</h1>
        <form class="filters" onSubmit=${(e: Event) => e.preventDefault()}>
      <label>Namespace <input name="namespace" value=${namespace} placeholder="all"
            onChange=${(e: Event) =>
              setNamespace((e.target as HTMLInputElement).value.trim())} /></label>
    </form>
        <${ErrorBox} error=${list.error} />
        ${!list.data ? html`<${Loading} />` : html`
          <table>
            <thead>
              <tr>
                <th scope="col">Service</th>
                <th scope="col">Ports</th>
                <th scope="col">Labels</th>
                <th scope="col">Source</th>
              </tr>
            </thead>
            <tbody>${list.data.items.map((s) =>
              html`
                <tr key=${`${s.namespace}/${s.name}`}>
                  <td><a href=${href("services", s.namespace, s.name)}>${s.name}.${s
                    .namespace}</a></td>
                  <td>${s.ports.map((p) => `${p.port}/${p.protocol}`).join(", ")}</td>
                  <td>
                    <${Labels} labels=${s.labels} />
                  </td>
                  <td>${s.managedBy}</td>
                </tr>
              `
            )}</tbody>
          </table>${list.pager}
        `}
  `;
}

function DrainButton({ instance, done }: { instance: Instance; done: () => void }) {
  const [error, setError] = useState<Error | undefined>();
  const [busy, setBusy] = useState(false);
  const draining = !instance.draining;
  const click = async () => {
    setBusy(true);
    setError(undefined);
    try {
      await api("PATCH", `/v1/instances/${encodeURIComponent(instance.id)}`, {
        body: { draining },
      });
      done();
    } catch (e) {
      setError(e as Error);
    } finally {
      setBusy(false);
    }
  };
  return html`
    <button type="button" class="write" disabled=${busy} onClick=${click}
      aria-label=${`${draining ? "Drain" : "Undrain"} ${instance.id}`}>${draining
        ? "Drain"
        : "Undrain"}</button><${ErrorBox} error=${error} />
  `;
}

/** One service and its instances. */
export function ServiceDetail({ namespace, name }: { namespace: string; name: string }) {
  const { canWrite } = useSession();
  const list = usePagedList<Instance>("/v1/instances", { namespace, service: name }, {
    live: true,
  });
  return html`<h1>${name}.${namespace}</h1>
    <p><a href=${href("services")}>All services</a></p>
    <h2>Instances</h2>
    <${ErrorBox} error=${list.error} />
    ${
    !list.data ? html`<${Loading} />` : html`
      <table class="instances">
        <thead>
          <tr><th scope="col">Instance</th><th scope="col">Health</th><th scope="col">Check</th>
              <th scope="col">Node</th><th scope="col">Address</th><th scope="col">Labels</th>
              ${canWrite && html`<th scope="col">Actions</th>`}</tr>
        </thead>
        <tbody>${list.data.items.map((i) =>
          html`<tr key=${i.id} data-instance=${i.id} data-health=${i.health}>
          <th scope="row">${i.id}</th>
          <td><${Health} value=${i.health} /></td>
          <td><span class=${`check check-${i.check.status}`}>${i.check.status}</span>
            ${i.check.output && html`<pre class="output">${i.check.output}</pre>`}
            <div class="muted"><${Time} iso=${i.check.updatedAt} /></div></td>
          <td><a href=${href("nodes", i.node)}>${i.node}</a></td>
          <td>${i.address}:${i.port} (${i.protocol})</td>
          <td><${Labels} labels=${i.labels} /></td>
          ${
            canWrite && html`
              <td>
                <${DrainButton} instance=${i} done=${list.reload} />
              </td>
            `
          }
        </tr>`
        )}</tbody>
      </table>${list.pager}
    `
  }`;
}
