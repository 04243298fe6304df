#!/usr/bin/env bash
# Install the PostgreSQL server the session-store tests start themselves (tests/postgres_server.py):
# Debian's `postgresql` package, whose binaries (initdb, pg_ctl, postgres) land in
# /usr/lib/postgresql/<version>/bin. The tests initdb a throwaway cluster in a temporary folder and run it
# on a free port; they never use the package's own cluster or service.
# Idempotent: does nothing when the server binaries are already there.
#
#   bash scripts/setup_postgres.sh
set -euo pipefail

find_bin() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -n -r); do
        if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" && -x "$dir/postgres" ]]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

if BIN=$(find_bin); then
    echo "postgresql: already installed ($("$BIN/postgres" --version) in $BIN)"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "postgresql: no server binaries under /usr/lib/postgresql/*/bin and apt-get is not available;" \
         "install the PostgreSQL server (initdb, pg_ctl, postgres) with your package manager" >&2
    exit 1
fi

SUDO=""
if [[ "$(id -u)" != "0" ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "postgresql: the server binaries are missing and installing them needs root; run" \
             "'sudo apt-get install -y postgresql'" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
# The package lists may be absent on a fresh image; refresh them only when the package is unknown.
if ! apt-cache show postgresql >/dev/null 2>&1; then
    $SUDO apt-get update -q
fi
$SUDO apt-get install -y -q --no-install-recommends postgresql

if ! BIN=$(find_bin); then
    echo "postgresql: installed, but no server binaries under /usr/lib/postgresql/*/bin" >&2
    exit 1
fi
echo "postgresql: $("$BIN/postgres" --version) in $BIN"
