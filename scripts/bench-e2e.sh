#!/usr/bin/env bash
# The end-to-end benchmark: installs wrk (Debian's package) and PostgreSQL if missing,
# builds the plugins, then runs `cargo bench -p hookyard --bench e2e` and prints its table.
# HOOKYARD_BENCH_SECS (default 30) sets the full-load duration; HOOKYARD_BENCH_PG=0 skips
# the PostgreSQL rows.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then apt_get=(apt-get); else apt_get=(sudo apt-get); fi
  DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install -y -qq "${need[@]}" >/dev/null
fi
scripts/build-plugins.sh >/dev/null
cargo bench -p hookyard --bench e2e
