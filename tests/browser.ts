/**
 * A real browser for the dashboard's end-to-end tests: Debian's `chromium`
 * (installed by `.ci/run`) driven by `puppeteer-core`, which downloads no
 * browser of its own. Each page is watched for what must never happen: a
 * request that leaves the server's origin, a script error, or a
 * Content-Security-Policy violation.
 */
import { Buffer } from "node:buffer";
import puppeteer, { type Browser, type Page } from "puppeteer-core";

/** The Chromium binary; `IRONMESH_CHROMIUM` overrides it. */
export const CHROMIUM = Deno.env.get("IRONMESH_CHROMIUM") ?? "/usr/bin/chromium";

/** Starts a headless Chromium. */
export async function launchBrowser(): Promise<Browser> {
  return await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    // As root on a CI machine the sandbox cannot start; /dev/shm is small in containers.
    args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
    defaultViewport: { width: 1280, height: 800 },
  });
}

/** A page and what it did that a test must refuse. */
export interface WatchedPage {
  page: Page;
  /** Every URL the page requested. */
  requests: string[];
  /** Script errors, CSP violations and failed requests of the page. */
  problems: string[];
}

/** Opens a new tab (its own sessionStorage) that records every request and problem. */
export async function watchedPage(browser: Browser): Promise<WatchedPage> {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const requests: string[] = [];
  const problems: string[] = [];
  page.on("request", (r) => requests.push(r.url()));
  page.on("pageerror", (e) => problems.push(`page error: ${e}`));
  // A 4xx answer is logged by Chromium as a failed load; the page handles those itself.
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of 4\d\d/.test(m.text())) {
      problems.push(`console: ${m.text()}`);
    }
  });
  // Evaluated in the page, so written as text: the test program has no DOM types.
  await page.evaluateOnNewDocument(
    `document.addEventListener("securitypolicyviolation", (e) =>
      console.error("CSP violation: " + e.violatedDirective + " " + e.blockedURI))`,
  );
  return { page, requests, problems };
}

/** Signs in on the dashboard at `origin` with `token`, starting from `/` as a user would. */
export async function signIn(page: Page, origin: string, token: string): Promise<void> {
  await page.goto(`${origin}/`);
  await page.waitForSelector("#token");
  await page.type("#token", token);
  await page.click("button[type=submit]");
  await page.waitForSelector("[data-role]");
}

/** Goes to a hash route of the signed-in dashboard and waits for `selector`. */
export async function visit(page: Page, route: string, selector: string): Promise<void> {
  await page.evaluate((r) => location.hash = r, route);
  await page.waitForSelector(selector);
}

let axeSource: string | undefined;

/**
 * Runs axe-core on the page and returns its serious and critical
 * violations. axe is evaluated through DevTools, not added as a script tag,
 * so the page's CSP stays as strict as in production.
 */
export async function seriousViolations(page: Page): Promise<string[]> {
  axeSource ??= await Deno.readTextFile(
    new URL(import.meta.resolve("axe-core/axe.min.js")),
  );
  await page.evaluate(axeSource);
  const violations = await page.evaluate(
    `axe.run(document, { resultTypes: ["violations"] }).then((r) =>
      r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length })))`,
  ) as { id: string; impact: string; nodes: number }[];
  return violations.filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}, ${v.nodes} elements)`);
}

/** Saves a screenshot of the page as a PNG file. */
export async function screenshot(page: Page, file: string): Promise<void> {
  const bytes = await page.screenshot({ type: "png", fullPage: false });
  await Deno.writeFile(file, Buffer.from(bytes));
}
