/**
 * The web dashboard in a real browser (Debian's Chromium through
 * puppeteer-core) against the real server, a real agent and the sample app
 * it checks: roles, drain, live health, the policy editor's way from a
 * mistake to a rollback, accessibility (axe-core) on every page, and no
 * request leaving the server's origin. `IRONMESH_UI_SCREENSHOTS=DIR` also
 * saves the screenshots docs/ui.md shows.
 */
import assert from "node:assert/strict";
import type { Page } from "puppeteer-core";
import {
  launchBrowser,
  screenshot,
  seriousViolations,
  signIn,
  visit,
  type WatchedPage,
  watchedPage,
} from "./browser.ts";
import { ServerProc, startAgent, startApp, tempDir, waitFor } from "./harness.ts";

/** The app's check interval: an instance must turn red on the page within it plus 1 s. */
const CHECK_INTERVAL_MS = 1000;

function agentConfig(node: string, appPort: number): string {
  return `
node:
  name: ${node}
  address: 127.0.0.1
  labels: {zone: test-a}
heartbeat: {interval: 500ms}
services:
  - name: hello
    port: ${appPort}
    labels: {version: v1}
    check:
      http: "http://127.0.0.1:${appPort}/healthz"
      interval: ${CHECK_INTERVAL_MS}ms
      timeout: 500ms
      unhealthyThreshold: 1
      healthyThreshold: 1
  - name: front
    namespace: web
    port: ${appPort + 1}
upstreams:
  - {service: hello.default, localPort: 19081}
`;
}

/** The pages of the dashboard, each with an element that shows it has rendered. */
const PAGES: [route: string, ready: string][] = [
  ["#/overview", ".cards"],
  ["#/services", "a[href='#/services/default/hello']"],
  ["#/services/default/hello", "tr[data-instance='hello@vm-1']"],
  ["#/nodes", "tr[data-node='vm-1']"],
  ["#/nodes/vm-1", "tr[data-node='vm-1']"],
  ["#/proxies", "main h1"],
  ["#/policies", "main table, main p.muted"],
  ["#/policies/edit", "#policy-yaml"],
  ["#/identity", "main table"],
];

/** Controls that change something; a viewer must see none. */
const WRITE_CONTROLS = ".write, button[id=apply], button[id=dry-run]";

const BROKEN_POLICY = `apiVersion: ironmesh.io/v1
kind: TrafficRoute
metadata: {name: hello, namespace: default}
spec:
  service: hello
  rules:
    - split:
        - subset: v1
          weight: 100
          color: blue
`;

const DESTINATION = `apiVersion: ironmesh.io/v1
kind: DestinationPolicy
metadata: {name: hello, namespace: default}
spec:
  service: hello
  subsets: [{name: v1, labels: {version: v1}}]
---
`;

function fixed(policy: string, timeout: string): string {
  return DESTINATION + policy.replace("          color: blue\n", `      timeout: ${timeout}\n`);
}

async function rowHealth(page: Page, id: string): Promise<string | null> {
  return await page.$eval(`tr[data-instance='${id}']`, (tr) => tr.getAttribute("data-health"));
}

/** Replaces the editor's text. */
async function typePolicy(page: Page, text: string): Promise<void> {
  await page.$eval("#policy-yaml", (el, value) => {
    const area = el as unknown as { value: string; dispatchEvent(e: Event): boolean };
    area.value = value as string;
    area.dispatchEvent(new Event("input", { bubbles: true }));
  }, text);
}

Deno.test("dashboard e2e: roles, drain, live health, policy edit to rollback, a11y, one origin", async (t) => {
  const dir = await tempDir("ui");
  const server = await ServerProc.start(dir);
  const app = await startApp();
  const agent = await startAgent("vm-1", server, agentConfig("vm-1", app.port), {
    joinToken: await server.joinToken({ node: "vm-1" }),
  });
  const browser = await launchBrowser();
  const tabs: WatchedPage[] = [];
  const tab = async () => {
    const watched = await watchedPage(browser);
    tabs.push(watched);
    return watched;
  };
  const shots = Deno.env.get("IRONMESH_UI_SCREENSHOTS");
  try {
    await waitFor(
      "hello healthy",
      async () => (await server.instance("hello@vm-1"))?.health === "healthy",
      30_000,
    );
    const viewerToken = await server.token("viewer");
    const operatorToken = await server.token("operator");

    await t.step(
      "a viewer sees every page and no write control; axe finds nothing serious",
      async () => {
        const { page } = await tab();
        await signIn(page, server.url, viewerToken);
        assert.ok(page.url().startsWith(`${server.url}/ui/`), page.url());
        for (const [route, ready] of PAGES) {
          await visit(page, route, ready);
          assert.deepEqual(
            await page.$$eval(WRITE_CONTROLS, (els) => els.map((e) => e.outerHTML)),
            [],
            route,
          );
          assert.deepEqual(await seriousViolations(page), [], `accessibility of ${route}`);
        }
        assert.equal(await page.$(`button[aria-label='Drain hello@vm-1']`), null);
      },
    );

    await t.step(
      "an operator drains an instance and sees it drained, then undrains it",
      async () => {
        const { page } = await tab();
        await signIn(page, server.url, operatorToken);
        await visit(page, "#/services/default/hello", "button[aria-label='Drain hello@vm-1']");
        await page.click("button[aria-label='Drain hello@vm-1']");
        await page.waitForSelector("tr[data-instance='hello@vm-1'][data-health='draining']");
        assert.equal((await server.instance("hello@vm-1"))?.health, "draining");
        await page.click("button[aria-label='Undrain hello@vm-1']");
        await page.waitForSelector("tr[data-instance='hello@vm-1'][data-health='healthy']");
      },
    );

    await t.step(
      "a failing check turns the row unhealthy on the open page, without a reload",
      async () => {
        const { page } = await tab();
        await signIn(page, server.url, operatorToken);
        await visit(
          page,
          "#/services/default/hello",
          "tr[data-instance='hello@vm-1'][data-health='healthy']",
        );
        // A reload would lose this marker.
        await page.evaluate(() => (globalThis as unknown as { marker: number }).marker = 42);
        const start = Date.now();
        await fetch(`http://127.0.0.1:${app.port}/fail`, { method: "POST" }).then((r) =>
          r.body?.cancel()
        );
        await page.waitForSelector("tr[data-instance='hello@vm-1'][data-health='unhealthy']", {
          timeout: 10_000,
        });
        const took = Date.now() - start;
        assert.ok(took <= CHECK_INTERVAL_MS + 1000, `turned unhealthy after ${took} ms`);
        assert.equal(
          await page.evaluate(() => (globalThis as unknown as { marker: number }).marker),
          42,
        );
        assert.match(
          await page.$eval("tr[data-instance='hello@vm-1'] .output", (e) => e.textContent ?? ""),
          /503/,
        );
        if (shots) await screenshot(page, `${shots}/service.png`);
        await fetch(`http://127.0.0.1:${app.port}/recover`, { method: "POST" }).then((r) =>
          r.body?.cancel()
        );
        await page.waitForSelector("tr[data-instance='hello@vm-1'][data-health='healthy']");
        assert.equal(await rowHealth(page, "hello@vm-1"), "healthy");
      },
    );

    await t.step(
      "a policy mistake is shown at its line; dry run, apply, history, rollback",
      async () => {
        const { page } = await tab();
        await signIn(page, server.url, operatorToken);
        await visit(page, "#/policies/edit", "#policy-yaml");
        await typePolicy(page, DESTINATION + BROKEN_POLICY);
        await page.click("#dry-run");
        const problem = await page.waitForSelector("li.problem");
        const line = Number(await problem!.evaluate((e) => e.getAttribute("data-line")));
        const pointer = await problem!.evaluate((e) => e.getAttribute("data-pointer"));
        assert.equal(pointer, "/spec/rules/0/split/0/color");
        // The unknown field's own line in the editor, which the gutter marks.
        const text = DESTINATION + BROKEN_POLICY;
        assert.equal(text.split("\n")[line - 1]?.trim(), "color: blue");
        assert.equal(await page.$eval(".gutter .bad-line", (e) => e.textContent), String(line));
        assert.equal(
          await page.$eval("#policy-yaml", (e) => e.getAttribute("aria-invalid")),
          "true",
        );
        if (shots) await screenshot(page, `${shots}/policy-problem.png`);

        await typePolicy(page, fixed(BROKEN_POLICY, "3s"));
        await page.click("#dry-run");
        await page.waitForSelector("section[aria-label='Dry run'] details.proxy-change");
        const dry = await page.$eval("section[aria-label='Dry run']", (e) => e.textContent ?? "");
        assert.match(dry, /vm-1/);
        assert.equal(await page.$$eval("li.problem", (els) => els.length), 0);
        assert.equal(
          (await server.api("GET", "/v1/policies/trafficroute/default/hello")).status,
          404,
          "a dry run stores nothing",
        );
        if (shots) await screenshot(page, `${shots}/policy-dry-run.png`);

        await page.click("#apply");
        await page.waitForSelector("section[aria-label='Applied']");
        await typePolicy(page, fixed(BROKEN_POLICY, "7s"));
        await page.click("#apply");
        await waitFor(
          "revision 2",
          async () =>
            (await server.api("GET", "/v1/policies/trafficroute/default/hello")).body?.metadata
              ?.revision === 2,
        );

        await visit(page, "#/policies/TrafficRoute/default/hello", "tr[data-revision='2']");
        assert.match(
          await page.$eval("pre.yaml", (e) => e.textContent ?? ""),
          /timeout: 7s/,
        );
        await page.click("button[aria-label='Roll back to revision 1']");
        await page.waitForSelector("tr[data-revision='3']");
        await page.waitForFunction(
          `/timeout: 3s/.test(document.querySelector("pre.yaml")?.textContent ?? "")`,
        );
        const stored = await server.api("GET", "/v1/policies/trafficroute/default/hello");
        assert.equal(stored.body.spec.rules[0].timeout, "3s");
        if (shots) await screenshot(page, `${shots}/policy-history.png`);
      },
    );

    await t.step("screenshots of the main pages", async () => {
      if (!shots) return;
      const { page } = await tab();
      await signIn(page, server.url, server.adminToken);
      for (
        const [name, route, ready] of [
          ["overview", "#/overview", ".cards"],
          ["nodes", "#/nodes", "tr[data-node='vm-1']"],
          ["proxies", "#/proxies", "main h1"],
          ["policies", "#/policies", "main table"],
          ["identity", "#/identity", "main table"],
        ]
      ) {
        await visit(page, route!, ready!);
        await screenshot(page, `${shots}/${name}.png`);
      }
    });

    await t.step("no request left the server's origin, and no script or CSP error happened", () => {
      for (const { requests, problems } of tabs) {
        assert.deepEqual(
          requests.filter((u) => !u.startsWith(`${server.url}/`) && !u.startsWith("data:")),
          [],
        );
        assert.deepEqual(problems, []);
      }
    });
  } finally {
    await browser.close();
    await agent.proc.stop("SIGKILL");
    await app.proc.stop("SIGKILL");
    await server.proc.stop("SIGKILL");
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
