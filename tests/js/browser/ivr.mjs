// A browser calls numbers the hub answers itself, over WebRTC: the hub is the peer (ICE,
// DTLS-SRTP, Opus) and its media engine plays and listens. SCENARIO picks one:
//   playback  dial NUMBER (a prompt of a loud tone): the tab hears it (inbound audio energy
//             above a threshold, from a playing <audio> element), then the hub hangs up.
//   echo      dial NUMBER (the echo test): the tab's own (fake) microphone comes back; the
//             tab hangs up.
//   transfer  Bob is signed in; Alice dials NUMBER, whose script transfers her to Bob: Bob's
//             tab rings, he answers, and Alice talks to him on the same tab.
//   digits    dial NUMBER (the recording test): after the beep, send DIGITS from the keypad
//             (RFC 4733 events); `#` ends the recording, the hub plays it back and hangs up.
import { run, device, step, check, signIn, WAIT_MS } from "./lib.mjs";

const scenario = process.env.SCENARIO ?? "playback";
const number = process.env.NUMBER ?? "*47";

// Inbound audio of the call: packets, and the energy the <audio> element played.
async function inbound(page) {
  return page.evaluate(async () => {
    const pc = window.hubPhone.call?.pc;
    const out = { packets: 0, energy: 0, level: 0, codec: null };
    if (!pc) return out;
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "audio") {
        out.packets += s.packetsReceived ?? 0;
        out.energy += s.totalAudioEnergy ?? 0;
        out.level = Math.max(out.level, s.audioLevel ?? 0);
        out.codec = stats.get(s.codecId)?.mimeType ?? null;
      }
    });
    return out;
  });
}

async function waitFor(page, what, predicate) {
  const deadline = Date.now() + WAIT_MS;
  let last = null;
  while (Date.now() < deadline) {
    last = await inbound(page);
    if (predicate(last)) return last;
    await page.waitForTimeout(100);
  }
  throw new Error(`${what}: not seen within ${WAIT_MS} ms (last stats ${JSON.stringify(last)})`);
}

async function ended(page) {
  await page.waitForFunction(() => document.getElementById("call").hidden && !window.hubPhone.call, null, { timeout: WAIT_MS, polling: 100 });
  return (await page.textContent("#notice")) ?? "";
}

await run(async (browser, pages) => {
  const alice = await device(browser, "alice");
  pages.push(alice);
  const page = alice.page;
  let bob = null;
  if (scenario === "transfer") {
    bob = await device(browser, "bob");
    pages.push(bob);
    await signIn(bob.page, "Bob Tester");
  }
  await signIn(page, "Alice Tester");

  step(`dial ${number}`);
  await page.fill("#dial-number", number);
  await page.click("#dial");
  if (scenario === "transfer") {
    step("the script transfers Alice: Bob's tab rings");
    await bob.page.locator("#incoming").waitFor({ state: "visible" });
    check((await bob.page.textContent("#incoming-name")) === "Alice Tester", "Bob sees who calls");
    await bob.page.click("#accept");
    await page.waitForFunction(() => document.getElementById("call-state").textContent === "Connected"
      && document.getElementById("call-peer").textContent.startsWith("Bob Tester"), null, { timeout: WAIT_MS, polling: 100 });
    const heard = await waitFor(page, "Bob's audio", (s) => s.packets > 50);
    step(`Alice hears Bob: ${JSON.stringify(heard)}`);
    await page.click("#hangup");
    await bob.page.waitForFunction(() => document.getElementById("call").hidden, null, { timeout: WAIT_MS, polling: 100 });
    return;
  }
  await page.waitForFunction(() => document.getElementById("call-state").textContent === "Connected", null, { timeout: WAIT_MS, polling: 100 });
  check(!(await page.isHidden("#keypad")), "the keypad opens for a number");

  if (scenario === "playback") {
    const heard = await waitFor(page, "prompt audio", (s) => s.energy > 0.05 && s.level > 0.05);
    step(`heard the prompt: ${JSON.stringify(heard)}`);
    check(heard.codec === "audio/opus", `the hub sends Opus, not ${heard.codec}`);
    const notice = await ended(page);
    check(notice.includes("Call ended."), `the hub hung up after the prompt: "${notice}"`);
  } else if (scenario === "echo") {
    // Chromium's fake microphone beeps; the echo brings the beeps back.
    const back = await waitFor(page, "the echo", (s) => s.packets > 50 && s.energy > 0.001);
    step(`heard the echo: ${JSON.stringify(back)}`);
    await page.click("#hangup");
    const notice = await ended(page);
    check(notice.includes("Call ended."), `hung up: "${notice}"`);
  } else if (scenario === "digits") {
    // The beep before the recording proves audio reaches the tab.
    const beep = await waitFor(page, "the beep", (s) => s.energy > 0.002);
    step(`heard the beep: ${JSON.stringify(beep)}`);
    const digits = process.env.DIGITS ?? "12#";
    for (const d of digits) {
      await page.click(`#keypad button[data-digit="${d}"]`);
    }
    check((await page.textContent("#keypad-sent")) === digits, "the keypad shows what was sent");
    const notice = await ended(page);
    check(notice.includes("Call ended."), `the hub hung up after playing the recording back: "${notice}"`);
  } else {
    throw new Error(`unknown SCENARIO ${scenario}`);
  }
});
