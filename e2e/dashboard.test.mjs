// The admin dashboard in a real headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core; Playwright's own browser downloads are never used), against real
// processes: `levee demo`, the demo fleet behind a levee sidecar with the embedded registry.
//
// Flow: open /dashboard, wait for the stream to be live, break inventory (the sidecar's fault
// API makes its calls answer 503) and send traffic until the inventory breaker's row says `open`, screenshot it
// (artifacts/dashboard.png), then drive the controls: a change without the token shows the
// admin API's error, and with the token "force open" and "clear" change the breaker, and the
// level buttons change the fleet degradation level.
//
// Environment (all optional):
//   LEVEE_BIN                  levee (default: <repo>/target/debug/levee, or under
//                              CARGO_TARGET_DIR), with the demo fleet's programs beside it
//   CHROMIUM                   the browser (default /usr/bin/chromium)
//   LEVEE_E2E_ARTIFACTS        where dashboard.png goes (default <repo>/artifacts)

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import { chromium } from "playwright-core";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const targetDir = process.env.CARGO_TARGET_DIR ? resolve(repo, process.env.CARGO_TARGET_DIR) : join(repo, "target");
const LEVEE_BIN = process.env.LEVEE_BIN || join(targetDir, "debug", "levee");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const ARTIFACTS = process.env.LEVEE_E2E_ARTIFACTS || join(repo, "artifacts");
// Debug builds on a busy two-core machine: generous, but every wait is bounded.
const PATIENCE_MS = 30_000;

const processes = [];
let scratch;

/** Starts `command` and resolves once `ready(line)` returns a value for a line of its
 * stdout or stderr; rejects if it exits first or takes longer than PATIENCE_MS. */
function start(command, args, { env = {}, ready }) {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  processes.push(child);
  const output = [];
  return new Promise((resolveReady, rejectReady) => {
    const timer = setTimeout(() => rejectReady(new Error(`${command} not ready in ${PATIENCE_MS} ms; output:\n${output.join("\n")}`)), PATIENCE_MS);
    let found = {};
    const onLine = (line) => {
      output.push(line);
      if (output.length > 200) output.shift();
      const value = ready(line, found);
      if (value) {
        clearTimeout(timer);
        resolveReady({ child, value });
      }
    };
    for (const stream of [child.stdout, child.stderr]) {
      let buffer = "";
      stream.setEncoding("utf8");
      stream.on("data", (chunk) => {
        buffer += chunk;
        let i;
        while ((i = buffer.indexOf("\n")) >= 0) {
          onLine(buffer.slice(0, i));
          buffer = buffer.slice(i + 1);
        }
      });
    }
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      rejectReady(new Error(`${command} exited (${code ?? signal}) before it was ready; output:\n${output.join("\n")}`));
    });
  });
}

/**
 * Starts the system under test, `levee demo` (the demo fleet behind a levee sidecar, with the
 * embedded registry and the dashboard; no drill), on ports the OS picks. The demo prints
 * `dashboard: URL`, `proxy: URL` and `admin token: TOKEN` on stdout once the fleet is up.
 *
 * Returns { dashboardUrl, proxyUrl, adminUrl, token, inventoryPath, key }.
 */
async function launchSystem() {
  const token = randomBytes(16).toString("hex");
  scratch = mkdtempSync(join(tmpdir(), "levee-e2e-"));
  const { value } = await start(
    LEVEE_BIN,
    ["demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--storefront", "127.0.0.1:0", "--no-drill"],
    {
      env: { LEVEE_ADMIN_TOKEN: token },
      ready: (line, found) => {
        const m = line.match(/^(dashboard|proxy|admin token):\s*(\S+)/);
        if (m) found[m[1]] = m[2];
        return found.dashboard && found.proxy && found["admin token"] ? found : null;
      },
    },
  );
  return {
    dashboardUrl: value.dashboard,
    adminUrl: new URL(value.dashboard).origin,
    proxyUrl: value.proxy.replace(/\/$/, ""),
    token: value["admin token"],
    inventoryPath: "/inventory/items/1",
    key: "inventory",
  };
}

/** Starts (`on`) or heals the outage: every inventory attempt through the sidecar answers
 * 503, injected by the proxy's fault API (`PUT`/`DELETE /api/faults/inventory`). */
async function outage(system, on) {
  const r = await fetch(`${system.adminUrl}/api/faults/inventory`, {
    method: on ? "PUT" : "DELETE",
    headers: { authorization: `Bearer ${system.token}`, "content-type": "application/json" },
    body: on ? JSON.stringify({ abort: { status: 503, percent: 100 } }) : undefined,
    signal: AbortSignal.timeout(5000),
  });
  assert.equal(r.status, 200, `${on ? "PUT" : "DELETE"} /api/faults/inventory: ${await r.text()}`);
}

/** One call through the proxy. */
async function call(system) {
  try {
    const r = await fetch(system.proxyUrl + system.inventoryPath, { signal: AbortSignal.timeout(5000) });
    await r.arrayBuffer();
    return r.status;
  } catch {
    return 0;
  }
}

/** Sends traffic until `done()` is true, bounded by PATIENCE_MS. */
async function trafficUntil(system, done, what) {
  const deadline = Date.now() + PATIENCE_MS;
  while (Date.now() < deadline) {
    if (await done()) return;
    await Promise.all([call(system), call(system), call(system)]);
  }
  assert.fail(`timed out waiting for ${what}`);
}

let system;
let browser;
let page;

before(async () => {
  system = await launchSystem();
  // A fresh profile directory per run (removed with the scratch directory).
  browser = await chromium.launchPersistentContext(join(scratch, "chromium-profile"), {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1440, height: 1000 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  page = browser.pages()[0] || (await browser.newPage());
  page.on("pageerror", (e) => console.error(`page error: ${e.message}`));
});

after(async () => {
  await browser?.close().catch(() => {});
  for (const child of processes) {
    if (child.exitCode === null) child.kill("SIGTERM");
  }
  await Promise.all(
    processes.map(
      (child) =>
        new Promise((done) => {
          if (child.exitCode !== null || child.signalCode !== null) return done();
          const force = setTimeout(() => child.kill("SIGKILL"), 10_000);
          child.on("exit", () => {
            clearTimeout(force);
            done();
          });
        }),
    ),
  );
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

const row = () => page.locator(`[data-breaker="${system.key}"]`);
const stateText = () => row().locator('[data-field="state"]');
async function currentState() {
  return ((await stateText().textContent({ timeout: 1000 }).catch(() => "")) || "").trim();
}

test("the dashboard goes live, shows an outage as it happens and its controls work", async () => {
  const response = await page.goto(system.dashboardUrl);
  assert.equal(response.status(), 200);
  assert.match(response.headers()["content-security-policy"] || "", /script-src 'self'/);

  // The stream connects and the first snapshot is in.
  await page.locator('[data-field="stream"]').filter({ hasText: /^live$/ }).waitFor({ timeout: PATIENCE_MS });
  await stateText().filter({ hasText: /^closed$/ }).waitFor({ timeout: PATIENCE_MS });
  assert.equal((await page.locator('[data-field="level"]').textContent()).trim(), "0");

  // The outage: every inventory call fails until the breaker's row says open.
  await outage(system, true);
  await trafficUntil(system, async () => (await currentState()) === "open", "the inventory breaker to show open");
  const feed = page.locator('[data-field="transitions"] li').filter({ hasText: system.key }).filter({ hasText: "open" });
  await feed.first().waitFor({ timeout: PATIENCE_MS });
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, "dashboard.png"), fullPage: true });
  await outage(system, false);

  // A change without the token is refused, and the page says why.
  await page.evaluate(() => sessionStorage.removeItem("levee.admin.token"));
  await page.locator('[data-control="token"]').fill("");
  await row().locator('[data-action="forced_open"]').click();
  await page.locator(".message.error").filter({ hasText: "401" }).first().waitFor({ timeout: PATIENCE_MS });
  assert.notEqual(await currentState(), "forced_open");

  // With the token: force open wins over any traffic...
  await page.locator('[data-control="token"]').fill(system.token);
  await row().locator('[data-action="forced_open"]').click();
  await stateText().filter({ hasText: /^forced_open$/ }).waitFor({ timeout: PATIENCE_MS });
  for (let i = 0; i < 5; i++) await call(system);
  assert.equal(await currentState(), "forced_open", "healthy traffic does not undo an operator's force open");

  // ...and clear hands the breaker back: with inventory healthy it closes (or is probing).
  await row().locator('[data-action="clear"]').click();
  await trafficUntil(system, async () => ["closed", "half_open"].includes(await currentState()), "the breaker to leave forced_open after clear");

  // The degradation level buttons set the fleet level through the registry.
  await page.locator('[data-level="2"]').click();
  await page.locator('[data-field="level"]').filter({ hasText: /^2$/ }).waitFor({ timeout: PATIENCE_MS });
  await page.locator('[data-level="0"]').click();
  await page.locator('[data-field="level"]').filter({ hasText: /^0$/ }).waitFor({ timeout: PATIENCE_MS });

  // Nothing the page tried was swallowed: the only errors shown are the expected 401.
  const errors = await page.locator(".message.error").allTextContents();
  assert.ok(errors.every((e) => e.includes("401")), `unexpected errors shown: ${errors.join(" | ")}`);
});
