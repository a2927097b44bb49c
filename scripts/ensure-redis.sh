#!/usr/bin/env bash
# Makes `redis-server` available for the registry's Redis tests (SPEC §9: several registry
# replicas sharing state). The tests start their own redis-server processes on free loopback
# ports and never touch a system instance; this script only installs the binary.
# Idempotent: does nothing when redis-server is already on PATH.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends redis-server
# The package's service is not wanted: tests run their own servers on free ports.
if command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --now redis-server >/dev/null 2>&1 || true
fi
$SUDO service redis-server stop >/dev/null 2>&1 || true
command -v redis-server >/dev/null
