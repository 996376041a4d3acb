# syntax=docker/dockerfile:1.7
# raftd and RaftHouse in one image. The first argument picks the program:
#   docker run IMAGE raftd --help
#   docker run IMAGE rafthouse --help
#   docker run IMAGE raftd-ch-checksum --help
# Anything else runs as a plain command. Data lives under /data (a volume).

# ---- build: install everything, compile TypeScript, then drop dev dependencies
FROM node:20-bookworm-slim AS build
WORKDIR /app
# Only needed when a native module (rocksdb) has no prebuilt binary for the platform.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY daemon daemon
COPY adapters adapters
COPY clickhouse-adapter clickhouse-adapter
COPY gen gen
COPY scripts scripts
COPY test test
# tsconfig compiles tests and scripts too (one build for everything); the image ships only what runs.
RUN npx tsc -p . \
 && npm prune --omit=dev --no-audit --no-fund \
 && rm -rf dist/test dist/scripts

# ---- run: node, the compiled programs and production dependencies, as a non-root user
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
RUN groupadd --system --gid 10001 rafthouse \
 && useradd --system --uid 10001 --gid rafthouse --home-dir /data --shell /usr/sbin/nologin rafthouse \
 && mkdir -p /data /secrets \
 && chown rafthouse:rafthouse /data /secrets \
 && chmod 700 /secrets
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --chmod=755 <<'SCRIPT' /usr/local/bin/rafthouse-entrypoint
#!/bin/sh
set -e
# StatefulSet-style hostnames (name-0, name-1, ...) give raftd ids 1, 2, ... when asked to.
if [ "${RAFTD_ID_FROM_HOSTNAME:-0}" = "1" ] && [ -z "${RAFTD_ID:-}" ]; then
  ord="${HOSTNAME##*-}"
  case "$ord" in
    ''|*[!0-9]*) echo "entrypoint: cannot derive RAFTD_ID from hostname '$HOSTNAME'" >&2; exit 2 ;;
  esac
  RAFTD_ID=$((ord + 1))
  export RAFTD_ID
fi
case "${1:-}" in
  raftd) shift; exec node /app/dist/daemon/main.js "$@" ;;
  rafthouse) shift; exec node /app/dist/clickhouse-adapter/main.js "$@" ;;
  raftd-ch-checksum) shift; exec node /app/dist/clickhouse-adapter/statemachine/checksum-main.js "$@" ;;
  '') echo "usage: raftd|rafthouse|raftd-ch-checksum [flags]   (--help for the flags)" >&2; exit 2 ;;
  *) exec "$@" ;;
esac
SCRIPT
USER rafthouse
VOLUME ["/data"]
# 7001 raft peers, 8001 raftd client API; 7100 state-machine API, 8123 consistent, 8124 local.
EXPOSE 7001 8001 7100 8123 8124
# raftd's /raft-health at its client API (RAFTD_HTTP_ADDR, as raftd itself reads it). A container that
# runs rafthouse alone overrides this (see docker-compose.yml) or points RAFTD_HTTP_ADDR at its raftd.
HEALTHCHECK --interval=5s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://' + (process.env.RAFTD_HTTP_ADDR || '127.0.0.1:8001') + '/raft-health', { signal: AbortSignal.timeout(2500) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["/usr/local/bin/rafthouse-entrypoint"]
CMD ["raftd", "--help"]
