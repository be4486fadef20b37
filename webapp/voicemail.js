// Voicemail: my mailbox (new and old messages, the trash), my greeting, and messages left for
// colleagues from the browser (record with the microphone, listen, record again, send).
// The unread badge follows the signaling WebSocket (phone.js fires "hub:voicemail").
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);

  const vm = {
    limits: { max_message_ms: 180000, max_upload_bytes: 10 * 1024 * 1024, trash_retention_ms: 30 * 86400000 },
    unread: 0,
    folder: "inbox",
    rec: null, // {target: {kind: "message", user} | {kind: "greeting"}, recorder, stream, chunks, blob, url, timer, started}
    loading: null,
  };
  window.hubVoicemail = vm; // for tests and for phone.js ("Leave a message")

  function clock(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  }

  function showError(id, text) {
    const el = $(id);
    el.textContent = text || "";
    el.hidden = !text;
  }

  // A refusal's sentence from the hub, or words for what went wrong.
  async function why(res) {
    try {
      const body = await res.json();
      if (body.message) return body.message;
      if (body.error) return `${body.error} (${res.status})`;
    } catch { /* not JSON */ }
    if (res.status === 401) return "You are signed out. Reload the page to sign in again.";
    return `The hub answered ${res.status}.`;
  }

  function setBadge(unread) {
    vm.unread = unread;
    const badge = $("vm-badge");
    badge.textContent = String(unread);
    badge.hidden = unread === 0;
    badge.setAttribute("aria-label", `${unread} unheard message${unread === 1 ? "" : "s"}`);
    $("vm-summary").textContent = unread ? `${unread} new message${unread === 1 ? "" : "s"}.` : "No new messages.";
  }

  // --- the mailbox -------------------------------------------------------------------------
  async function api(method, path, body) {
    const opts = { method, cache: "no-store" };
    if (body !== undefined) {
      opts.headers = { "Content-Type": "application/json" };
      opts.body = JSON.stringify(body);
    }
    const res = await fetch(path, opts);
    if (!res.ok) throw new Error(await why(res));
    return res.status === 204 ? null : res.json();
  }

  function act(promise) {
    showError("vm-error", "");
    promise.then(() => refresh()).catch((e) => showError("vm-error", e.message));
  }

  // One list item per message, kept across refreshes so a message being played keeps playing.
  function item(m, inTrash) {
    const id = `vm-${inTrash ? "t" : "m"}-${m.id}`;
    let li = document.getElementById(id);
    if (!li) {
      li = document.createElement("li");
      li.id = id;
      li.dataset.message = m.id;
      const head = document.createElement("div");
      const from = document.createElement("strong");
      const when = document.createElement("span");
      when.className = "muted when";
      head.append(from, " ", when);
      const audio = document.createElement("audio");
      audio.controls = true;
      audio.preload = "none";
      audio.src = m.audio_url;
      audio.setAttribute("aria-label", `Message from ${m.from}`);
      const actions = document.createElement("div");
      actions.className = "actions";
      li.append(head, audio, actions);
      if (inTrash) {
        const restore = button("Restore", "secondary restore", `Restore the message from ${m.from}`);
        restore.addEventListener("click", () => act(api("POST", `/api/voicemail/${encodeURIComponent(m.id)}/restore`)));
        actions.append(restore);
      } else {
        const download = document.createElement("a");
        download.className = "download";
        download.href = m.download_url;
        download.textContent = "Download";
        download.setAttribute("aria-label", `Download the message from ${m.from}`);
        const read = button("", "secondary mark-read", "");
        read.addEventListener("click", () => {
          const unread = li.classList.contains("unread");
          act(api("POST", `/api/voicemail/${encodeURIComponent(m.id)}/read`, { read: unread }));
        });
        const del = button("Delete", "secondary delete", `Delete the message from ${m.from}`);
        del.addEventListener("click", () => act(api("DELETE", `/api/voicemail/${encodeURIComponent(m.id)}`)));
        actions.append(download, read, del);
      }
    }
    li.querySelector("strong").textContent = m.from || "Unknown caller";
    const when = `${new Date(m.created_at).toLocaleString()} · ${clock(m.duration_ms)}`;
    li.querySelector(".when").textContent = inTrash && m.purge_at
      ? `${when} · removed for good on ${new Date(m.purge_at).toLocaleDateString()}`
      : when;
    li.classList.toggle("unread", !m.read);
    const read = li.querySelector(".mark-read");
    if (read) {
      read.textContent = m.read ? "Mark as unheard" : "Mark as heard";
      read.setAttribute("aria-label", `${read.textContent} the message from ${m.from}`);
    }
    return li;
  }

  function button(text, cls, label) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = cls;
    b.textContent = text;
    if (label) b.setAttribute("aria-label", label);
    return b;
  }

  function fill(list, items, empty) {
    list.replaceChildren(...items);
    if (!items.length) {
      const li = document.createElement("li");
      li.className = "muted empty";
      li.textContent = empty;
      list.append(li);
    }
  }

  async function refresh() {
    // One refresh at a time; a notice arriving meanwhile asks for one more.
    if (vm.loading) { vm.again = true; return vm.loading; }
    vm.loading = (async () => {
      try {
        do {
          vm.again = false;
          const inbox = await api("GET", "/api/voicemail");
          vm.limits = inbox.limits;
          setBadge(inbox.unread);
          fill($("vm-new"), inbox.messages.filter((m) => !m.read).map((m) => item(m, false)), "No new messages.");
          fill($("vm-old"), inbox.messages.filter((m) => m.read).map((m) => item(m, false)), "No old messages.");
          const trash = await api("GET", "/api/voicemail/trash");
          fill($("vm-trash-list"), trash.messages.map((m) => item(m, true)), "The trash is empty.");
          const days = Math.round(vm.limits.trash_retention_ms / 86400000);
          $("vm-trash-note").textContent = days >= 1
            ? `Deleted messages can be restored for ${days} day${days === 1 ? "" : "s"}, then they are removed for good.`
            : "Deleted messages are removed for good shortly.";
          showGreeting(inbox.greeting);
        } while (vm.again);
      } catch (e) {
        showError("vm-error", `Your voicemail could not be loaded: ${e.message}`);
      } finally {
        vm.loading = null;
      }
    })();
    return vm.loading;
  }

  function showFolder(folder) {
    vm.folder = folder;
    $("vm-inbox").hidden = folder !== "inbox";
    $("vm-trash").hidden = folder !== "trash";
    $("vm-show-inbox").setAttribute("aria-pressed", String(folder === "inbox"));
    $("vm-show-trash").setAttribute("aria-pressed", String(folder === "trash"));
  }

  function showGreeting(greeting) {
    const audio = $("vm-greeting-audio");
    $("vm-greeting-delete").hidden = !greeting;
    $("vm-greeting-record").textContent = greeting ? "Record a new greeting" : "Record a greeting";
    $("vm-greeting-state").textContent = greeting
      ? "Callers hear your own greeting."
      : "Callers hear the standard greeting.";
    if (greeting) {
      // A fresh URL each time, so a new greeting is not served from the cache.
      if (!audio.dataset.version || audio.dataset.version !== String(vm.greetingVersion)) {
        audio.src = `/api/voicemail/greeting?v=${vm.greetingVersion || 0}`;
        audio.dataset.version = String(vm.greetingVersion || 0);
      }
      audio.hidden = false;
    } else {
      audio.removeAttribute("src");
      audio.hidden = true;
    }
  }

  // --- the recorder ------------------------------------------------------------------------
  function recState(text) { $("recorder-state").textContent = text; }

  function recButtons(phase) {
    // idle: nothing recorded yet; recording; recorded: preview, record again or send; sending.
    $("rec-start").hidden = phase !== "idle";
    $("rec-stop").hidden = phase !== "recording";
    $("rec-again").hidden = phase !== "recorded";
    $("rec-send").hidden = phase !== "recorded";
    $("rec-send").disabled = phase === "sending";
    $("recorder-preview").hidden = phase !== "recorded";
  }

  function open(target) {
    close();
    vm.rec = { target };
    const title = target.kind === "greeting"
      ? "Record your greeting"
      : `Leave a message for ${target.user.display_name}`;
    $("recorder-title").textContent = title;
    $("rec-send").textContent = target.kind === "greeting" ? "Save greeting" : "Send";
    $("rec-send").setAttribute("aria-label", target.kind === "greeting" ? "Save this greeting" : `Send this message to ${target.user.display_name}`);
    showError("recorder-error", "");
    recState(`Press Record and speak. At most ${clock(vm.limits.max_message_ms)}.`);
    recButtons("idle");
    $("recorder").hidden = false;
    $("rec-start").focus();
  }

  function stopTracks() {
    const r = vm.rec;
    if (r?.stream) r.stream.getTracks().forEach((t) => t.stop());
    if (r) { r.stream = null; clearInterval(r.timer); clearTimeout(r.limit); }
  }

  function close() {
    const r = vm.rec;
    if (!r) return;
    if (r.recorder && r.recorder.state !== "inactive") { r.discard = true; r.recorder.stop(); }
    stopTracks();
    if (r.url) URL.revokeObjectURL(r.url);
    $("recorder-preview").removeAttribute("src");
    $("recorder").hidden = true;
    vm.rec = null;
  }

  function mimeType() {
    for (const t of ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm", "audio/ogg"]) {
      if (window.MediaRecorder && MediaRecorder.isTypeSupported(t)) return t;
    }
    return "";
  }

  async function start() {
    const r = vm.rec;
    if (!r) return;
    showError("recorder-error", "");
    if (!window.MediaRecorder) return showError("recorder-error", "This browser cannot record audio.");
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (e) {
      const text = e.name === "NotAllowedError" || e.name === "SecurityError"
        ? "Microphone access was denied. Allow the microphone for this site in the browser's settings, then try again."
        : e.name === "NotFoundError" ? "No microphone was found. Connect one (or a headset) and try again."
          : `The microphone could not be used (${e.message}).`;
      return showError("recorder-error", text);
    }
    if (vm.rec !== r) { stream.getTracks().forEach((t) => t.stop()); return; }
    if (r.url) { URL.revokeObjectURL(r.url); r.url = null; }
    const type = mimeType();
    const recorder = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
    Object.assign(r, { stream, recorder, chunks: [], blob: null, discard: false, started: Date.now() });
    recorder.ondataavailable = (e) => { if (e.data.size) r.chunks.push(e.data); };
    recorder.onstop = () => {
      stopTracks();
      if (r.discard || vm.rec !== r) return;
      r.blob = new Blob(r.chunks, { type: recorder.mimeType || type || "audio/webm" });
      r.duration = Date.now() - r.started;
      r.url = URL.createObjectURL(r.blob);
      $("recorder-preview").src = r.url;
      recState(`Recorded ${clock(r.duration)}. Listen to it, record again, or ${r.target.kind === "greeting" ? "save it" : "send it"}.`);
      recButtons("recorded");
    };
    recorder.start(250);
    recButtons("recording");
    const tick = () => recState(`Recording… ${clock(Date.now() - r.started)} of at most ${clock(vm.limits.max_message_ms)}`);
    tick();
    r.timer = setInterval(tick, 250);
    // Stop a little before the hub's limit (the length is read from the file, to the frame).
    r.limit = setTimeout(() => stop(), Math.max(1000, vm.limits.max_message_ms - 1000));
    $("rec-stop").focus();
  }

  function stop() {
    const r = vm.rec;
    if (r?.recorder && r.recorder.state !== "inactive") r.recorder.stop();
  }

  // A greeting is played to phone callers by the hub's media engine, which reads WAV: the
  // browser's recording (WebM/Opus) is decoded here and sent as 16 kHz mono 16-bit PCM.
  async function toWav(blob) {
    const rate = 16000;
    const decoded = await new AudioContext().decodeAudioData(await blob.arrayBuffer());
    const offline = new OfflineAudioContext(1, Math.max(1, Math.ceil(decoded.duration * rate)), rate);
    const source = offline.createBufferSource();
    source.buffer = decoded;
    source.connect(offline.destination);
    source.start();
    const pcm = (await offline.startRendering()).getChannelData(0);
    const out = new DataView(new ArrayBuffer(44 + pcm.length * 2));
    const text = (at, s) => [...s].forEach((c, i) => out.setUint8(at + i, c.charCodeAt(0)));
    text(0, "RIFF"); out.setUint32(4, 36 + pcm.length * 2, true); text(8, "WAVE");
    text(12, "fmt "); out.setUint32(16, 16, true); out.setUint16(20, 1, true); out.setUint16(22, 1, true);
    out.setUint32(24, rate, true); out.setUint32(28, rate * 2, true); out.setUint16(32, 2, true); out.setUint16(34, 16, true);
    text(36, "data"); out.setUint32(40, pcm.length * 2, true);
    pcm.forEach((x, i) => out.setInt16(44 + i * 2, Math.max(-1, Math.min(1, x)) * 0x7fff, true));
    return new Blob([out], { type: "audio/wav" });
  }

  async function send() {
    const r = vm.rec;
    if (!r?.blob) return;
    showError("recorder-error", "");
    if (r.blob.size > vm.limits.max_upload_bytes) {
      return showError("recorder-error", "The recording is too large to send; record a shorter one.");
    }
    recButtons("sending");
    $("rec-send").hidden = false;
    recState(r.target.kind === "greeting" ? "Saving…" : "Sending…");
    const url = r.target.kind === "greeting"
      ? "/api/voicemail/greeting"
      : `/api/voicemail/send?to=${encodeURIComponent(r.target.user.id)}`;
    let res;
    try {
      const body = r.target.kind === "greeting" ? await toWav(r.blob) : r.blob;
      res = await fetch(url, { method: r.target.kind === "greeting" ? "PUT" : "POST", headers: { "Content-Type": body.type }, body });
    } catch (e) {
      recButtons("recorded");
      return showError("recorder-error", `The hub could not be reached (${e.message}). Try again.`);
    }
    if (vm.rec !== r) return;
    if (!res.ok) {
      recButtons("recorded");
      recState("Not sent.");
      return showError("recorder-error", await why(res));
    }
    if (r.target.kind === "greeting") {
      vm.greetingVersion = Date.now();
      close();
      $("vm-greeting-state").textContent = "Your greeting was saved.";
      refresh();
    } else {
      const name = r.target.user.display_name;
      close();
      // Say so where the person was: next to the directory.
      const notice = $("notice");
      notice.textContent = `Your message was sent to ${name}.`;
      notice.className = "notice";
      notice.hidden = false;
    }
  }

  vm.compose = (user) => open({ kind: "message", user });

  $("rec-start").addEventListener("click", () => start().catch((e) => showError("recorder-error", e.message)));
  $("rec-again").addEventListener("click", () => start().catch((e) => showError("recorder-error", e.message)));
  $("rec-stop").addEventListener("click", stop);
  $("rec-send").addEventListener("click", () => send().catch((e) => showError("recorder-error", e.message)));
  $("rec-cancel").addEventListener("click", close);
  $("vm-show-inbox").addEventListener("click", () => showFolder("inbox"));
  $("vm-show-trash").addEventListener("click", () => showFolder("trash"));
  $("vm-greeting-record").addEventListener("click", () => open({ kind: "greeting" }));
  $("vm-greeting-delete").addEventListener("click", () => act(api("DELETE", "/api/voicemail/greeting")));
  document.addEventListener("hub:voicemail", (e) => {
    setBadge(e.detail.unread);
    if (!$("voicemail").hidden) refresh();
  });

  function startMailbox() {
    $("voicemail").hidden = false;
    refresh();
  }
  document.addEventListener("hub:signed-in", startMailbox);
  if (window.hubSignedIn) startMailbox();
})();
