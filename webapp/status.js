// The status card: asks the hub how it is and shows it in words a person understands.
"use strict";

function duration(seconds) {
  const d = Math.floor(seconds / 86400), h = Math.floor(seconds % 86400 / 3600), m = Math.floor(seconds % 3600 / 60);
  if (d) return `${d} d ${h} h`;
  if (h) return `${h} h ${m} min`;
  if (m) return `${m} min`;
  return `${seconds} s`;
}

async function refresh() {
  const state = document.getElementById("state");
  try {
    const res = await fetch("/api/status", { cache: "no-store" });
    if (!res.ok) throw new Error(`the hub answered ${res.status}`);
    const s = await res.json();
    document.getElementById("version").textContent = s.version;
    document.getElementById("uptime").textContent = duration(s.uptime_seconds);
    document.getElementById("store").textContent = `${s.store} — ${s.store_ready ? "reachable" : "NOT reachable"}`;
    state.textContent = s.store_ready ? "The hub is running." : "The hub is running, but its database is not reachable.";
    state.className = "state " + (s.store_ready ? "ok" : "bad");
  } catch (e) {
    state.textContent = `Cannot reach the hub (${e.message}). Retrying…`;
    state.className = "state bad";
  }
}

refresh();
setInterval(refresh, 10000);
