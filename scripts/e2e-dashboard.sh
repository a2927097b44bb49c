#!/usr/bin/env bash
# The admin dashboard's browser end-to-end test (e2e/dashboard.test.mjs): headless Chromium
# against a real `levee demo` (the demo fleet behind a levee sidecar).
#
# - Chromium is Debian's package (/usr/bin/chromium), installed here when missing;
#   Playwright's own browser downloads are never used (playwright-core has none).
# - `npm ci` installs e2e/package-lock.json exactly.
# - The screenshot of the outage is written to artifacts/dashboard.png.
#
# Environment: CHROMIUM (default /usr/bin/chromium), CARGO_TARGET_DIR, LEVEE_BIN (default
# target/debug/levee, with the demo fleet's programs beside it: `make demo-build PROFILE=debug`).
set -euo pipefail
cd "$(dirname "$0")/.."

export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$CHROMIUM" ]]; then
  bash scripts/ensure-package.sh chromium chromium
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "e2e-dashboard: node and npm are needed (Node.js 20 or later)" >&2
  exit 1
fi

# playwright-core must never fetch a browser of its own.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
(cd e2e && npm ci --no-audit --no-fund --loglevel=error)

export LEVEE_BIN="${LEVEE_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/debug/levee}"
mkdir -p artifacts
export LEVEE_E2E_ARTIFACTS="$PWD/artifacts"

cd e2e
node --test --test-concurrency=1 dashboard.test.mjs
echo "e2e-dashboard: screenshot in artifacts/dashboard.png"
