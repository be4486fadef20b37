// Shared by the browser scenarios: Debian's Chromium through playwright-core, with the flags
// measured to work on the build machines (see the project's notes), and small helpers that
// wait for events with a bound instead of sleeping.
import { chromium } from "playwright-core";

export const WAIT_MS = 15000;

// With `denyMedia`, the fake permission prompt is left out: headless Chromium then refuses
// microphone access, as a person clicking "Block" would.
export async function launch({ denyMedia = false } = {}) {
  const args = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-device-for-media-stream", "--allow-loopback-in-peer-connection",
  ];
  if (!denyMedia) args.push("--use-fake-ui-for-media-stream");
  return chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args });
}

// A browser context = one device with its own cookies.
export async function device(browser, name) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, userAgent: `${name} (X11; Linux x86_64) Chrome/156.0 hub-e2e` });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on("console", (m) => console.error(`[${name} console] ${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => console.error(`[${name} pageerror] ${e.message}`));
  return { context, page, name };
}

export function step(message) {
  console.log(JSON.stringify({ step: message }));
}

export function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

// Runs a scenario; exit code 0 on success, 1 with the error (and a screenshot when asked).
export async function run(scenario, options = {}) {
  const browser = await launch(options);
  const pages = [];
  try {
    await scenario(browser, pages);
    console.log(JSON.stringify({ ok: true }));
  } catch (e) {
    console.log(JSON.stringify({ ok: false, error: String(e?.stack ?? e) }));
    if (process.env.SCREENSHOT_DIR) {
      for (const p of pages) {
        await p.page.screenshot({ path: `${process.env.SCREENSHOT_DIR}/${p.name}-failure.png`, fullPage: true }).catch(() => {});
      }
    }
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

// Signs in on the demo form as `name`; with `ready`, waits until the phone is connected.
export async function signIn(page, name, { ready = true } = {}) {
  const hub = process.env.HUB_URL;
  await page.goto(`${hub}/auth/demo`);
  await page.fill("#name", name);
  await page.click("button[type=submit]");
  await page.waitForURL(`${hub}/`);
  if (ready) {
    await page.waitForFunction(() => document.getElementById("ws-state").textContent === "Ready to call.", null, { timeout: WAIT_MS, polling: 100 });
  }
}
