import assert from "node:assert/strict";
import { withTestApp } from "./_testing.ts";
import { CONTENT_SECURITY_POLICY } from "./ui/page.ts";

const registration = (hostname: string, check: "passing" | "failing") => ({
  hostname,
  addresses: ["10.0.0.1"],
  agentVersion: "test",
  heartbeatInterval: "5s",
  instances: [{ id: "web", service: "web", port: 8080, check }],
});

Deno.test("GET / sends a browser to /ui/ and answers API clients with the JSON 404", () =>
  withTestApp(async ({ app }) => {
    const browser = await app.request("/", {
      headers: { accept: "text/html,application/xhtml+xml,*/*;q=0.8" },
    });
    assert.equal(browser.status, 302);
    assert.equal(browser.headers.get("location"), "/ui/");
    const client = await app.request("/", { headers: { accept: "application/json" } });
    assert.equal(client.status, 404);
    assert.equal(client.headers.get("content-type"), "application/problem+json");
    assert.equal((await client.json()).detail, "No route for GET /");
    assert.equal((await app.request("/")).status, 404);
  }));

Deno.test("GET /ui/ serves the page and its assets from the program under a strict CSP", () =>
  withTestApp(async ({ app }) => {
    const page = await app.request("/ui/");
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
    const csp = page.headers.get("content-security-policy") ?? "";
    assert.equal(csp, CONTENT_SECURITY_POLICY);
    for (const directive of ["default-src 'none'", "script-src 'self'", "connect-src 'self'"]) {
      assert.ok(csp.includes(directive), directive);
    }
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https?:/);
    const html = await page.text();
    // Only the two same-origin assets; no inline script, nothing from elsewhere.
    const sources = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    assert.deepEqual(sources, ["data:,", "/ui/assets/app.css", "/ui/assets/app.js", "/docs"]);
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/);

    const script = await app.request("/ui/assets/app.js");
    assert.equal(script.status, 200);
    assert.match(script.headers.get("content-type") ?? "", /^text\/javascript/);
    assert.equal(script.headers.get("x-content-type-options"), "nosniff");
    const js = await script.text();
    assert.ok(js.length > 10_000, "the bundled client");
    // URLs as names only: XML namespaces, problem types, the documented install script.
    assert.doesNotMatch(
      js,
      /https?:\/\/(?!www\.w3\.org\/|(?:get\.)?ironmesh\.io\/)/i,
      "remote URL",
    );
    const style = await app.request("/ui/assets/app.css");
    assert.match(style.headers.get("content-type") ?? "", /^text\/css/);
    const missing = await app.request("/ui/assets/nope.js");
    assert.equal(missing.status, 404);
    assert.equal(missing.headers.get("content-type"), "application/problem+json");
  }));

Deno.test("GET /v1/whoami tells the caller its role and permissions", () =>
  withTestApp(async ({ app, tokenFor }) => {
    const ask = async (token: string) =>
      await (await app.request("/v1/whoami", { headers: { authorization: `Bearer ${token}` } }))
        .json();
    const viewer = await ask(await tokenFor("viewer"));
    assert.equal(viewer.role, "viewer");
    assert.deepEqual(viewer.permissions, ["read"]);
    assert.deepEqual((await ask(await tokenFor("operator"))).permissions, [
      "read",
      "write",
      "agent",
    ]);
    assert.equal((await app.request("/v1/whoami")).status, 401);
  }));

Deno.test("GET /v1/summary counts instances by health and nodes by status", () =>
  withTestApp(async ({ app, tokenFor }) => {
    const admin = { authorization: `Bearer ${await tokenFor("admin")}` };
    for (const [node, check] of [["vm-1", "passing"], ["vm-2", "failing"], ["vm-3", "passing"]]) {
      const res = await app.request(`/v1/nodes/${node}/registration`, {
        method: "PUT",
        headers: { ...admin, "content-type": "application/json" },
        body: JSON.stringify(registration(node!, check as "passing" | "failing")),
      });
      assert.equal(res.status, 200);
    }
    const drained = await app.request("/v1/instances/web@vm-3", {
      method: "PATCH",
      headers: { ...admin, "content-type": "application/json" },
      body: JSON.stringify({ draining: true }),
    });
    assert.equal(drained.status, 200);
    const summary = await (await app.request("/v1/summary", { headers: admin })).json();
    assert.equal(summary.services, 1);
    assert.deepEqual(summary.instances, { healthy: 1, unhealthy: 1, draining: 1 });
    assert.deepEqual(summary.nodes, { alive: 3, stale: 0, draining: 0 });
    assert.deepEqual(summary.proxies, { connected: 0, inSync: 0, outOfSync: 0 });
  }));
