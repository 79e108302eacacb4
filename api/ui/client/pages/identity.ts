/**
 * Identity: the CA's generations and rotation stage with the nodes still
 * awaiting the new bundle; admins start a rotation and manage tokens. A join
 * token is shown once, with the command a host runs to join.
 */
import { useState } from "preact/hooks";
import { api } from "../api.ts";
import { Badge, ErrorBox, get, html, Loading, Time, useData, useSession } from "../ui.ts";
import type { Rotation } from "./overview.ts";

interface Token {
  id: string;
  kind: "api" | "join";
  role?: string;
  serviceAccount?: string;
  namespace?: string;
  node: string | null;
  description: string;
  createdAt: string;
  expiresAt: string | null;
  revokedAt?: string | null;
}

function Ca() {
  const { isAdmin } = useSession();
  const ca = useData((signal) => get<Rotation>("/v1/ca/status", { signal }), [], { live: true });
  const [error, setError] = useState<Error | undefined>();
  const rotate = async () => {
    setError(undefined);
    try {
      await api("POST", "/v1/ca/rotation");
      ca.reload();
    } catch (e) {
      setError(e as Error);
    }
  };
  const c = ca.data;
  return html`<h2>Certificate authority</h2>
    <${ErrorBox} error=${ca.error ?? error} />
    ${
    !c ? html`<${Loading} />` : html`
      <p>Rotation stage <${Badge} value=${c.stage} />; ${c.leaves} workload certificates,
        ${c.leavesOnOtherRoots} still on another root.</p>
      ${c.nodesAwaitingBundle.length > 0 &&
        html`<p>Nodes still awaiting the new bundle (${c.nodesAwaitingBundle.length}):
        ${c.nodesAwaitingBundle.join(", ")}</p>`}
      <table>
        <thead>
          <tr>
            <th scope="col">Generation</th>
            <th scope="col">Stage</th>
            <th scope="col">Root expires</th>
            <th scope="col">Intermediate expires</th>
          </tr>
        </thead>
        <tbody>${c.generations.map((g) =>
          html`
            <tr key=${g.id}>
              <td>${g.id}</td>
              <td>
                <${Badge} value=${g.stage} />
              </td>
              <td>
                <${Time} iso=${g.rootNotAfter} />
              </td>
              <td>
                <${Time} iso=${g.intermediateNotAfter} />
              </td>
            </tr>
          `
        )}</tbody>
      </table>
      ${isAdmin && c.stage === "steady" &&
        html`<button type="button" class="write" onClick=${rotate}>Start a root rotation</button>`}
    `
  }`;
}

function CreateToken({ created }: { created: () => void }) {
  const [kind, setKind] = useState("api");
  const [role, setRole] = useState("viewer");
  const [serviceAccount, setServiceAccount] = useState("");
  const [description, setDescription] = useState("");
  const [secret, setSecret] = useState<{ kind: string; token: string } | undefined>();
  const [error, setError] = useState<Error | undefined>();
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    const body = kind === "api"
      ? { kind, role, description }
      : { kind, serviceAccount, description };
    try {
      const { body: made } = await api<{ kind: string; token: string }>("POST", "/v1/tokens", {
        body,
      });
      setSecret(made);
      created();
    } catch (err) {
      setError(err as Error);
    }
  };
  const value = (set: (v: string) => void) => (e: Event) =>
    set((e.target as HTMLInputElement).value);
  return html`<form class="create-token" onSubmit=${submit}>
    <h3>Create a token</h3>
    <label>Kind <select value=${kind} onChange=${value(setKind)}>
      <option value="api">API token</option><option value="join">Join token</option></select></label>
    ${
    kind === "api"
      ? html`<label>Role <select value=${role} onChange=${value(setRole)}>${
        ["viewer", "operator", "admin", "agent"].map((r) => html`<option key=${r}>${r}</option>`)
      }</select></label>`
      : html`<label>Service account <input value=${serviceAccount} required
          onInput=${value(setServiceAccount)} /></label>`
  }
    <label>Description <input value=${description} onInput=${value(setDescription)} /></label>
    <button type="submit" class="write">Create</button>
    <${ErrorBox} error=${error} />
    ${
    secret && html`<div class="secret" role="status">
      <p>Copy it now: the secret is shown only once.</p><pre>${secret.token}</pre>
      ${
      secret.kind === "join" && html`
        <p>On the host:</p>
        <pre>${`curl -fsSL https://get.ironmesh.io/install.sh | sudo sh -s -- agent \\\n  --server <https address of this server> --join-token '${secret.token}'`}</pre>
      `
    }</div>`
  }
  </form>`;
}

function Tokens() {
  const tokens = useData((signal) => get<{ items: Token[] }>("/v1/tokens", { signal }), []);
  const [error, setError] = useState<Error | undefined>();
  const revoke = async (id: string) => {
    setError(undefined);
    try {
      await api("DELETE", `/v1/tokens/${encodeURIComponent(id)}`);
      tokens.reload();
    } catch (e) {
      setError(e as Error);
    }
  };
  return html`<h2>Tokens</h2>
    <${ErrorBox} error=${tokens.error ?? error} />
    <${CreateToken} created=${tokens.reload} />
    ${
    !tokens.data ? html`<${Loading} />` : html`
      <table>
        <thead>
          <tr>
            <th scope="col">Id</th>
            <th scope="col">Kind</th>
            <th scope="col">Grants</th>
            <th scope="col">Description</th>
            <th scope="col">Created</th>
            <th scope="col">Expires</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>${tokens.data.items.map((t) =>
          html`
            <tr key=${t.id}>
              <td><code>${t.id}</code></td>
              <td>${t.kind}</td>
              <td>${t.kind === "api" ? t.role : `${t.namespace}/${t.serviceAccount}`}${t.node
                ? ` on ${t.node}`
                : ""}</td>
              <td>${t.description}</td>
              <td>
                <${Time} iso=${t.createdAt} />
              </td>
              <td>
                <${Time} iso=${t.expiresAt} />
              </td>
              <td>${t.revokedAt ? html`<${Badge} value="revoked" tone="bad" />` : html`
                <button type="button" class="write danger" onClick=${() => revoke(t.id)}
                  aria-label=${`Revoke ${t.id}`}>Revoke</button>
              `}</td>
            </tr>
          `
        )}</tbody>
      </table>
    `
  }`;
}

/** The identity page. */
export function Identity() {
  const { isAdmin } = useSession();
  return html`<h1>Identity</h1><${Ca} />${
    isAdmin ? html`<${Tokens} />` : html`<p class="muted">Tokens are managed by admins.</p>`
  }`;
}
