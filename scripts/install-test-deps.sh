#!/usr/bin/env bash
# Debian packages the test suite runs for real: HAProxy (load-balancer routing by /leader-check),
# promtool (from prometheus: raftd's /metrics checked by Prometheus's own linter) and
# clickhouse-server (the server engine). Idempotent; needs root (CI runs as root).
set -euo pipefail
cd "$(dirname "$0")/.."
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
bash scripts/clickhouse-server.sh install
