# Shared by scripts/run and scripts/test: installs Debian packages that are missing, once,
# without touching ones that are present. Sourced, not executed.

# ensure_packages PKG...: installs the missing ones with apt-get (through sudo when not root).
ensure_packages() {
  local missing=()
  for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$pkg")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo=(sudo); else
      echo "error: missing Debian packages ${missing[*]} and not root (no sudo): install them and retry" >&2
      return 1
    fi
  fi
  echo "==> installing Debian packages: ${missing[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# quiet_system_service NAME: stops and disables a system service that a package may have
# started or enabled on install (the tests run their own instance with a private config and
# port). Idempotent: prints and does something only when the service is enabled or running.
quiet_system_service() {
  local name=$1 sudo=()
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo=(sudo)
  if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled --quiet "$name" 2>/dev/null; then
    echo "==> disabling the system $name service (tests run their own)"
    "${sudo[@]}" systemctl disable --quiet "$name" 2>/dev/null || true
  fi
  if [ -d /run/systemd/system ] && systemctl is-active --quiet "$name"; then
    echo "==> stopping the system $name service (tests run their own)"
    "${sudo[@]}" systemctl stop "$name" || true
  fi
  # Without systemd, the init script's pid file says whether it runs (its `status` action is
  # not reliable: Debian's kamailio script exits 0 when it is not configured).
  local pidfile="/run/$name/$name.pid"
  if [ -x "/etc/init.d/$name" ] && [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "==> stopping the system $name service (tests run their own)"
    "${sudo[@]}" "/etc/init.d/$name" stop >/dev/null || true
  fi
}
