/** What every page of the dashboard shares: the session, data loading, and small widgets. */
import { createContext, type VNode } from "preact";
import { useCallback, useContext, useEffect, useRef, useState } from "preact/hooks";
import { html } from "htm/preact";
import { api, type RequestOptions } from "./api.ts";

export { html };

/** Who is signed in, what they may do, and the registry revision the page last heard of. */
export interface Session {
  role: string;
  /** Operators and admins: drain, policy writes. */
  canWrite: boolean;
  /** Admins: tokens, rotation, decommission. */
  isAdmin: boolean;
  /** The latest registry revision from the event stream; pages that show the registry reload on it. */
  revision: number;
}

/** The signed-in session; pages read it with {@link useSession}. */
export const SessionContext = createContext<Session>({
  role: "viewer",
  canWrite: false,
  isAdmin: false,
  revision: 0,
});

/** The signed-in session. */
export function useSession(): Session {
  return useContext(SessionContext);
}

/** What {@link useData} holds. */
export interface Loaded<T> {
  data: T | undefined;
  error: Error | undefined;
  reload: () => void;
}

/**
 * Loads `load()` when `deps` change, and again on each registry change when
 * `live` (the event stream moves the session's revision). The previous data
 * stays on screen while the next load runs, so live updates never flicker.
 */
export function useData<T>(
  load: (signal: AbortSignal) => Promise<T>,
  deps: readonly unknown[],
  options: { live?: boolean } = {},
): Loaded<T> {
  const { revision } = useSession();
  const [state, setState] = useState<{ data: T | undefined; error: Error | undefined }>({
    data: undefined,
    error: undefined,
  });
  const [nonce, setNonce] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    const abort = new AbortController();
    loadRef.current(abort.signal).then(
      (data) => !abort.signal.aborted && setState({ data, error: undefined }),
      (error) => !abort.signal.aborted && setState((s) => ({ data: s.data, error })),
    );
    return () => abort.abort();
  }, [...deps, nonce, options.live ? revision : 0]);
  const reload = useCallback(() => setNonce((n) => n + 1), []);
  return { ...state, reload };
}

/** GETs `path` and returns its body. */
export async function get<T>(path: string, options: RequestOptions = {}): Promise<T> {
  return (await api<T>("GET", path, options)).body;
}

/** A page of a list, as every list of the API answers. */
export interface ListPage<T> {
  items: T[];
  next: string | null;
}

/** Rows per page of every table: small enough to render at once at any mesh size. */
export const PAGE_SIZE = 50;

/**
 * A paged list of the API with previous/next: only one page is ever fetched
 * and drawn, whatever the size of the mesh.
 */
export function usePagedList<T>(
  path: string,
  query: Record<string, string | undefined>,
  options: { live?: boolean } = {},
): Loaded<ListPage<T>> & { pager: VNode } {
  const [cursors, setCursors] = useState<string[]>([]);
  const key = JSON.stringify([path, query]);
  useEffect(() => setCursors([]), [key]);
  const cursor = cursors[cursors.length - 1];
  const loaded = useData(
    (signal) => get<ListPage<T>>(path, { query: { ...query, limit: PAGE_SIZE, cursor }, signal }),
    [key, cursor],
    options,
  );
  const next = loaded.data?.next ?? null;
  const pager = html`
    <nav class="pager" aria-label="Pages">
      <button type="button" disabled=${cursors.length === 0} onClick=${() =>
        setCursors((c) => c.slice(0, -1))}>Previous page</button>
      <span>Page ${cursors.length + 1}</span>
      <button type="button" disabled=${next === null} onClick=${() =>
        next !== null && setCursors((c) => [...c, next])}>Next page</button>
    </nav>
  `;
  return { ...loaded, pager };
}

/** An error from the API, for screen readers too. */
export function ErrorBox({ error }: { error: Error | undefined }) {
  if (!error) return null;
  return html`<p class="error" role="alert">${error.message}</p>`;
}

/** Placeholder while the first load runs. */
export function Loading() {
  return html`<p class="loading" aria-busy="true">Loading…</p>`;
}

/** An instance's health as a coloured badge. */
export function Health({ value }: { value: string }) {
  return html`<span class=${`badge health-${value}`} data-health=${value}>${value}</span>`;
}

/** A neutral badge. */
export function Badge({ value, tone = "neutral" }: { value: string; tone?: string }) {
  return html`<span class=${`badge tone-${tone}`}>${value}</span>`;
}

/** Labels as `key=value` chips. */
export function Labels({ labels }: { labels: Record<string, string> }) {
  const entries = Object.entries(labels ?? {});
  if (entries.length === 0) return html`<span class="muted">none</span>`;
  return html`<span class="labels">${
    entries.map(([k, v]) => html`<code class="label" key=${k}>${k}=${v}</code>`)
  }</span>`;
}

/** A timestamp as the user's local time, with the ISO text on hover. */
export function Time({ iso }: { iso: string | null | undefined }) {
  if (!iso) return html`<span class="muted">never</span>`;
  return html`<time datetime=${iso} title=${iso}>${new Date(iso).toLocaleString()}</time>`;
}

/**
 * A JSON value as a collapsible tree of native `<details>` (keyboard and
 * screen-reader friendly); children are drawn only once opened, so a large
 * config dump costs what the user unfolds.
 */
export function Tree(
  { name, value, open = false }: { name: string; value: unknown; open?: boolean },
) {
  const [isOpen, setOpen] = useState(open);
  if (value === null || typeof value !== "object") {
    return html`<div class="leaf"><span class="key">${name}</span>: <code>${
      JSON.stringify(value)
    }</code></div>`;
  }
  const entries = Array.isArray(value)
    ? value.map((v, i) => [String(i), v] as const)
    : Object.entries(value as Record<string, unknown>);
  const size = Array.isArray(value) ? `[${entries.length}]` : `{${entries.length}}`;
  return html`<details class="tree" open=${isOpen} onToggle=${(e: Event) =>
    setOpen((e.currentTarget as HTMLDetailsElement).open)}>
    <summary><span class="key">${name}</span> <span class="muted">${size}</span></summary>
    ${isOpen && entries.map(([k, v]) => html`<${Tree} key=${k} name=${k} value=${v} />`)}
  </details>`;
}

/** One change between two JSON values (`JsonChange` of the API). */
export interface JsonChange {
  pointer: string;
  before?: unknown;
  after?: unknown;
}

/** A list of changes: where, what it was, what it becomes. */
export function Diff({ changes }: { changes: readonly JsonChange[] }) {
  if (changes.length === 0) return html`<p class="muted">No change.</p>`;
  const show = (v: unknown) => v === undefined ? "" : JSON.stringify(v);
  return html`
    <table class="diff">
      <thead>
        <tr>
          <th scope="col">Field</th>
          <th scope="col">Before</th>
          <th scope="col">After</th>
        </tr>
      </thead>
      <tbody>${changes.map((c) =>
        html`
          <tr key=${c.pointer}>
            <td><code>${c.pointer || "/"}</code></td>
            <td class="before"><code>${show(c.before)}</code></td>
            <td class="after"><code>${show(c.after)}</code></td>
          </tr>
        `
      )}</tbody>
    </table>
  `;
}

/** A link inside the dashboard (hash routes, so the server serves one page). */
export function href(...parts: string[]): string {
  return "#/" + parts.map(encodeURIComponent).join("/");
}
