#!/usr/bin/env bash
# Installs etcd (Debian package etcd-server, 3.4.x) for `npm run bench:kv`, if it is not there yet.
# Idempotent; needs root (or sudo). The package's systemd unit is not started here: the benchmark
# runs its own 3-member cluster on loopback with its own ports and temporary data directories.
set -euo pipefail
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if command -v etcd >/dev/null 2>&1; then
  echo "etcd already installed: $(etcd --version | head -1)"
  exit 0
fi
as_root apt-get update -q
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends etcd-server
etcd --version | head -1
