#!/usr/bin/env bash
# The project's test command (CI runs it through .ci/run). On a fresh Debian machine, as root:
# installs the system packages the tests need if their binaries are missing, then runs, and
# fails on the first failure of:
#   1. cargo fmt --check          (formatting)
#   2. cargo clippy -D warnings   (lints, every target)
#   3. layering                   (lsm pulls in no networking or RESP crate; cluster no redis-protocol)
#   4. the tests                  (cargo nextest if installed, else cargo test; doctests either way)
# Environment: CARGO_TARGET_DIR is honoured; RINGKV_TEST_SKIP_LINT=1 skips steps 1-2 (local use).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

start_s=$SECONDS
step() {
    printf '\n==> [%4ds] %s\n' "$((SECONDS - start_s))" "$*"
}

# ensure_system_packages BINARY:PACKAGE ...
# Installs (apt-get) the Debian package of each BINARY that is not on PATH; does nothing, not
# even `apt-get update`, when all are present.
ensure_system_packages() {
    local missing=() pair bin pkg
    for pair in "$@"; do
        bin=${pair%%:*}
        pkg=${pair#*:}
        if ! command -v "$bin" >/dev/null 2>&1; then
            missing+=("$pkg")
        fi
    done
    if ((${#missing[@]} == 0)); then
        return 0
    fi
    step "installing system packages: ${missing[*]}"
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        sudo=(sudo)
    fi
    "${sudo[@]}" apt-get update
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
}

# The Rust toolchain (cargo, rustfmt, clippy) is expected on the machine; add the components
# through rustup when it is there and they are not.
ensure_rust_toolchain() {
    if ! command -v cargo >/dev/null 2>&1; then
        echo "error: cargo is not installed; install the Rust toolchain (rustup) first" >&2
        exit 1
    fi
    if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
        if command -v rustup >/dev/null 2>&1; then
            rustup component add rustfmt clippy
        else
            echo "error: cargo fmt / cargo clippy are missing and rustup is not available" >&2
            exit 1
        fi
    fi
}

workspace_has_package() {
    cargo pkgid "$1" >/dev/null 2>&1
}

# check_not_in_tree PACKAGE CRATE... : fails if PACKAGE's normal (non-dev, non-build)
# dependency tree contains any CRATE.
check_not_in_tree() {
    local package=$1
    shift
    local tree crate found=0
    tree=$(cargo tree -p "$package" -e normal --prefix none --no-dedupe)
    for crate in "$@"; do
        if grep -Eq "^${crate} v" <<<"$tree"; then
            echo "layering violation: $package depends on $crate:" >&2
            cargo tree -p "$package" -e normal -i "$crate" >&2 || true
            found=1
        fi
    done
    return "$found"
}

ensure_rust_toolchain
# System packages the tests need, as binary:package pairs: redis-cli for tests/node_process.rs,
# redis-server (the reference) for redis-compat-tests/, redis-benchmark for benches/.
ensure_system_packages redis-server:redis-server redis-cli:redis-tools redis-benchmark:redis-tools

cargo --version

if [[ ${RINGKV_TEST_SKIP_LINT:-0} != 1 ]]; then
    step "cargo fmt --all --check"
    cargo fmt --all --check

    step "cargo clippy --workspace --all-targets -- -D warnings"
    cargo clippy --workspace --all-targets -- -D warnings
fi

step "layering (STYLE.md): lsm <- cluster <- resp <- bin"
check_not_in_tree ringkv-lsm tokio redis-protocol ringkv-resp ringkv-cluster
if workspace_has_package ringkv-cluster; then
    check_not_in_tree ringkv-cluster redis-protocol ringkv-resp
fi

# Doctests first: CI reads the last runner's closing lines, and the doctest run of a crate
# without doctests closes on "0 passed".
step "cargo test --workspace --doc"
cargo test --workspace --doc
if cargo nextest --version >/dev/null 2>&1; then
    step "cargo nextest run --workspace"
    cargo nextest run --workspace --no-fail-fast
else
    step "cargo test --workspace --lib --bins --tests"
    cargo test --workspace --lib --bins --tests --no-fail-fast
fi

# redis-compat-tests/: the same commands to ringkv and to a real redis-server, through pytest
# and redis-py, in a venv of its own under the target directory. They run against the debug
# binary the cargo step above built for tests/ (named explicitly, so a stale release build is
# never picked; `cargo build` here would rebuild it with other tokio features, for a minute).
# Any non-zero pytest exit fails, including 5 (no tests collected): there must be tests.
compat_venv=${CARGO_TARGET_DIR:-target}/redis-compat-venv
ensure_compat_venv() {
    if [[ -x $compat_venv/bin/python ]] &&
        "$compat_venv/bin/python" -c 'import redis, pytest' >/dev/null 2>&1; then
        return 0
    fi
    rm -rf "$compat_venv"
    mkdir -p "$(dirname "$compat_venv")"
    if ! python3 -m venv "$compat_venv" >/dev/null 2>&1; then
        # Debian's python3 needs python3-venv (ensurepip) to create a venv.
        rm -rf "$compat_venv"
        step "installing system packages: python3-venv"
        local sudo=()
        if [[ $(id -u) -ne 0 ]]; then
            sudo=(sudo)
        fi
        "${sudo[@]}" apt-get update
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends python3-venv
        python3 -m venv "$compat_venv"
    fi
    "$compat_venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        'redis==8.1.0' 'pytest==9.2.0'
}
step "pytest redis-compat-tests/ (parity with redis-server)"
ensure_compat_venv
ringkv_debug_bin=${CARGO_TARGET_DIR:-target}/debug/ringkv
if [[ ! -x $ringkv_debug_bin ]]; then
    cargo build -p ringkv
fi
RINGKV_BIN=$(realpath "$ringkv_debug_bin") \
    "$compat_venv/bin/python" -m pytest -p no:cacheprovider -q redis-compat-tests/

step "all checks passed"
