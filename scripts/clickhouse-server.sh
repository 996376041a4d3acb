#!/usr/bin/env bash
# Installs, starts and stops a Debian clickhouse-server on our own ports, config and data dir,
# so the server-engine tests (and CI) never touch a system-wide ClickHouse.
#   scripts/clickhouse-server.sh install|start|stop|status
# Environment: CH_STATE_DIR (default /tmp/raftd-chserver), CH_HTTP_PORT (18423), CH_TCP_PORT (19400),
#              CH_START_TIMEOUT seconds to wait for /ping (default 60).
set -euo pipefail

STATE_DIR="${CH_STATE_DIR:-/tmp/raftd-chserver}"
HTTP_PORT="${CH_HTTP_PORT:-18423}"
TCP_PORT="${CH_TCP_PORT:-19400}"
START_TIMEOUT="${CH_START_TIMEOUT:-60}"
PID_FILE="$STATE_DIR/clickhouse-server.pid"
LOG_DIR="$STATE_DIR/log"

die() { echo "clickhouse-server.sh: $*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else die "need root for: $*"; fi
}

find_server_bin() {
  # Debian 18.16 puts it in /usr/sbin (not on a non-root PATH); newer packages ship a multi-call
  # /usr/bin/clickhouse that takes `server` as its first argument.
  local b
  for b in clickhouse-server /usr/sbin/clickhouse-server /usr/bin/clickhouse-server; do
    if command -v "$b" >/dev/null 2>&1; then command -v "$b"; return 0; fi
  done
  if command -v clickhouse >/dev/null 2>&1; then echo "$(command -v clickhouse) server"; return 0; fi
  return 1
}

cmd_install() {
  if find_server_bin >/dev/null && command -v clickhouse-client >/dev/null 2>&1; then
    echo "clickhouse-server already installed: $(find_server_bin)"
    return 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -q
  as_root apt-get install -y -q --no-install-recommends clickhouse-server clickhouse-client
  # The package may start a system-wide server on the default ports; we never use it.
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    as_root systemctl stop clickhouse-server >/dev/null 2>&1 || true
  fi
  find_server_bin >/dev/null || die "installed, but no clickhouse-server binary found"
  echo "installed: $(find_server_bin)"
}

write_config() {
  mkdir -p "$STATE_DIR/data" "$STATE_DIR/tmp" "$STATE_DIR/user_files" "$STATE_DIR/format_schemas" "$LOG_DIR"
  # <yandex> is the root element 18.16 expects (newer servers accept it too). No interserver port:
  # we run no replication, and leaving it out avoids clashing with any other server's 9009.
  cat >"$STATE_DIR/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>$LOG_DIR/clickhouse-server.log</log>
        <errorlog>$LOG_DIR/clickhouse-server.err.log</errorlog>
        <size>10M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>$HTTP_PORT</http_port>
    <tcp_port>$TCP_PORT</tcp_port>
    <max_connections>256</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>64</max_concurrent_queries>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <path>$STATE_DIR/data/</path>
    <tmp_path>$STATE_DIR/tmp/</tmp_path>
    <user_files_path>$STATE_DIR/user_files/</user_files_path>
    <format_schema_path>$STATE_DIR/format_schemas/</format_schema_path>
    <users_config>$STATE_DIR/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
</yandex>
XML
  # One passwordless user on loopback only, plus a read-only user for tests of READONLY handling.
  cat >"$STATE_DIR/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <load_balancing>random</load_balancing>
        </default>
        <readonly>
            <readonly>1</readonly>
        </readonly>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
        <reader>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>readonly</profile>
            <quota>default</quota>
        </reader>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
XML
}

ping_ok() {
  # /ping answers "Ok." on every version; curl may be missing on a fresh machine, so fall back to bash's /dev/tcp.
  if command -v curl >/dev/null 2>&1; then
    curl -fsS --max-time 2 "http://127.0.0.1:$HTTP_PORT/ping" 2>/dev/null | grep -q '^Ok'
  else
    local resp
    resp=$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$HTTP_PORT && printf 'GET /ping HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3" 2>/dev/null) || return 1
    grep -q '^Ok' <<<"$(printf '%s' "$resp" | tr -d '\r')"
  fi
}

running_pid() {
  [ -f "$PID_FILE" ] || return 1
  local pid
  pid=$(cat "$PID_FILE")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

cmd_start() {
  local pid
  if pid=$(running_pid); then
    if ping_ok; then echo "already running (pid $pid) on http://127.0.0.1:$HTTP_PORT"; return 0; fi
  fi
  if ping_ok; then die "port $HTTP_PORT already answers /ping but not from our PID file; set CH_HTTP_PORT"; fi
  local bin
  bin=$(find_server_bin) || die "clickhouse-server not installed; run: $0 install"
  write_config
  # Run as whoever we are (root in CI): our data dir is ours, so no chown to a clickhouse user is needed.
  # shellcheck disable=SC2086
  nohup $bin --config-file="$STATE_DIR/config.xml" >"$LOG_DIR/stdout.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PID_FILE"
  local waited=0
  while ! ping_ok; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PID_FILE"
      echo "--- stdout.log" >&2; tail -n 30 "$LOG_DIR/stdout.log" >&2 || true
      echo "--- clickhouse-server.err.log" >&2; tail -n 30 "$LOG_DIR/clickhouse-server.err.log" >&2 || true
      die "server exited during start-up"
    fi
    if [ "$waited" -ge $((START_TIMEOUT * 5)) ]; then
      kill "$pid" 2>/dev/null || true
      rm -f "$PID_FILE"
      die "no /ping answer on port $HTTP_PORT after ${START_TIMEOUT}s"
    fi
    sleep 0.2
    waited=$((waited + 1))
  done
  echo "started (pid $pid) on http://127.0.0.1:$HTTP_PORT (tcp $TCP_PORT), state in $STATE_DIR"
}

cmd_stop() {
  local pid
  if ! pid=$(running_pid); then
    rm -f "$PID_FILE"
    echo "not running"
    return 0
  fi
  kill "$pid"
  local i
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
  rm -f "$PID_FILE"
  echo "stopped (pid $pid)"
}

cmd_status() {
  local pid
  if pid=$(running_pid) && ping_ok; then
    echo "running (pid $pid) on http://127.0.0.1:$HTTP_PORT"
  else
    echo "not running"
    return 3
  fi
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
