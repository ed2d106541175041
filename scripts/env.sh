# Sourced by demo.sh and test.sh from the repository root. It sets up where
# the two scripts build and which Python they install into:
#
# * Build directories. The wheel (maturin, feature "python"), the core's tests
#   (cargo test, no features) and clippy each build into a target directory of
#   their own under target/: sharing one, each switch between the two scripts
#   rebuilt the whole crate with the other features (about 50 s).
# * cargo. rustup installs it into ~/.cargo/bin, which a fresh shell may not
#   have on its PATH yet: it is added when cargo is found there.
# * Python. rnnrs_select_python picks the interpreter; rnnrs_prepare_python
#   creates the repository's virtual environment .venv/ when that is the pick.
#   In order: $RNNRS_PYTHON when set; the active virtual environment
#   ($VIRTUAL_ENV); the active conda environment ($CONDA_PREFIX); python3 when
#   it runs inside a virtual environment itself; otherwise .venv/ at the
#   repository root, created once with `python3 -m venv .venv`. So the scripts
#   never install into a system Python (Debian's refuses with
#   "externally-managed-environment").

RNNRS_ROOT="$(pwd)"
# pip runs maturin, which reads CARGO_TARGET_DIR.
export CARGO_TARGET_DIR="$RNNRS_ROOT/target/wheel"
export RNNRS_TEST_TARGET="$RNNRS_ROOT/target/test"
export RNNRS_CHECK_TARGET="$RNNRS_ROOT/target/check"
RNNRS_VENV="$RNNRS_ROOT/.venv"

rnnrs_die() {
    echo "rnnrs: $*" >&2
    exit 1
}

# Puts cargo on PATH (see above), or stops with what to install.
rnnrs_find_cargo() {
    command -v cargo >/dev/null 2>&1 && return 0
    local bin="${CARGO_HOME:-$HOME/.cargo}/bin"
    if [ -x "$bin/cargo" ]; then
        export PATH="$bin:$PATH"
        echo "== cargo found in $bin (not on PATH); using it"
        return 0
    fi
    rnnrs_die "cargo (Rust 1.89 or newer) is needed to build rnnrs's core and was not found on PATH nor in $bin; install Rust with rustup (https://rustup.rs), open a new shell, and run this again"
}

# Sets RNNRS_PYTHON (the interpreter), RNNRS_PYTHON_WHY (a sentence saying
# why) and RNNRS_CREATE_VENV (1 when .venv/ has to be created first). Changes
# nothing on disk.
rnnrs_select_python() {
    RNNRS_CREATE_VENV=0
    if [ -n "${RNNRS_PYTHON:-}" ]; then
        RNNRS_PYTHON_WHY="RNNRS_PYTHON is set"
        return 0
    fi
    if [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then
        RNNRS_PYTHON="$VIRTUAL_ENV/bin/python"
        RNNRS_PYTHON_WHY="the active virtual environment (VIRTUAL_ENV=$VIRTUAL_ENV)"
        return 0
    fi
    if [ -n "${CONDA_PREFIX:-}" ] && [ -x "$CONDA_PREFIX/bin/python" ]; then
        RNNRS_PYTHON="$CONDA_PREFIX/bin/python"
        RNNRS_PYTHON_WHY="the active conda environment (CONDA_PREFIX=$CONDA_PREFIX)"
        return 0
    fi
    local found
    found="$(command -v python3 || true)"
    [ -n "$found" ] || rnnrs_die "python3 (3.9 or newer) was not found on PATH; install it, or set RNNRS_PYTHON to an interpreter"
    local probe
    probe="$("$found" -c 'import sys; print(int(sys.prefix != sys.base_prefix), sys.executable)')" ||
        rnnrs_die "$found does not run"
    if [ "${probe%% *}" = 1 ]; then
        RNNRS_PYTHON="${probe#* }"
        RNNRS_PYTHON_WHY="python3 on PATH runs in a virtual environment"
        return 0
    fi
    RNNRS_PYTHON="$RNNRS_VENV/bin/python"
    if [ -x "$RNNRS_PYTHON" ] && "$RNNRS_PYTHON" -c '' >/dev/null 2>&1; then
        RNNRS_PYTHON_WHY="the repository's virtual environment .venv/ (no virtual environment is active)"
    else
        RNNRS_CREATE_VENV=1
        RNNRS_PYTHON_WHY="the repository's virtual environment .venv/, to be created with $found -m venv (no virtual environment is active)"
    fi
}

# Creates .venv/ when rnnrs_select_python chose it and it does not exist (or
# no longer runs), then checks the interpreter's version.
rnnrs_prepare_python() {
    if [ "$RNNRS_CREATE_VENV" = 1 ]; then
        echo "== no virtual environment is active: creating one for rnnrs in $RNNRS_VENV (python3 -m venv .venv; once)"
        echo "   (to use your own instead, activate it first, or set RNNRS_PYTHON=/path/to/python)"
        python3 -m venv --clear "$RNNRS_VENV" ||
            rnnrs_die "python3 -m venv failed (on Debian and Ubuntu: apt-get install python3-venv); or activate a virtual environment of your own and run this again"
        RNNRS_CREATE_VENV=0
        RNNRS_PYTHON_WHY="the repository's virtual environment .venv/, created now (no virtual environment is active)"
    fi
    "$RNNRS_PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 9))' ||
        rnnrs_die "$RNNRS_PYTHON is not Python 3.9 or newer"
    echo "== Python: $RNNRS_PYTHON ($RNNRS_PYTHON_WHY)"
}

# What both scripts do first, given their arguments: with --print-python,
# print the interpreter on one line and why on the next, and exit (changing
# nothing); otherwise create .venv/ if chosen and find cargo.
rnnrs_setup() {
    rnnrs_select_python
    if [ "${1:-}" = "--print-python" ]; then
        echo "$RNNRS_PYTHON"
        echo "$RNNRS_PYTHON_WHY"
        exit 0
    fi
    rnnrs_prepare_python
    rnnrs_find_cargo
}
