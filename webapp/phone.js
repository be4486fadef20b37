// The phone: signaling over the hub's WebSocket, media peer to peer with WebRTC.
// The hub relays offer/answer/ICE between exactly two tabs; renegotiation (hold, video) uses the
// "perfect negotiation" pattern: the callee is polite (yields on glare), the caller is not.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const REASONS = {
    completed: "Call ended.",
    declined: "The call was declined.",
    no_answer: "No answer.",
    cancelled: "The caller hung up.",
    busy: "Busy: they are in another call.",
    offline: "They are not online right now.",
    connection_lost: "The connection was lost.",
  };
  // A dialled number has no "busy" or "offline" person behind it.
  const NUMBER_REASONS = { ...REASONS, offline: "That number cannot be reached right now." };

  const phone = {
    ws: null,
    iceServers: [],
    backoff: 500,
    call: null, // {id, role, peer, video, pc, polite, makingOffer, ignoreOffer, local, startedAt, held, muted, pending}
    incoming: null, // {id, from, video}
    ring: null,
    timer: null,
    reqSeq: 0,
    welcome: null,
    wsHistory: [],
  };
  window.hubPhone = phone; // for tests and for debugging from the console

  function notice(text, bad = false) {
    const el = $("notice");
    el.textContent = text;
    el.className = "notice" + (bad ? " bad" : "");
    el.hidden = !text;
  }

  // What the page says about its connection; the history lets tests see short-lived states.
  function wsState(text) {
    $("ws-state").textContent = text;
    phone.wsHistory.push(text);
  }

  function send(msg) {
    if (phone.ws && phone.ws.readyState === WebSocket.OPEN) phone.ws.send(JSON.stringify({ v: 1, ...msg }));
  }

  // --- tones -------------------------------------------------------------------------------
  function tone(pattern) {
    stopTone();
    try {
      const ctx = new AudioContext();
      ctx.resume().catch(() => {});
      const gain = ctx.createGain();
      gain.gain.value = 0;
      gain.connect(ctx.destination);
      for (const f of pattern.freqs) {
        const o = ctx.createOscillator();
        o.frequency.value = f;
        o.connect(gain);
        o.start();
      }
      let on = false;
      const id = setInterval(() => { on = !on; gain.gain.value = on ? 0.08 : 0; }, on ? pattern.on : pattern.off);
      gain.gain.value = 0.08;
      phone.ring = { ctx, id };
    } catch (e) {
      console.warn("no ringtone:", e);
    }
  }
  function stopTone() {
    if (!phone.ring) return;
    clearInterval(phone.ring.id);
    phone.ring.ctx.close().catch(() => {});
    phone.ring = null;
  }

  // --- media -------------------------------------------------------------------------------
  async function microphone(video) {
    try {
      return await navigator.mediaDevices.getUserMedia({ audio: true, video: !!video });
    } catch (e) {
      if (e.name === "NotAllowedError" || e.name === "SecurityError") {
        notice("Microphone access was denied. Allow the microphone for this site in the browser's settings, then try again.", true);
      } else if (e.name === "NotFoundError" || e.name === "OverconstrainedError") {
        notice("No microphone was found. Connect one (or a headset) and try again.", true);
      } else {
        notice(`The microphone could not be used (${e.message}).`, true);
      }
      return null;
    }
  }

  function showCall(text) {
    $("call").hidden = false;
    $("video-toggle").hidden = !!phone.call.number;
    $("call-peer").textContent = phone.call.peer.name + (phone.call.peer.extension ? ` (${phone.call.peer.extension})` : "");
    $("call-state").textContent = text;
  }

  function tick() {
    const c = phone.call;
    if (!c || !c.startedAt) return;
    const s = Math.floor((Date.now() - c.startedAt) / 1000);
    $("call-duration").textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  }

  function newPeerConnection(polite) {
    const c = phone.call;
    const pc = new RTCPeerConnection({ iceServers: phone.iceServers, iceTransportPolicy: window.hubIcePolicy || "all" });
    c.pc = pc;
    c.polite = polite;
    c.makingOffer = false;
    c.ignoreOffer = false;
    pc.onicecandidate = ({ candidate }) => send({ type: "ice", call: c.id, candidate: candidate ? candidate.toJSON() : null });
    pc.onnegotiationneeded = async () => {
      if (!c.negotiated && c.polite) return; // the callee answers the first offer instead
      try {
        c.makingOffer = true;
        await pc.setLocalDescription();
        send({ type: pc.localDescription.type, call: c.id, sdp: pc.localDescription.sdp });
      } catch (e) {
        console.error("negotiation", e);
      } finally {
        c.makingOffer = false;
      }
    };
    pc.ontrack = ({ track, streams }) => {
      const stream = streams[0] || new MediaStream([track]);
      if (track.kind === "audio") {
        $("remote-audio").srcObject = stream;
      } else {
        $("remote-video").srcObject = stream;
        $("remote-video").hidden = false;
        track.onended = () => { $("remote-video").hidden = true; };
      }
    };
    pc.onconnectionstatechange = () => {
      const state = pc.connectionState;
      const words = { new: "Connecting…", connecting: "Connecting…", connected: c.held ? "On hold" : "Connected",
        disconnected: "Connection interrupted, trying to recover…", failed: "Media connection failed", closed: "Ended" };
      $("call-state").textContent = words[state] || state;
      if (state === "connected" && !c.startedAt) {
        c.startedAt = Date.now();
        phone.timer = setInterval(tick, 1000);
        tick();
      }
    };
    return pc;
  }

  function addLocal(pc, stream) {
    for (const track of stream.getTracks()) pc.addTrack(track, stream);
    if (stream.getVideoTracks().length) {
      $("local-video").srcObject = stream;
      $("local-video").hidden = false;
    }
  }

  function endCall(reason) {
    stopTone();
    const c = phone.call;
    if (c) {
      if (c.pc) c.pc.close();
      if (c.local) c.local.getTracks().forEach((t) => t.stop());
    }
    clearInterval(phone.timer);
    phone.call = null;
    for (const id of ["remote-video", "local-video"]) { $(id).srcObject = null; $(id).hidden = true; }
    $("remote-audio").srcObject = null;
    $("call").hidden = true;
    $("keypad-sent").textContent = "";
    toggleKeypad(false);
    $("call-duration").textContent = "";
    for (const id of ["mute", "hold", "video-toggle"]) $(id).setAttribute("aria-pressed", "false");
    $("mute").textContent = "Mute";
    $("hold").textContent = "Hold";
    if (reason) notice(((c && c.number) ? NUMBER_REASONS : REASONS)[reason] || `Call ended (${reason}).`);
  }

  function hideIncoming() {
    phone.incoming = null;
    $("incoming").hidden = true;
    stopTone();
  }

  // --- actions -----------------------------------------------------------------------------
  async function placeCall(user, video) {
    if (phone.call) return notice("You are already in a call.", true);
    notice("");
    const local = await microphone(video);
    if (!local) return;
    const req = `r${++phone.reqSeq}`;
    phone.call = { id: null, req, role: "caller", peer: { id: user.id, name: user.display_name, extension: user.extension }, video, local };
    showCall("Calling…");
    send({ type: "call", to: user.id, video: !!video, req });
  }

  // A number the hub answers itself (an echo test, a menu): it picks up at once.
  async function dialNumber(number) {
    if (phone.call) return notice("You are already in a call.", true);
    notice("");
    const local = await microphone(false);
    if (!local) return;
    const req = `r${++phone.reqSeq}`;
    phone.call = { id: null, req, role: "caller", number, peer: { name: number, extension: null }, video: false, local };
    showCall("Calling…");
    send({ type: "dial", number, req });
  }

  // Digits for menus (RFC 4733 events on the audio stream), queued behind those still playing.
  function sendDigit(digit) {
    const c = phone.call;
    const sender = c?.pc?.getSenders().find((s) => s.track && s.track.kind === "audio");
    if (!sender || !sender.dtmf || !sender.dtmf.canInsertDTMF) return notice("Tones cannot be sent on this call yet.", true);
    sender.dtmf.insertDTMF(sender.dtmf.toneBuffer + digit, 120, 70);
    $("keypad-sent").textContent = ($("keypad-sent").textContent + digit).slice(-24);
  }

  function toggleKeypad(show) {
    const on = show ?? $("keypad").hidden;
    $("keypad").hidden = !on;
    $("keypad-toggle").setAttribute("aria-pressed", String(on));
  }

  async function accept() {
    const inc = phone.incoming;
    if (!inc) return;
    hideIncoming();
    const local = await microphone(false);
    if (!local) { send({ type: "decline", call: inc.id }); return; }
    phone.call = { id: inc.id, role: "callee", peer: inc.from, video: inc.video, local };
    showCall("Answering…");
    send({ type: "accept", call: inc.id });
  }

  function decline() {
    if (phone.incoming) send({ type: "decline", call: phone.incoming.id });
    hideIncoming();
  }

  function hangup() {
    const c = phone.call;
    if (!c) return;
    if (c.id) send({ type: "hangup", call: c.id });
    endCall("completed");
  }

  function toggleMute() {
    const c = phone.call;
    if (!c || !c.local) return;
    c.muted = !c.muted;
    c.local.getAudioTracks().forEach((t) => { t.enabled = !c.muted; });
    $("mute").textContent = c.muted ? "Unmute" : "Mute";
    $("mute").setAttribute("aria-pressed", String(c.muted));
  }

  function toggleHold() {
    const c = phone.call;
    if (!c || !c.pc) return;
    c.held = !c.held;
    c.negotiated = true;
    for (const t of c.pc.getTransceivers()) {
      if (t.stopped || t.currentDirection === "stopped") continue;
      t.direction = c.held ? "inactive" : "sendrecv";
    }
    $("hold").textContent = c.held ? "Resume" : "Hold";
    $("hold").setAttribute("aria-pressed", String(c.held));
    $("call-state").textContent = c.held ? "On hold" : "Connected";
  }

  async function toggleVideo() {
    const c = phone.call;
    if (!c || !c.pc) return;
    c.negotiated = true;
    const sender = c.pc.getSenders().find((s) => s.track && s.track.kind === "video");
    if (sender) {
      sender.track.stop();
      c.pc.removeTrack(sender);
      $("local-video").hidden = true;
      $("video-toggle").setAttribute("aria-pressed", "false");
      return;
    }
    try {
      const cam = await navigator.mediaDevices.getUserMedia({ video: true });
      const track = cam.getVideoTracks()[0];
      c.local.addTrack(track);
      c.pc.addTrack(track, c.local);
      $("local-video").srcObject = c.local;
      $("local-video").hidden = false;
      $("video-toggle").setAttribute("aria-pressed", "true");
    } catch (e) {
      notice(e.name === "NotAllowedError" ? "Camera access was denied." : `No camera available (${e.message}).`, true);
    }
  }

  // --- signaling ---------------------------------------------------------------------------
  async function onOffer(msg) {
    const c = phone.call;
    if (!c || c.id !== msg.call || !c.pc) return;
    const pc = c.pc;
    const collision = c.makingOffer || pc.signalingState !== "stable";
    c.ignoreOffer = !c.polite && collision;
    if (c.ignoreOffer) return;
    await pc.setRemoteDescription({ type: "offer", sdp: msg.sdp });
    if (!c.negotiated) {
      addLocal(pc, c.local); // the callee's tracks join the caller's m-lines
      c.negotiated = true;
    }
    await pc.setLocalDescription();
    send({ type: "answer", call: c.id, sdp: pc.localDescription.sdp });
    const inactive = pc.getTransceivers().every((t) => t.currentDirection === "inactive");
    if (inactive && !c.held) $("call-state").textContent = "On hold by the other side";
    else if (pc.connectionState === "connected" && !c.held) $("call-state").textContent = "Connected";
  }

  const handlers = {
    welcome(msg) {
      phone.welcome = msg;
      phone.iceServers = msg.ice_servers;
      phone.backoff = 500;
      wsState("Ready to call.");
      // voicemail.js keeps the badge; the count comes with every (re)connection.
      document.dispatchEvent(new CustomEvent("hub:voicemail", { detail: { unread: msg.voicemail_unread ?? 0 } }));
    },
    voicemail(msg) { document.dispatchEvent(new CustomEvent("hub:voicemail", { detail: { unread: msg.unread } })); },
    ice_servers(msg) { phone.iceServers = msg.ice_servers; },
    calling(msg) {
      const c = phone.call;
      if (!c || c.req !== msg.req) return;
      c.id = msg.call;
      c.peer = msg.to;
      showCall(msg.devices ? "Ringing…" : "Calling…");
      if (msg.devices && !c.number) tone({ freqs: [440, 480], on: 2000, off: 4000 });
    },
    incoming(msg) {
      phone.incoming = { id: msg.call, from: msg.from, video: msg.video };
      $("incoming-name").textContent = msg.from.name;
      $("incoming-ext").textContent = msg.from.extension ? `extension ${msg.from.extension}` : "";
      $("incoming-kind").textContent = msg.video ? "video call" : "audio call";
      $("incoming").hidden = false;
      notice("");
      tone({ freqs: [440, 480], on: 1000, off: 2000 });
    },
    call_waiting(msg) { notice(`${msg.from.name} tried to call you while you were in a call.`); },
    accepted(msg) {
      const c = phone.call;
      if (!c || c.id !== msg.call) return;
      newPeerConnection(true);
      showCall("Connecting…");
    },
    answered(msg) {
      const c = phone.call;
      if (!c || c.id !== msg.call) return;
      stopTone();
      const pc = newPeerConnection(false);
      c.negotiated = true;
      showCall("Connecting…");
      addLocal(pc, c.local); // fires negotiationneeded: the first offer
      if (c.number) toggleKeypad(true); // menus want digits
    },
    // The hub number (an IVR menu) put us through to a colleague: same tab, same microphone,
    // a new call that rings them.
    transferred(msg) {
      const c = phone.call;
      if (!c || c.id !== msg.call) return;
      if (c.pc) c.pc.close();
      Object.assign(c, { pc: null, id: null, req: msg.req, peer: msg.to, number: null, negotiated: false, startedAt: null });
      clearInterval(phone.timer);
      $("call-duration").textContent = "";
      $("remote-audio").srcObject = null;
      $("keypad-sent").textContent = "";
      toggleKeypad(false);
      showCall("Transferring…");
    },
    answered_elsewhere(msg) {
      if (phone.incoming && phone.incoming.id === msg.call) {
        hideIncoming();
        notice("Answered on another device.");
      }
    },
    offer: (msg) => onOffer(msg).catch((e) => console.error("offer", e)),
    async answer(msg) {
      const c = phone.call;
      if (c && c.id === msg.call && c.pc) await c.pc.setRemoteDescription({ type: "answer", sdp: msg.sdp }).catch((e) => console.error("answer", e));
    },
    async ice(msg) {
      const c = phone.call;
      if (!c || c.id !== msg.call || !c.pc) return;
      try {
        await c.pc.addIceCandidate(msg.candidate || null);
      } catch (e) {
        if (!c.ignoreOffer) console.warn("ice", e);
      }
    },
    ended(msg) {
      if (phone.incoming && phone.incoming.id === msg.call) {
        hideIncoming();
        notice(msg.reason === "cancelled" ? "Missed call: the caller hung up." : REASONS[msg.reason] || "Call ended.");
      }
      if (phone.call && phone.call.id === msg.call) endCall(msg.reason);
    },
    error(msg) {
      console.warn("hub refused:", msg);
      if (phone.call && !phone.call.id && msg.req === phone.call.req) {
        endCall(null);
        notice(msg.message, true);
      } else if (!["call_ended", "not_your_call"].includes(msg.code)) {
        notice(msg.message, true);
      }
    },
    pong() {},
  };

  function connect() {
    const ws = new WebSocket(`wss://${location.host}/ws`);
    phone.ws = ws;
    ws.onmessage = (e) => {
      let msg;
      try { msg = JSON.parse(e.data); } catch { return; }
      const h = handlers[msg.type];
      if (h) Promise.resolve(h(msg)).catch((err) => console.error(msg.type, err));
    };
    ws.onclose = (e) => {
      if (phone.ws !== ws) return;
      if (phone.call) endCall("connection_lost");
      hideIncoming();
      if (e.code === 4001) {
        wsState("Your session has ended. Please sign in again.");
        setTimeout(() => location.reload(), 1500);
        return;
      }
      wsState("Connection to the hub lost. Reconnecting…");
      setTimeout(connect, phone.backoff);
      phone.backoff = Math.min(phone.backoff * 2, 15000);
    };
  }

  // --- directory ---------------------------------------------------------------------------
  let searchSeq = 0;
  async function search() {
    const q = $("search").value.trim();
    const seq = ++searchSeq;
    const res = await fetch(`/api/directory?q=${encodeURIComponent(q)}`, { cache: "no-store" });
    if (seq !== searchSeq || !res.ok) return;
    const { users } = await res.json();
    const list = $("results");
    list.replaceChildren();
    for (const u of users.filter((u) => !u.you)) {
      const li = document.createElement("li");
      li.dataset.user = u.id;
      const who = document.createElement("span");
      who.className = "who";
      const numbers = u.numbers.map((n) => n.number).join(", ");
      who.innerHTML = "";
      const name = document.createElement("strong");
      name.textContent = u.display_name;
      const detail = document.createElement("div");
      detail.className = "muted";
      detail.textContent = [u.extension ? `ext. ${u.extension}` : "", numbers].filter(Boolean).join(" · ");
      who.append(name, detail);
      const presence = document.createElement("span");
      presence.className = "presence " + (u.in_call ? "busy" : u.online ? "online" : "offline");
      presence.textContent = u.in_call ? "in a call" : u.online ? "online" : "offline";
      let phones = null;
      if (u.sip) {
        phones = document.createElement("span");
        phones.className = "presence sip " + (u.sip.in_use ? "busy" : u.sip.registered ? "online" : "offline");
        phones.textContent = u.sip.in_use
          ? "phone in use"
          : u.sip.registered
            ? `${u.sip.registered} phone${u.sip.registered > 1 ? "s" : ""}`
            : "no phone";
        phones.title = "Devices registered to the phone system (desk phones, softphones)";
      }
      const call = document.createElement("button");
      call.type = "button";
      call.className = "call";
      call.textContent = "Call";
      call.setAttribute("aria-label", `Call ${u.display_name}`);
      call.addEventListener("click", () => placeCall(u, false));
      const video = document.createElement("button");
      video.type = "button";
      video.className = "secondary video-call";
      video.textContent = "Video";
      video.setAttribute("aria-label", `Video call ${u.display_name}`);
      video.addEventListener("click", () => placeCall(u, true));
      const leave = document.createElement("button");
      leave.type = "button";
      leave.className = "secondary leave-message";
      leave.textContent = "Leave a message";
      leave.setAttribute("aria-label", `Leave a voice message for ${u.display_name}`);
      leave.addEventListener("click", () => window.hubVoicemail?.compose(u));
      li.append(...[who, presence, phones, call, video, leave].filter(Boolean));
      list.append(li);
    }
    if (!list.children.length) list.textContent = q ? "Nobody found." : "";
  }

  let searchTimer = null;
  $("search").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(search, 150); });
  $("accept").addEventListener("click", accept);
  $("decline").addEventListener("click", decline);
  $("hangup").addEventListener("click", hangup);
  $("mute").addEventListener("click", toggleMute);
  $("hold").addEventListener("click", toggleHold);
  $("video-toggle").addEventListener("click", () => toggleVideo().catch((e) => console.error(e)));
  $("keypad-toggle").addEventListener("click", () => toggleKeypad());
  for (const b of $("keypad").querySelectorAll("button[data-digit]")) b.addEventListener("click", () => sendDigit(b.dataset.digit));
  $("dial-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const number = $("dial-number").value.trim();
    if (number) dialNumber(number).catch((err) => console.error(err));
  });

  // Start once app.js knows the person is signed in (it may have found out before this
  // script ran, hence the flag as well as the event).
  function start() {
    $("phone").hidden = false;
    if (!phone.ws) connect();
    search().catch(() => {});
  }
  document.addEventListener("hub:signed-in", start);
  if (window.hubSignedIn) start();
})();
