#!/usr/bin/env bash
# Runs the demo: builds the plugins and the router, starts a local chat receiver on
# 127.0.0.1:9000, and serves router.toml on 127.0.0.1:8080. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
export GITHUB_WEBHOOK_SECRET="${GITHUB_WEBHOOK_SECRET:-demo-secret}"
export HOOKYARD_ADMIN_TOKEN="${HOOKYARD_ADMIN_TOKEN:-demo-admin-token-change-me}"
scripts/build-plugins.sh
# Exactly what `cargo run -p hookyard` builds, so the README's next commands start at once.
cargo build -p hookyard
"${CARGO_TARGET_DIR:-target}/debug/hookyard" receive --port 9000 &
receiver=$!
trap 'kill $receiver 2>/dev/null' EXIT
"${CARGO_TARGET_DIR:-target}/debug/hookyard" serve -c router.toml
