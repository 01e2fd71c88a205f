#!/usr/bin/env bash
# Install the system packages listed in bindep.txt ([platform:dpkg] lines) that this machine lacks.
# As root it runs apt-get; with password-less sudo it uses sudo; otherwise it prints the exact command and fails.
# Usage: scripts/install_deps.sh [profile]   (profile "demo" or "test" adds the packages marked with it)
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-}"

missing=()
while read -r name spec; do
  case "$name" in ""|\#*) continue ;; esac
  [[ "$spec" == *platform:dpkg* ]] || continue
  # Profiles are the words in the brackets other than platform:*; a package with profiles needs one of them.
  profiles=$(tr -d '[]' <<<"$spec" | tr ' ' '\n' | grep -v '^platform:' | grep -v '^$' || true)
  if [[ -n "$profiles" ]] && ! grep -qx -- "$profile" <<<"$profiles"; then
    continue
  fi
  # Node.js from NodeSource ships npm inside the nodejs package; Debian's npm package would conflict with it.
  if [[ "$name" == npm ]] && command -v npm >/dev/null 2>&1; then continue; fi
  if [[ "$name" == nodejs ]] && command -v node >/dev/null 2>&1; then continue; fi
  if ! dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$name")
  fi
done < bindep.txt

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi
cmd=(apt-get install -y --no-install-recommends "${missing[@]}")
if [[ $(id -u) -eq 0 ]]; then
  echo "Installing system packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${cmd[@]}" -qq
elif sudo -n true 2>/dev/null; then
  echo "Installing system packages with sudo: ${missing[*]}"
  sudo DEBIAN_FRONTEND=noninteractive apt-get update -qq
  sudo DEBIAN_FRONTEND=noninteractive "${cmd[@]}" -qq
else
  echo "Missing system packages: ${missing[*]}" >&2
  echo "Run as root:  sudo apt-get update && sudo ${cmd[*]}" >&2
  exit 1
fi
