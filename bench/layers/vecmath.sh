#!/usr/bin/env bash
# Per-element CPU cost of burn-flex's vectorised f32 exp/tanh/sigmoid/erf/GELU
# (vendor/burn-flex/src/ops/vecmath.rs) against the scalar libm calls they replace, one thread,
# alternating; built with plain rustc (no cargo, no dependencies), twice: for the baseline
# x86-64 target and for the machine's own (what burn-flex's run-time SIMD dispatch picks).
#
#   bench/layers/vecmath.sh [REPS]      (default 5)
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=${1:-5}
DIR=target/bench-vecmath
mkdir -p "$DIR"
# The scalar functions: from the first `#[inline(always)]` up to the slice kernels' macro.
awk '/^#\[inline\(always\)\]$/ && !s {s=1} s && /^macro_rules!/ {exit} s {print}' \
  vendor/burn-flex/src/ops/vecmath.rs > "$DIR/vecmath_scalar.rs"
VECMATH_DIR=$PWD/$DIR rustc --edition 2024 -O -C target-cpu=x86-64 -o "$DIR/micro-base" bench/layers/vecmath_micro.rs
VECMATH_DIR=$PWD/$DIR rustc --edition 2024 -O -C target-cpu=native -o "$DIR/micro-native" bench/layers/vecmath_micro.rs
uptime
echo "baseline x86-64 (SSE2):"
"$DIR/micro-base" "$REPS"
echo "target-cpu=native:"
"$DIR/micro-native" "$REPS"
uptime
