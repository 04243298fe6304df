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

# shellcheck source=scripts/apt_install.sh
source "$(dirname "$0")/apt_install.sh"
apt_install postgresql postgresql --no-install-recommends

if ! BIN=$(find_bin); then
    echo "postgresql: installed, but no server binaries under /usr/lib/postgresql/*/bin" >&2
    exit 1
fi
echo "postgresql: $("$BIN/postgres" --version) in $BIN"
