#!/usr/bin/env bash
# Debian packages the test suite uses: chromium (Playwright browser tests; Playwright's own
# browser download cannot work offline) and docker-compose 1.x (validates docker-compose.yml
# offline), gettext (msgfmt, for locale/). Installed only when missing.
set -euo pipefail
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v msgfmt >/dev/null || need+=(gettext)  # compiles locale/ (scripts/compile_messages.py)
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "Missing ${need[*]} and not root: install them with apt-get install ${need[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
echo "Installing ${need[*]} from Debian's packages…"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
