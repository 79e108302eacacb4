/**
 * The dashboard's HTML shell and the headers every dashboard answer carries.
 * The page is static: the client script (`client/`, built into `assets.ts`)
 * renders everything and talks to the REST API with the token the user
 * signed in with, so the server never renders data into HTML.
 */

/**
 * What a dashboard page may load and run: its own script and stylesheet, the
 * same origin's API, nothing inline, no `eval`, no frames, no forms posting
 * elsewhere. `img-src data:` is for the empty favicon only.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** Headers of every dashboard answer: the policy above, and no sniffing, no referrer. */
export const UI_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  // Assets are small and served from memory; a new server version must never run an old script.
  "cache-control": "no-cache",
};

/** Where the dashboard lives. */
export const UI_PATH = "/ui/";

/** The one HTML page of the dashboard: an empty shell the client script fills in. */
export function dashboardPage(): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Ironmesh</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${UI_PATH}assets/app.css">
<script type="module" src="${UI_PATH}assets/app.js"></script>
</head>
<body>
<div id="app"><p class="loading">Loading the Ironmesh dashboard…</p></div>
<noscript><p>The Ironmesh dashboard needs JavaScript. The REST API is documented at <a href="/docs">/docs</a>.</p></noscript>
</body>
</html>
`;
}
