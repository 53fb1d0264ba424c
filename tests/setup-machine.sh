#!/usr/bin/env bash
# Installs the system packages the test suite drives for real: a Docker Engine and registry,
# headless Chromium, debootstrap (for the test base image), pandoc (the converter's baseline)
# and git (only to check what pygit2 wrote). Services are started by the tests themselves.
set -euo pipefail
need=(docker.io docker-registry chromium debootstrap pandoc git ca-certificates)
missing=()
for pkg in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "test machine ready: ${need[*]}"
