#!/usr/bin/env bash
# Runs every test. First installs what the tests need: the wasm32-wasip2 target (the tests
# build the plugins) and the providers' own SDKs, which the tests use to sign requests
# (PyPI: stripe, svix, standardwebhooks, slack_sdk, twilio, mailgun; npm: @octokit/webhooks-methods
# and the SDKs tests/sdk/preset-sdk.mjs verifies named-provider presets with),
# componentize-js for the JavaScript plugin, PostgreSQL (Debian's package; the tests
# start their own servers with it), Chromium and Playwright (the console's browser tests),
# and opentelemetry-proto (the OTLP receiver the trace tests export to).
# Then: cargo test --workspace (extra arguments are passed on).
set -euo pipefail
trap 'echo "scripts/test.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
cd "$(dirname "$0")/.."
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  rustup target add wasm32-wasip2
fi
# Debian packages: PostgreSQL (the tests start their own servers) and Chromium (the console's
# browser tests drive it through Playwright, which downloads no browser of its own).
missing=()
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
if ! command -v chromium >/dev/null 2>&1; then
  missing+=(chromium)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then apt_get=(apt-get); else apt_get=(sudo apt-get); fi
  DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install -y -qq "${missing[@]}" >/dev/null
fi
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r tests/sdk/requirements.txt
npm ci --prefix tests/sdk --silent --no-audit --no-fund
# componentize-js, which builds the JavaScript plugin the tests run. `npm install` rather than
# `npm ci`: its lock file lists only this platform's optional native packages.
npm install --prefix plugins/js-lead-alert --silent --no-audit --no-fund
cargo test --workspace "$@"
