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

# shellcheck source=scripts/apt_install.sh
source "$(dirname "$0")/apt_install.sh"
apt_install chromium chromium
"$CHROMIUM" --version
