// Browser-to-browser calls as people make them. SCENARIO picks one:
//   answer     B calls A; both of A's tabs ring; A answers on the second; the first shows
//              "answered elsewhere"; audio flows both ways; B hangs up; both sides show the end.
//   decline    A declines on one tab: it stops ringing on both, B hears "declined".
//   cancel     B hangs up while A's tabs ring: they stop, A sees a missed call.
//   no_answer  nobody answers within the ring timeout (the hub runs with a short one).
//   close_tab  A closes the answering tab mid-call: B is told the connection was lost.
// ICE_POLICY=relay forces TURN relay candidates only.
import { run, device, step, check, signIn as demoSignIn, WAIT_MS } from "./lib.mjs";

const signIn = (page, name) => demoSignIn(page, name, { ready: false });

const hub = process.env.HUB_URL;
const scenario = process.env.SCENARIO ?? "answer";

async function ready(page) {
  await page.waitForFunction(() => document.getElementById("ws-state").textContent === "Ready to call.", null, { timeout: WAIT_MS, polling: 100 });
  if (process.env.ICE_POLICY) await page.evaluate((p) => { window.hubIcePolicy = p; }, process.env.ICE_POLICY);
}

async function text(page, id) {
  return (await page.textContent(`#${id}`)) ?? "";
}

async function waitText(page, id, want) {
  await page.waitForFunction(([id, want]) => (document.getElementById(id)?.textContent ?? "").includes(want), [id, want], { timeout: WAIT_MS, polling: 100 });
}

// Sum of inbound audio bytes on the page's peer connection.
async function audioBytes(page) {
  return page.evaluate(async () => {
    const pc = window.hubPhone.call?.pc;
    if (!pc) return -1;
    let bytes = 0;
    (await pc.getStats()).forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "audio") bytes += s.bytesReceived; });
    return bytes;
  });
}

async function audioFlows(page, who) {
  const start = await audioBytes(page);
  const deadline = Date.now() + WAIT_MS;
  while (Date.now() < deadline) {
    await page.waitForTimeout(250);
    const now = await audioBytes(page);
    if (start >= 0 && now > start + 1000) return now;
  }
  throw new Error(`no inbound audio on ${who}'s side`);
}

async function selectedPair(page) {
  return page.evaluate(async () => {
    const pc = window.hubPhone.call?.pc;
    const stats = await pc.getStats();
    let pair = null;
    stats.forEach((s) => { if (s.type === "transport" && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId); });
    if (!pair) stats.forEach((s) => { if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s; });
    if (!pair) return null;
    return { local: stats.get(pair.localCandidateId)?.candidateType, remote: stats.get(pair.remoteCandidateId)?.candidateType };
  });
}

await run(async (browser, pages) => {
  const alice = await device(browser, "alice-tab1");
  const bob = await device(browser, "bob");
  pages.push(alice, bob);
  await signIn(alice.page, "Alice Tester");
  const alice2 = { context: alice.context, page: await alice.context.newPage(), name: "alice-tab2" };
  alice2.page.setDefaultTimeout(WAIT_MS);
  alice2.page.on("console", (m) => console.error(`[alice-tab2 console] ${m.type()}: ${m.text()}`));
  pages.push(alice2);
  await alice2.page.goto(`${hub}/`);
  await signIn(bob.page, "Bob Tester");
  for (const p of [alice.page, alice2.page, bob.page]) await ready(p);

  step("Bob finds Alice and calls");
  await bob.page.fill("#search", "alice");
  await bob.page.locator("#results li", { hasText: "Alice Tester" }).waitFor();
  check((await bob.page.textContent("#results")).includes("online"), "Alice shows as online");
  await bob.page.click("#results li:has-text('Alice Tester') button.call");
  await waitText(bob.page, "call-state", "Ringing");

  step("both of Alice's tabs ring");
  await alice.page.locator("#incoming").waitFor({ state: "visible" });
  await alice2.page.locator("#incoming").waitFor({ state: "visible" });
  check((await text(alice.page, "incoming-name")) === "Bob Tester", "caller name shown");

  if (scenario === "decline") {
    await alice.page.click("#decline");
    await alice2.page.locator("#incoming").waitFor({ state: "hidden" });
    await waitText(bob.page, "notice", "declined");
    check(await bob.page.locator("#call").isHidden(), "Bob's call view closed");
    return;
  }
  if (scenario === "cancel") {
    await bob.page.click("#hangup");
    for (const p of [alice.page, alice2.page]) {
      await p.locator("#incoming").waitFor({ state: "hidden" });
      await waitText(p, "notice", "Missed call");
    }
    return;
  }
  if (scenario === "no_answer") {
    await waitText(bob.page, "notice", "No answer");
    for (const p of [alice.page, alice2.page]) await p.locator("#incoming").waitFor({ state: "hidden" });
    return;
  }

  step("Alice answers on her second tab");
  await alice2.page.click("#accept");
  await alice.page.locator("#incoming").waitFor({ state: "hidden" });
  await waitText(alice.page, "notice", "Answered on another device");
  await waitText(alice2.page, "call-state", "Connected");
  await waitText(bob.page, "call-state", "Connected");

  step("audio flows both ways");
  await audioFlows(bob.page, "Bob");
  await audioFlows(alice2.page, "Alice");
  if (process.env.ICE_POLICY === "relay") {
    const pair = await selectedPair(bob.page);
    console.log(JSON.stringify({ selected_pair: pair }));
    check(pair && pair.local === "relay" && pair.remote === "relay", `relay candidates selected (got ${JSON.stringify(pair)})`);
  }
  check(await alice.page.locator("#call").isHidden(), "the first tab stays out of the call");

  if (scenario === "close_tab") {
    step("Alice closes the answering tab");
    await alice2.page.close();
    await waitText(bob.page, "notice", "connection was lost");
    return;
  }

  step("mute, hold and resume renegotiate through the hub");
  await bob.page.click("#mute");
  check((await text(bob.page, "mute")) === "Unmute", "mute toggles");
  await bob.page.click("#mute");
  await bob.page.click("#hold");
  await waitText(alice2.page, "call-state", "On hold");
  await bob.page.click("#hold");
  await audioFlows(alice2.page, "Alice after resume");

  step("Bob turns his video on: renegotiation through the hub, Alice sees him");
  await bob.page.click("#video-toggle");
  await alice2.page.locator("#remote-video").waitFor({ state: "visible" });
  await alice2.page.waitForFunction(() => {
    const v = document.getElementById("remote-video");
    return v.videoWidth > 0;
  }, null, { timeout: WAIT_MS, polling: 100 });
  await audioFlows(alice2.page, "Alice with video");

  step("Bob hangs up");
  await bob.page.click("#hangup");
  await waitText(alice2.page, "notice", "Call ended");
  check(await alice2.page.locator("#call").isHidden(), "Alice's call view closed");
  check(await bob.page.locator("#call").isHidden(), "Bob's call view closed");

  step("a dropped signaling connection is shown and recovers by itself");
  const before = await alice.page.evaluate(() => window.hubPhone.wsHistory.length);
  await alice.page.evaluate(() => window.hubPhone.ws.close());
  await alice.page.waitForFunction((n) => window.hubPhone.wsHistory.slice(n).some((s) => s.includes("Reconnecting")), before, { timeout: WAIT_MS, polling: 100 });
  await alice.page.waitForFunction((n) => window.hubPhone.wsHistory.slice(n).includes("Ready to call."), before, { timeout: WAIT_MS, polling: 100 });
});
