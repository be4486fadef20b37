// The start page: the hub's status, and the signed-in person's account and devices.
"use strict";

const $ = (id) => document.getElementById(id);

function duration(seconds) {
  const d = Math.floor(seconds / 86400), h = Math.floor(seconds % 86400 / 3600), m = Math.floor(seconds % 3600 / 60);
  if (d) return `${d} d ${h} h`;
  if (h) return `${h} h ${m} min`;
  if (m) return `${m} min`;
  return `${seconds} s`;
}

function when(ms) {
  return new Date(ms).toLocaleString();
}

// A readable device name from a User-Agent string.
function device(ua) {
  if (!ua) return "Unknown device";
  const browser = /Firefox\//.test(ua) ? "Firefox" : /Edg\//.test(ua) ? "Edge" : /Chrome\//.test(ua) ? "Chrome"
    : /Safari\//.test(ua) ? "Safari" : ua.split(" ")[0];
  const os = /Android/.test(ua) ? "Android" : /iPhone|iPad/.test(ua) ? "iOS" : /Windows/.test(ua) ? "Windows"
    : /Mac OS X/.test(ua) ? "macOS" : /Linux/.test(ua) ? "Linux" : "";
  return os ? `${browser} on ${os}` : browser;
}

function showError(message) {
  const el = $("account-error");
  el.textContent = message;
  el.hidden = false;
}

async function refreshStatus() {
  const state = $("state");
  try {
    const res = await fetch("/api/status", { cache: "no-store" });
    if (!res.ok) throw new Error(`the hub answered ${res.status}`);
    const s = await res.json();
    $("version").textContent = s.version;
    $("uptime").textContent = duration(s.uptime_seconds);
    $("store").textContent = `${s.store} — ${s.store_ready ? "reachable" : "NOT reachable"}`;
    $("demo-banner").hidden = s.auth !== "demo";
    state.textContent = s.store_ready ? "The hub is running." : "The hub is running, but its database is not reachable.";
    state.className = "state " + (s.store_ready ? "ok" : "bad");
  } catch (e) {
    state.textContent = `Cannot reach the hub (${e.message}). Retrying…`;
    state.className = "state bad";
  }
}

function renderAccount(me) {
  $("me-name").textContent = me.user.display_name;
  $("me-extension").textContent = me.user.extension || "none yet";
  $("me-email").textContent = me.user.email || "–";
  const numbers = $("me-numbers");
  numbers.replaceChildren();
  for (const n of me.user.numbers) {
    const li = document.createElement("li");
    li.textContent = `${n.number} (${n.kind})`;
    if (n.read_only) {
      const tag = document.createElement("span");
      tag.className = "tag";
      tag.textContent = "from your organisation";
      tag.title = "Managed by your organisation's directory; it cannot be changed here.";
      li.append(tag);
    }
    numbers.append(li);
  }
  if (!me.user.numbers.length) numbers.textContent = "–";

  const list = $("devices");
  list.replaceChildren();
  for (const s of me.sessions) {
    const li = document.createElement("li");
    li.dataset.session = s.id;
    const name = document.createElement("strong");
    name.textContent = device(s.user_agent);
    const info = document.createElement("div");
    info.className = "muted";
    info.textContent = `signed in ${when(s.created_at)}${s.ip ? " from " + s.ip : ""}, until ${when(s.expires_at)}`;
    li.append(name);
    if (s.current) {
      const tag = document.createElement("span");
      tag.className = "tag";
      tag.textContent = "this device";
      li.append(tag);
    } else {
      const end = document.createElement("button");
      end.type = "button";
      end.className = "link";
      end.textContent = "Sign out";
      end.setAttribute("aria-label", `Sign out ${device(s.user_agent)}`);
      end.addEventListener("click", () => endSession(s.id));
      li.append(end);
    }
    li.append(info);
    list.append(li);
  }
}

async function refreshAccount() {
  const res = await fetch("/api/me", { cache: "no-store" });
  if (res.status === 401) {
    $("account").hidden = true;
    $("signin").hidden = false;
    return;
  }
  if (!res.ok) {
    showError(`Your account could not be loaded (the hub answered ${res.status}).`);
    return;
  }
  renderAccount(await res.json());
  $("signin").hidden = true;
  $("account").hidden = false;
  // phone.js may still be loading: it also checks this flag when it starts.
  window.hubSignedIn = true;
  document.dispatchEvent(new Event("hub:signed-in"));
}

async function endSession(id) {
  const res = await fetch(`/api/me/sessions/${encodeURIComponent(id)}`, { method: "DELETE" });
  if (!res.ok && res.status !== 404) showError(`That device could not be signed out (${res.status}).`);
  await refreshAccount();
}

$("logout-all").addEventListener("click", async () => {
  const res = await fetch("/api/me/logout-all", { method: "POST" });
  if (!res.ok) {
    showError(`Signing out everywhere failed (${res.status}).`);
    return;
  }
  location.reload();
});

refreshStatus();
refreshAccount().catch((e) => showError(`Your account could not be loaded (${e.message}).`));
setInterval(refreshStatus, 10000);
