# Sourced by scripts/setup_browser.sh and scripts/setup_postgres.sh: install one Debian package with
# apt-get, as root or through passwordless sudo, refreshing the package lists only when the package is
# unknown (a fresh image may have none). Without apt-get or root it says what to run and exits 1.
#
#   apt_install LABEL PACKAGE [APT-GET INSTALL OPTIONS...]

apt_install() {
    local label="$1" package="$2"
    shift 2
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "$label: apt-get is not available; install the '$package' package with your package manager" >&2
        exit 1
    fi
    local sudo=""
    if [[ "$(id -u)" != "0" ]]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo="sudo -n"
        else
            echo "$label: installing '$package' needs root; run 'sudo apt-get install -y $package'" >&2
            exit 1
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-cache show "$package" >/dev/null 2>&1; then
        $sudo apt-get update -q
    fi
    $sudo apt-get install -y -q "$@" "$package"
}
