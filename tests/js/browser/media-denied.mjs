// A person who blocks the microphone is told so in words, and nobody is rung.
import { run, device, step, check, signIn, WAIT_MS } from "./lib.mjs";

await run(async (browser, pages) => {
  const carol = await device(browser, "carol");
  const dave = await device(browser, "dave");
  pages.push(carol, dave);
  await signIn(dave.page, "Dave Tester");
  await signIn(carol.page, "Carol Tester");
  step("Carol tries to call with the microphone blocked");
  await carol.page.fill("#search", "dave");
  await carol.page.locator("#results li", { hasText: "Dave Tester" }).waitFor();
  await carol.page.click("#results li:has-text('Dave Tester') button.call");
  await carol.page.waitForFunction(() => (document.getElementById("notice").textContent || "").includes("Microphone access was denied"), null, { timeout: WAIT_MS, polling: 100 });
  check(await carol.page.locator("#call").isHidden(), "no call view");
  check(await dave.page.locator("#incoming").isHidden(), "Dave was never rung");
}, { denyMedia: true });
