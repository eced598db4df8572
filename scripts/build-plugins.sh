#!/usr/bin/env bash
# Builds the plugins in plugins/ for wasm32-wasip2 and copies them to plugins/dist/.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v rustup >/dev/null 2>&1; then
  rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
fi
cargo build --profile plugin --target wasm32-wasip2 -p filter -p github-to-chat -p enrich -p template -p paid-order
target="${CARGO_TARGET_DIR:-target}"
mkdir -p plugins/dist
for p in filter github_to_chat enrich template paid_order; do
  cp "$target/wasm32-wasip2/plugin/$p.wasm" "plugins/dist/${p//_/-}.wasm.tmp"
  mv "plugins/dist/${p//_/-}.wasm.tmp" "plugins/dist/${p//_/-}.wasm"
done
ls -l plugins/dist
