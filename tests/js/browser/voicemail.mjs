// Voicemail as people use it. Alice records a message for Bob with the (fake) microphone,
// listens to it, records it again and sends it; Bob's open tab shows the new message and the
// unread counter without a reload, plays it, marks it heard (the counter drops), deletes it
// (it moves to the trash) and restores it. Alice then records and saves her own greeting.
import { run, device, step, check, signIn, WAIT_MS } from "./lib.mjs";

const wait = { timeout: WAIT_MS, polling: 100 };

async function badge(page) {
  return page.evaluate(() => {
    const b = document.getElementById("vm-badge");
    return b.hidden ? 0 : Number(b.textContent);
  });
}

async function waitBadge(page, want) {
  await page.waitForFunction((want) => {
    const b = document.getElementById("vm-badge");
    return (b.hidden ? 0 : Number(b.textContent)) === want;
  }, want, wait);
}

// Records about `ms` of microphone audio in the open recorder (bounded by the page's clock).
async function record(page, ms) {
  await page.click("#rec-start");
  await page.locator("#rec-stop").waitFor({ state: "visible" });
  await page.waitForFunction((ms) => {
    const r = window.hubVoicemail.rec;
    return r && r.started && Date.now() - r.started >= ms && r.chunks.length > 0;
  }, ms, wait);
  await page.click("#rec-stop");
  await page.locator("#recorder-preview").waitFor({ state: "visible" });
  await page.waitForFunction(() => document.getElementById("recorder-preview").src.startsWith("blob:"), null, wait);
}

await run(async (browser, pages) => {
  const alice = await device(browser, "alice");
  const bob = await device(browser, "bob");
  pages.push(alice, bob);
  await signIn(bob.page, "Bob Tester");
  await signIn(alice.page, "Alice Tester");
  await bob.page.locator("#voicemail").waitFor({ state: "visible" });
  check(await badge(bob.page) === 0, "Bob starts with no unread message");
  const bobWsBefore = await bob.page.evaluate(() => window.hubPhone.wsHistory.length);

  step("Alice opens the recorder next to Bob in the directory");
  await alice.page.fill("#search", "bob");
  await alice.page.locator("#results li", { hasText: "Bob Tester" }).waitFor();
  await alice.page.click("#results li:has-text('Bob Tester') button.leave-message");
  await alice.page.locator("#recorder").waitFor({ state: "visible" });
  check((await alice.page.textContent("#recorder-title")).includes("Bob Tester"), "the recorder names Bob");

  step("Alice records, listens to the preview, records again");
  await record(alice.page, 1000);
  const first = await alice.page.evaluate(() => window.hubVoicemail.rec.url);
  await alice.page.evaluate(() => document.getElementById("recorder-preview").play());
  await alice.page.waitForFunction(() => document.getElementById("recorder-preview").currentTime > 0.2, null, wait);
  await alice.page.evaluate(() => document.getElementById("recorder-preview").pause());
  await alice.page.click("#rec-again");
  await alice.page.locator("#rec-stop").waitFor({ state: "visible" });
  await alice.page.click("#rec-stop");
  await alice.page.locator("#recorder-preview").waitFor({ state: "visible" });
  await alice.page.click("#rec-again");
  await alice.page.locator("#rec-stop").waitFor({ state: "visible" });
  await alice.page.click("#rec-stop");
  await alice.page.locator("#rec-again").waitFor({ state: "visible" });
  await alice.page.click("#rec-cancel");
  await alice.page.click("#results li:has-text('Bob Tester') button.leave-message");
  await record(alice.page, 2000);
  const second = await alice.page.evaluate(() => window.hubVoicemail.rec.url);
  check(first !== second, "recording again replaces the preview");
  const type = await alice.page.evaluate(() => window.hubVoicemail.rec.blob.type);
  console.log(JSON.stringify({ recorded: type }));

  step("Alice sends it");
  await alice.page.click("#rec-send");
  await alice.page.locator("#recorder").waitFor({ state: "hidden" });
  await alice.page.waitForFunction(() => document.getElementById("notice").textContent.includes("sent to Bob Tester"), null, wait);

  step("Bob's open tab shows it at once, counter and all");
  await waitBadge(bob.page, 1);
  const li = bob.page.locator("#vm-new li", { hasText: "Alice Tester" });
  await li.waitFor();
  const shown = await li.textContent();
  check(/0:0[1-3]/.test(shown), `the duration is shown (${shown})`);
  check(await bob.page.evaluate((n) => window.hubPhone.wsHistory.length === n, bobWsBefore), "no reconnection, no reload");

  step("Bob plays it in the page");
  await bob.page.click("#vm-title"); // a person's click: the page may play sound
  await bob.page.evaluate(() => document.querySelector("#vm-new li audio").play());
  await bob.page.waitForFunction(() => {
    const a = document.querySelector("#vm-new li audio");
    return a && (a.ended || a.currentTime > 0.5);
  }, null, wait);
  const dl = await li.locator("a.download").getAttribute("href");
  check(dl.endsWith("/audio?download=1"), `a download link (${dl})`);

  step("Bob marks it heard: the counter drops");
  await li.locator("button.mark-read").click();
  await waitBadge(bob.page, 0);
  await bob.page.locator("#vm-old li", { hasText: "Alice Tester" }).waitFor();

  step("Bob deletes it: it moves to the trash");
  await bob.page.locator("#vm-old li", { hasText: "Alice Tester" }).locator("button.delete").click();
  await bob.page.locator("#vm-old li", { hasText: "Alice Tester" }).waitFor({ state: "detached" });
  await bob.page.click("#vm-show-trash");
  const trashed = bob.page.locator("#vm-trash-list li", { hasText: "Alice Tester" });
  await trashed.waitFor();
  check((await trashed.textContent()).includes("removed for good"), "the trash says when it goes for good");

  step("Bob restores it");
  await trashed.locator("button.restore").click();
  await trashed.waitFor({ state: "detached" });
  await bob.page.click("#vm-show-inbox");
  await bob.page.locator("#vm-old li", { hasText: "Alice Tester" }).waitFor();
  check(await badge(bob.page) === 0, "still heard after the round trip");

  step("Alice records and saves her greeting");
  await alice.page.click("#vm-greeting-record");
  await alice.page.locator("#recorder").waitFor({ state: "visible" });
  await record(alice.page, 1000);
  await alice.page.click("#rec-send");
  await alice.page.locator("#recorder").waitFor({ state: "hidden" });
  await alice.page.locator("#vm-greeting-audio").waitFor({ state: "visible" });
  await alice.page.locator("#vm-greeting-delete").waitFor({ state: "visible" });
  const greeting = await alice.page.evaluate(async () => {
    const res = await fetch("/api/voicemail/greeting");
    return { status: res.status, type: res.headers.get("content-type"), bytes: (await res.arrayBuffer()).byteLength };
  });
  check(greeting.status === 200, `the greeting is served (${greeting.status})`);
  // Sent as WAV, which the hub's media engine plays to phone callers.
  check(greeting.type === "audio/wav" && greeting.bytes > 16000, `the greeting is a WAV with sound: ${JSON.stringify(greeting)}`);
});
