/**
 * The Ironmesh web dashboard, in the browser.
 *
 * Built with Preact and htm: Preact is a 4 kB React-compatible renderer with
 * hooks, htm gives it JSX-like tagged templates that need no compiler step,
 * so `deno bundle` alone turns this folder into one script the server
 * carries as a string (`scripts/build_ui.ts` → `api/ui/assets.ts`); no
 * framework build chain, no CDN, nothing fetched at run time. Neither uses
 * `eval` or inline scripts, so the page runs under a strict
 * Content-Security-Policy (`api/ui/page.ts`). Rendering in the browser, not on
 * the server, is what lets the API token stay in `sessionStorage` and travel
 * only as a header: a server-rendered page would need a cookie.
 *
 * Routing is by the URL's hash (`#/services/default/web`), so the server has
 * one page to serve and no token or data ever reaches a server log through a
 * URL. See docs/ui.md.
 */
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { api, followEvents, forgetToken, storedToken, storeToken } from "./api.ts";
import { NodeDetail, Nodes } from "./pages/nodes.ts";
import { Overview } from "./pages/overview.ts";
import { Policies, PolicyDetail } from "./pages/policies.ts";
import { PolicyEditor } from "./pages/policy_editor.ts";
import { Proxies, ProxyDetail } from "./pages/proxies.ts";
import { ServiceDetail, Services } from "./pages/services.ts";
import { Identity } from "./pages/identity.ts";
import { ErrorBox, html, type Session, SessionContext } from "./ui.ts";

interface Whoami {
  role: string;
  permissions: string[];
}

/** The page for a hash route. */
function route(hash: string) {
  const parts = hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  const [page = "overview", a, b, c] = parts;
  switch (page) {
    case "services":
      return a && b ? html`<${ServiceDetail} namespace=${a} name=${b} />` : html`<${Services} />`;
    case "nodes":
      return a ? html`<${NodeDetail} name=${a} />` : html`<${Nodes} />`;
    case "proxies":
      return a ? html`<${ProxyDetail} id=${a} />` : html`<${Proxies} />`;
    case "policies":
      if (a === "edit") return html`<${PolicyEditor} />`;
      return a && b && c
        ? html`<${PolicyDetail} kind=${a} namespace=${b === "-" ? "" : b} name=${c} />`
        : html`<${Policies} />`;
    case "identity":
      return html`<${Identity} />`;
    default:
      return html`<${Overview} />`;
  }
}

const NAV = [
  ["overview", "Overview"],
  ["services", "Services"],
  ["nodes", "Nodes"],
  ["proxies", "Proxies"],
  ["policies", "Policies"],
  ["identity", "Identity"],
] as const;

function SignIn({ signedIn }: { signedIn: (who: Whoami) => void }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState<Error | undefined>();
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    try {
      const { body } = await api<Whoami>("GET", "/v1/whoami", { token: token.trim() });
      storeToken(token.trim());
      setToken("");
      signedIn(body);
    } catch (err) {
      setError(err as Error);
    }
  };
  return html`
    <main class="sign-in">
      <h1>Ironmesh</h1>
      <form onSubmit=${submit}>
        <label for="token">API token</label>
        <input id="token" name="token" type="password" autocomplete="off" required value=${token}
          onInput=${(e: Event) => setToken((e.target as HTMLInputElement).value)} />
        <button type="submit">Sign in</button>
        <${ErrorBox} error=${error} />
        <p class="muted">The token is kept in this tab only and sent to this server as a header.
            Create one with <code>ironmesh token create --kind api --role viewer</code>.</p>
      </form>
    </main>
  `;
}

function App() {
  const [who, setWho] = useState<Whoami | null>(null);
  const [checking, setChecking] = useState(storedToken() !== null);
  const [hash, setHash] = useState(location.hash);
  const [revision, setRevision] = useState(0);

  useEffect(() => {
    const onHash = () => setHash(location.hash);
    const onSignOut = () => setWho(null);
    addEventListener("hashchange", onHash);
    addEventListener("ironmesh:signed-out", onSignOut);
    if (storedToken()) {
      api<Whoami>("GET", "/v1/whoami").then((a) => setWho(a.body), () => forgetToken())
        .finally(() => setChecking(false));
    }
    return () => {
      removeEventListener("hashchange", onHash);
      removeEventListener("ironmesh:signed-out", onSignOut);
    };
  }, []);

  useEffect(() => (who ? followEvents(setRevision) : undefined), [who]);

  if (checking) return html`<p class="loading">Signing in…</p>`;
  if (!who) return html`<${SignIn} signedIn=${setWho} />`;
  const session: Session = {
    role: who.role,
    canWrite: who.permissions.includes("write"),
    isAdmin: who.permissions.includes("admin"),
    revision,
  };
  const current = hash.replace(/^#\/?/, "").split("/")[0] || "overview";
  return html`
    <${SessionContext.Provider} value=${session}>
      <header class="top">
        <a class="brand" href="#/">Ironmesh</a>
        <nav aria-label="Main">
          <ul>${NAV.map(([id, label]) =>
            html`<li key=${id}><a href=${`#/${id}`} aria-current=${
              current === id ? "page" : undefined
            }>${label}</a></li>`
          )}</ul>
        </nav>
        <span class="who">Signed in as <strong data-role=${who.role}>${who.role}</strong></span>
        <button type="button" id="sign-out" onClick=${forgetToken}>Sign out</button>
      </header>
      <main id="content">${route(hash)}</main>
      <//>
  `;
}

const root = document.getElementById("app")!;
// Preact renders beside what is there; the shell's "Loading…" text must go.
root.replaceChildren();
render(html`<${App} />`, root);
