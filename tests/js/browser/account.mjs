// The start page as a person uses it: demo sign-in on two devices, the device list, ending
// the other device, signing out everywhere. HUB_URL is the hub's https origin.
import { run, device, step, check, WAIT_MS } from "./lib.mjs";

const hub = process.env.HUB_URL;

async function signIn(d, name) {
  await d.page.goto(`${hub}/`);
  await d.page.locator("#signin-link").waitFor({ state: "visible" });
  await d.page.locator("#demo-banner").waitFor({ state: "visible" });
  await d.page.click("#signin-link");
  await d.page.waitForURL(`${hub}/auth/demo`);
  check((await d.page.textContent("body")).includes("Demo mode, no real authentication"), "demo warning on the form");
  await d.page.fill("#name", name);
  await d.page.click("button[type=submit]");
  await d.page.waitForURL(`${hub}/`);
  await d.page.locator("#account").waitFor({ state: "visible" });
}

async function deviceCount(d) {
  return d.page.locator("#devices li").count();
}

await run(async (browser, pages) => {
  const laptop = await device(browser, "laptop");
  const phone = await device(browser, "phone");
  pages.push(laptop, phone);

  step("sign in on the laptop");
  await signIn(laptop, "Ada Lovelace");
  check((await laptop.page.textContent("#me-name")) === "Ada Lovelace", "name shown");
  check(/^\d{2,8}$/.test((await laptop.page.textContent("#me-extension")).trim()), "extension shown");
  check((await deviceCount(laptop)) === 1, "one device");
  check((await laptop.page.textContent("#devices")).includes("this device"), "current device marked");

  step("sign in on the phone");
  await signIn(phone, "Ada Lovelace");
  await phone.page.waitForFunction(() => document.querySelectorAll("#devices li").length === 2, null, { timeout: WAIT_MS, polling: 100 });

  step("the laptop sees both devices and signs the phone out");
  await laptop.page.reload();
  await laptop.page.waitForFunction(() => document.querySelectorAll("#devices li").length === 2, null, { timeout: WAIT_MS, polling: 100 });
  if (process.env.SCREENSHOT_DIR) await laptop.page.screenshot({ path: `${process.env.SCREENSHOT_DIR}/account.png`, fullPage: true });
  await laptop.page.click("#devices li:not(:has(.tag)) button");
  await laptop.page.waitForFunction(() => document.querySelectorAll("#devices li").length === 1, null, { timeout: WAIT_MS, polling: 100 });

  step("the phone is signed out");
  await phone.page.reload();
  await phone.page.locator("#signin").waitFor({ state: "visible" });
  check(!(await phone.page.locator("#account").isVisible()), "phone shows sign-in, not the account");

  step("sign in again on the phone, then sign out everywhere from the laptop");
  await signIn(phone, "Ada Lovelace");
  await laptop.page.reload();
  await laptop.page.waitForFunction(() => document.querySelectorAll("#devices li").length === 2, null, { timeout: WAIT_MS, polling: 100 });
  await laptop.page.click("#logout-all");
  await laptop.page.locator("#signin").waitFor({ state: "visible" });
  await phone.page.reload();
  await phone.page.locator("#signin").waitFor({ state: "visible" });

  step("sign out on this device with the button");
  await signIn(laptop, "Ada Lovelace");
  await laptop.page.click("form[action='/logout'] button");
  await laptop.page.locator("#signin").waitFor({ state: "visible" });
});
