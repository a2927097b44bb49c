#!/usr/bin/env bash
# Makes `redis-server` available for the registry's Redis tests (SPEC §9: several registry
# replicas sharing state). The tests start their own redis-server processes on free loopback
# ports and never touch a system instance; this only installs the binary.
exec bash "$(dirname "$0")/ensure-package.sh" redis-server redis-server
