/**
 * A sample application for the quickstart and the end-to-end tests: answers
 * `/` with a greeting and `/healthz` with 200, or 503 after `POST /fail`
 * (and 200 again after `POST /recover`), so the health model can be watched
 * at work. Port 0 picks a free port; the bound address is printed.
 *
 *   deno run --allow-net examples/hello.ts [PORT]
 */
const port = Number(Deno.args[0] ?? 8080);
let healthy = true;

Deno.serve({
  hostname: "127.0.0.1",
  port,
  onListen: (addr) => console.log(`hello listening on ${addr.hostname}:${addr.port}`),
}, (req) => {
  const { pathname } = new URL(req.url);
  if (pathname === "/healthz") {
    return new Response(healthy ? "ok\n" : "failing\n", { status: healthy ? 200 : 503 });
  }
  if (req.method === "POST" && pathname === "/fail") healthy = false;
  if (req.method === "POST" && pathname === "/recover") healthy = true;
  return new Response(`hello from port ${port} (healthy: ${healthy})\n`);
});
