#!/usr/bin/env bash
# ensure-package.sh COMMAND PACKAGE: installs Debian's PACKAGE (without recommends) when
# COMMAND is not on PATH, and stops the service the package may have started: tests start
# their own servers on loopback ports they pick. Idempotent.
set -euo pipefail
command_name=$1
package=$2
if command -v "$command_name" >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
echo "installing $package (Debian package) for $command_name"
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "$package"
if command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --now "$package" >/dev/null 2>&1 || true
fi
$SUDO service "$package" stop >/dev/null 2>&1 || true
command -v "$command_name" >/dev/null
