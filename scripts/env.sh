# Sourced by demo.sh and test.sh. The wheel (maturin, feature "python"), the
# core's tests (cargo test, no features) and clippy each build into a target
# directory of their own: sharing one, each switch between the two scripts
# rebuilt the whole crate with the other features (about 50 s).
RNNRS_ROOT="$(pwd)"
# pip runs maturin, which reads CARGO_TARGET_DIR.
export CARGO_TARGET_DIR="$RNNRS_ROOT/target/wheel"
export RNNRS_TEST_TARGET="$RNNRS_ROOT/target/test"
export RNNRS_CHECK_TARGET="$RNNRS_ROOT/target/check"
