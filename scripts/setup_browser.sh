#!/usr/bin/env bash
# Install the browser the UI tests drive: Debian's `chromium` package at /usr/bin/chromium.
# Playwright for Python (a pip dependency) drives it through executable_path; `playwright install`
# is never used because it downloads its own browser build from a CDN the machines cannot reach.
# Idempotent: does nothing when /usr/bin/chromium is already there.
#
#   bash scripts/setup_browser.sh
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [[ -x "$CHROMIUM" ]]; then
    echo "chromium: already installed ($("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM"))"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium: $CHROMIUM is missing and apt-get is not available; install Chromium with your" \
         "package manager so that $CHROMIUM exists" >&2
    exit 1
fi

SUDO=""
if [[ "$(id -u)" != "0" ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "chromium: $CHROMIUM is missing and installing it needs root; run" \
             "'sudo apt-get install -y chromium'" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
# The package lists may be absent on a fresh image; refresh them only when the package is unknown.
if ! apt-cache show chromium >/dev/null 2>&1; then
    $SUDO apt-get update -q
fi
$SUDO apt-get install -y -q chromium
"$CHROMIUM" --version
