#!/usr/bin/env bash
# CI's wgpu step: the wgpu backend tested on Mesa's lavapipe, a Vulkan driver that runs on
# the CPU, so the GPU code path (kernels compiled to SPIR-V, buffers, transfers) runs on a
# machine without a GPU. Installs Debian's Vulkan loader and Mesa drivers when missing,
# shows the adapter (`vulkaninfo --summary`), then runs tests/gpu_wgpu.rs in its own target
# dir (target/wgpu: `--features wgpu` changes burn's features, so sharing target/debug would
# rebuild both each time). A first build compiles the wgpu stack (about 30 min on 2 busy
# cores); later ones only bma. It stays on WGSL (`wgpu`), on which the adapter reports no
# memory (the memory guard falls back to host RAM, tested): burn's `vulkan` feature (SPIR-V,
# which reads the Vulkan heaps) changes burn-backend's features and so rebuilds the whole
# burn stack, CPU backend included.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v vulkaninfo >/dev/null || ! ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1; then
  sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq mesa-vulkan-drivers libvulkan1 vulkan-tools >/dev/null
fi
vulkaninfo --summary 2>/dev/null | grep -E 'deviceName|driverName|apiVersion' | sort -u
# lavapipe is the only adapter on a machine without a GPU; wgpu picks it on Vulkan.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/wgpu}
cargo test --features wgpu --test gpu_wgpu -- --nocapture --test-threads 1
