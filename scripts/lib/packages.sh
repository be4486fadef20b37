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
