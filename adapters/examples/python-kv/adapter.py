#!/usr/bin/env python3
"""A key-value application for raftd, in Python with nothing but the standard library.

It serves raftd's state-machine API v1 (docs/state-machine-api.md) over HTTP/1.1:
  RAFTD_APP_SECRET_FILE=secrets/app-secret python3 adapter.py --listen 127.0.0.1:7000 --data-dir ./py-kv-data
then start raftd with --app-url http://127.0.0.1:7000 and the same app secret.

Authentication (docs/state-machine-api.md "Authentication"): raftd signs every call with HMAC-SHA256
under the app secret; a call without a valid, fresh, never-seen signature is answered 401 before any
state is read or changed. The secret comes from --app-secret-file, RAFTD_APP_SECRET or
RAFTD_APP_SECRET_FILE; --insecure serves unsigned calls (tests only).

Durability: each group's whole state (its map and its last index, together) lives in one file,
DATA/g-<group>.json, replaced atomically (write a temp file, fsync, rename, fsync the directory)
after every UpdateEntries. Index and effects can therefore never disagree after a crash. That
costs a full rewrite per batch: fine for an example, not for big state.

Snapshots use the same format as the TypeScript KV adapter (adapters/kv/commands.ts):
  {"format":"raftd-kv-snapshot/1","lastLogIndex":N,"count":C}\\n then C lines ["key","value"]\\n
sorted by key (Python's str order is code point order, the same as UTF-8 byte order).
"""

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

FORMAT = "raftd-kv-snapshot/1"
MAX_BODY = 64 * 1024 * 1024
MAX_GROUP = 4294967294
PREFIX = "/raft/v1/"
CALLS = {"LastLogIndex", "UpdateEntries", "Read", "PrepareSnapshot", "SaveSnapshot",
         "RecoverFromSnapshot", "Sync", "DeleteGroup"}
STATUS = {"BAD_REQUEST": 400, "BAD_QUERY": 400, "BAD_SNAPSHOT": 400, "NOT_FOUND": 404,
          "METHOD_NOT_ALLOWED": 405, "INDEX_GAP": 409, "SNAPSHOT_GONE": 410,
          "PAYLOAD_TOO_LARGE": 413, "INTERNAL": 500}


AUTH_SCHEME = "RAFTD-HMAC-SHA256"
AUTH_WINDOW_MS = 60_000
MAX_NONCES = 1_000_000
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
SIG_RE = re.compile(r"^RAFTD-HMAC-SHA256 ([0-9a-f]{64})$")
HEX64_RE = re.compile(r"^[0-9a-f]{64}$")


class AuthError(Exception):
    def __init__(self, code, message, status=401):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


class Verifier:
    """raftd's signature on every call: HMAC-SHA256(secret, canonical request), a fresh date, a new nonce."""

    def __init__(self, secret):
        self.key = secret.encode("utf-8")
        self.seen = {}  # nonce -> expiry (ms); dict order is insertion order
        self.mutex = threading.Lock()

    def verify_headers(self, method, path, headers):
        """Returns the body's expected SHA-256 hex (None for an unsigned snapshot stream)."""
        m = SIG_RE.match(headers.get("Authorization") or "")
        if not m:
            raise AuthError("UNAUTHENTICATED", "missing or malformed Authorization: raftd signs every call (%s)" % AUTH_SCHEME)
        date = headers.get("X-Raftd-Date") or ""
        nonce = headers.get("X-Raftd-Nonce") or ""
        content = headers.get("X-Raftd-Content-Sha256") or ""
        if not re.match(r"^\d{1,15}$", date):
            raise AuthError("UNAUTHENTICATED", "x-raftd-date must be Unix milliseconds")
        if not NONCE_RE.match(nonce):
            raise AuthError("UNAUTHENTICATED", "x-raftd-nonce must be 16 to 64 characters of [A-Za-z0-9_-]")
        if not (HEX64_RE.match(content) or content == UNSIGNED_PAYLOAD):
            raise AuthError("UNAUTHENTICATED", "x-raftd-content-sha256 must be lower-case hex SHA-256")
        canonical = "\n".join([AUTH_SCHEME, method, path, date, nonce, content]).encode("utf-8")
        want = hmac.new(self.key, canonical, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, m.group(1)):
            raise AuthError("UNAUTHENTICATED", "bad signature: wrong app secret, or the request was altered")
        now, at = int(time.time() * 1000), int(date)
        if abs(now - at) > AUTH_WINDOW_MS:
            raise AuthError("UNAUTHENTICATED", "x-raftd-date is %d s from this host's clock: replayed, or the clocks disagree" % ((now - at) // 1000))
        if content == UNSIGNED_PAYLOAD and not urlparse(path).path.endswith("/RecoverFromSnapshot"):
            raise AuthError("UNAUTHENTICATED", "UNSIGNED-PAYLOAD is accepted on RecoverFromSnapshot only")
        with self.mutex:
            for old, expires in list(self.seen.items()):
                if expires >= now:
                    break
                del self.seen[old]
            if nonce in self.seen:
                raise AuthError("REPLAYED", "nonce %s was already used: a replayed call" % nonce)
            if len(self.seen) >= MAX_NONCES:
                raise AuthError("AUTH_BUSY", "too many calls within the window: retry later", 503)
            self.seen[nonce] = at + AUTH_WINDOW_MS
        return None if content == UNSIGNED_PAYLOAD else content

    @staticmethod
    def verify_body(expected, raw):
        if expected is not None and hashlib.sha256(raw).hexdigest() != expected:
            raise AuthError("UNAUTHENTICATED", "the body does not match x-raftd-content-sha256: altered in transit")


def read_secret(flag_file):
    """--app-secret-file, else RAFTD_APP_SECRET, else RAFTD_APP_SECRET_FILE (protocol/secrets.ts's rule)."""
    path = flag_file or None
    value = None
    if path is None:
        value = os.environ.get("RAFTD_APP_SECRET") or None
        if value is None:
            path = os.environ.get("RAFTD_APP_SECRET_FILE") or None
    if path is not None:
        with open(path, encoding="utf-8") as f:
            value = f.read()
    if value is None:
        return None
    value = value.strip()
    if len(value) < 16 or "\n" in value or "\r" in value:
        raise SystemExit("python-kv: the app secret must be one line of at least 16 characters")
    return value


class ApiError(Exception):
    """A contract error: HTTP status from STATUS, body {"error": {"code", "message", ...}}."""

    def __init__(self, code, message, **extra):
        super().__init__(message)
        self.code, self.message, self.extra = code, message, extra


def dumps(value):
    # Compact, non-ASCII kept as is: the same bytes JSON.stringify produces.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path))


def encode_snapshot(last, kv):
    lines = [dumps({"format": FORMAT, "lastLogIndex": last, "count": len(kv)})]
    lines += [dumps([k, kv[k]]) for k in sorted(kv)]
    return ("\n".join(lines) + "\n").encode("utf-8")


def decode_snapshot(data):
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError("BAD_SNAPSHOT", "snapshot is not UTF-8")
    if not text.endswith("\n"):
        raise ApiError("BAD_SNAPSHOT", "snapshot is truncated (no final newline)")
    lines = text[:-1].split("\n")
    try:
        header = json.loads(lines[0])
        pairs = [json.loads(line) for line in lines[1:]]
    except ValueError:
        raise ApiError("BAD_SNAPSHOT", "snapshot lines are not JSON")
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ApiError("BAD_SNAPSHOT", "not a %s snapshot" % FORMAT)
    last = header.get("lastLogIndex")
    if not is_int(last) or last < 0 or header.get("count") != len(pairs):
        raise ApiError("BAD_SNAPSHOT", "snapshot header is inconsistent")
    kv = {}
    for p in pairs:
        if not (isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) and isinstance(p[1], str)):
            raise ApiError("BAD_SNAPSHOT", "snapshot line is not [\"key\",\"value\"]")
        kv[p[0]] = p[1]
    return last, kv


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def apply_command(kv, data):
    """Applies one entry in place; returns the wire result minus the index. Deterministic."""
    if not data:
        return {"ok": True, "result": None}

    def bad(msg):
        return {"ok": False, "error": {"code": "BAD_COMMAND", "message": msg}}

    try:
        cmd = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return bad("entry is not UTF-8 JSON")
    if not isinstance(cmd, dict) or not isinstance(cmd.get("key"), str):
        return bad("command needs a string \"key\"")
    op, key = cmd.get("op"), cmd["key"]
    if op == "set":
        if not isinstance(cmd.get("value"), str):
            return bad("set needs a string \"value\"")
        kv[key] = cmd["value"]
        return {"ok": True, "result": {"ok": True}}
    if op == "delete":
        return {"ok": True, "result": {"deleted": kv.pop(key, None) is not None}}
    if op == "cas":
        expect, value = cmd.get("expect", 0), cmd.get("value", 0)
        if not (expect is None or isinstance(expect, str)) or not (value is None or isinstance(value, str)):
            return bad("cas needs \"expect\" and \"value\": string or null")
        current = kv.get(key)
        if current != expect:
            return {"ok": True, "result": {"swapped": False, "value": current}}
        if value is None:
            kv.pop(key, None)
        else:
            kv[key] = value
        return {"ok": True, "result": {"swapped": True, "value": value}}
    return bad("unknown op %s (set, delete, cas)" % dumps(op))


class Store:
    """All groups of this process. One lock per group orders updates, snapshots and reads."""

    def __init__(self, data_dir):
        self.dir = data_dir
        os.makedirs(data_dir, exist_ok=True)
        self.groups = {}
        self.locks = {}
        self.meta = threading.Lock()

    def lock(self, group):
        with self.meta:
            return self.locks.setdefault(group, threading.Lock())

    def path(self, group, suffix="json"):
        return os.path.join(self.dir, "g-%d.%s" % (group, suffix))

    def state(self, group):
        """(last, kv) for a group, loaded from disk once. Call with the group's lock held."""
        if group not in self.groups:
            try:
                with open(self.path(group), "rb") as f:
                    saved = json.loads(f.read().decode("utf-8"))
                self.groups[group] = (saved["lastLogIndex"], saved["kv"])
            except FileNotFoundError:
                self.groups[group] = (0, {})
        return self.groups[group]

    def persist(self, group, last, kv):
        write_atomic(self.path(group), dumps({"lastLogIndex": last, "kv": kv}).encode("utf-8"))
        self.groups[group] = (last, kv)

    def snapshots(self, group):
        pat = re.compile(r"^g-%d\.snap-(\d+)$" % group)
        return sorted(int(m.group(1)) for m in map(pat.match, os.listdir(self.dir)) if m)


def parse_group(v):
    if isinstance(v, str) and v.isdigit():
        v = int(v)
    if not is_int(v) or v < 1 or v > MAX_GROUP:
        raise ApiError("BAD_REQUEST", "\"group\" must be an integer in 1..%d, got %s" % (MAX_GROUP, dumps(v)))
    return v


def parse_entries(v):
    if not isinstance(v, list) or not v:
        raise ApiError("BAD_REQUEST", "\"entries\" must be a non-empty array")
    out = []
    for i, e in enumerate(v):
        if not isinstance(e, dict):
            raise ApiError("BAD_REQUEST", "entries[%d] must be an object" % i)
        index, term, data = e.get("index"), e.get("term"), e.get("data")
        if not is_int(index) or index < 1:
            raise ApiError("BAD_REQUEST", "entries[%d].index must be an integer >= 1" % i)
        if not is_int(term) or term < 0:
            raise ApiError("BAD_REQUEST", "entries[%d].term must be an integer >= 0" % i)
        try:
            if not isinstance(data, str):
                raise ValueError()
            raw = base64.b64decode(data, validate=True)
        except (ValueError, binascii.Error):
            raise ApiError("BAD_REQUEST", "entries[%d].data must be base64" % i)
        if out and index != out[-1][0] + 1:
            raise ApiError("BAD_REQUEST", "entries must have contiguous indexes")
        out.append((index, raw))
    return out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: raftd reuses connections
    store = None  # set by main
    verifier = None  # set by main; None only with --insecure

    def log_message(self, fmt, *args):  # quiet; errors are answered, not printed
        pass

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks, size = [], 0
            while True:
                n = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                size += n
                if size > MAX_BODY:
                    raise ApiError("PAYLOAD_TOO_LARGE", "body over %d bytes" % MAX_BODY)
                chunks.append(self.rfile.read(n))
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise ApiError("PAYLOAD_TOO_LARGE", "body over %d bytes" % MAX_BODY)
        return self.rfile.read(n)

    def send(self, status, body, ctype="application/json", extra_headers=None):
        data = body if isinstance(body, bytes) else dumps(body).encode("utf-8")
        self.send_response(status)
        for k, v in (extra_headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.fail(ApiError("METHOD_NOT_ALLOWED", "state-machine calls take POST"))

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def fail(self, e):
        self.send(STATUS.get(e.code, 422), {"error": dict({"code": e.code, "message": e.message}, **e.extra)})

    def do_POST(self):
        expected = None
        if self.verifier is not None:
            try:
                # Before the body is read and before any state is touched.
                expected = self.verifier.verify_headers("POST", self.path, self.headers)
            except AuthError as e:
                self.close_connection = True  # the unread body makes the connection unusable
                return self.send(e.status, {"error": {"code": e.code, "message": e.message}},
                                 extra_headers={"WWW-Authenticate": AUTH_SCHEME, "Connection": "close"})
        try:
            url = urlparse(self.path)
            call = url.path[len(PREFIX):] if url.path.startswith(PREFIX) else None
            if call not in CALLS:
                self.read_body()
                raise ApiError("NOT_FOUND", "no such call: %s" % url.path)
            raw = self.read_body()
            try:
                Verifier.verify_body(expected, raw)
            except AuthError as e:
                return self.send(e.status, {"error": {"code": e.code, "message": e.message}})
            if call == "RecoverFromSnapshot":
                group = parse_group((parse_qs(url.query).get("group") or [None])[0])
                return self.send(200, self.recover(group, raw))
            try:
                body = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                raise ApiError("BAD_REQUEST", "the request body is not valid JSON")
            if not isinstance(body, dict):
                raise ApiError("BAD_REQUEST", "the request body must be a JSON object")
            group = parse_group(body.get("group"))
            if call == "SaveSnapshot":
                return self.save_snapshot(group, body.get("prepared"))
            self.send(200, getattr(self, "call_" + call)(group, body))
        except ApiError as e:
            self.fail(e)
        except Exception as e:  # a bug: answer 500, keep serving
            self.fail(ApiError("INTERNAL", "%s: %s" % (type(e).__name__, e)))

    # ---- the calls
    def call_LastLogIndex(self, group, body):
        with self.store.lock(group):
            return {"lastLogIndex": self.store.state(group)[0]}

    def call_UpdateEntries(self, group, body):
        entries = parse_entries(body.get("entries"))
        with self.store.lock(group):
            last, kv = self.store.state(group)
            if entries[0][0] > last + 1:
                raise ApiError("INDEX_GAP", "first entry %d leaves a gap after %d" % (entries[0][0], last),
                               lastLogIndex=last)
            results, new_kv, new_last = [], dict(kv), last
            for index, data in entries:
                if index <= last:
                    results.append({"index": index, "skipped": True})  # redelivered: never twice
                    continue
                r = apply_command(new_kv, data)
                r["index"] = index
                results.append(r)
                new_last = index
            if new_last != last:
                # Effects and index in one atomic file replace; memory only after it succeeded.
                self.store.persist(group, new_last, new_kv)
            return {"results": results, "lastLogIndex": new_last}

    def call_Read(self, group, body):
        q = body.get("query")
        with self.store.lock(group):
            kv = self.store.state(group)[1]
            if isinstance(q, dict) and q.get("op") == "get" and isinstance(q.get("key"), str):
                return {"result": {"value": kv.get(q["key"])}}
            if isinstance(q, dict) and q.get("op") == "scan":
                prefix = q.get("prefix") or ""
                items = [{"key": k, "value": kv[k]} for k in sorted(kv) if k.startswith(prefix)]
                return {"result": {"items": items}}
        raise ApiError("BAD_QUERY", "query must be {\"op\":\"get\",\"key\":...} or {\"op\":\"scan\"}")

    def call_PrepareSnapshot(self, group, body):
        with self.store.lock(group):
            last, kv = self.store.state(group)
            path = self.store.path(group, "snap-%d" % last)
            if not os.path.exists(path):
                write_atomic(path, encode_snapshot(last, kv))
            for old in self.store.snapshots(group)[:-2]:  # keep the two newest views
                os.remove(self.store.path(group, "snap-%d" % old))
            return {"prepared": "snap-%d" % last, "lastLogIndex": last}

    def save_snapshot(self, group, prepared):
        if not isinstance(prepared, str) or not prepared:
            raise ApiError("BAD_REQUEST", "\"prepared\" must be a non-empty string")
        m = re.match(r"^snap-(\d+)$", prepared)
        try:
            if not m:
                raise FileNotFoundError()
            with open(self.store.path(group, "snap-%s" % m.group(1)), "rb") as f:
                data = f.read()  # the file is immutable: same bytes every time
        except FileNotFoundError:
            raise ApiError("SNAPSHOT_GONE", "snapshot %s no longer exists; prepare a new one" % prepared)
        self.send(200, data, "application/octet-stream")

    def recover(self, group, raw):
        last, kv = decode_snapshot(raw)
        with self.store.lock(group):
            self.store.persist(group, last, kv)  # one atomic replace: old state or new, never a mix
            return {"lastLogIndex": last}

    def call_Sync(self, group, body):
        return self.call_LastLogIndex(group, body)  # every UpdateEntries is already durable

    def call_DeleteGroup(self, group, body):
        with self.store.lock(group):
            for old in self.store.snapshots(group):
                os.remove(self.store.path(group, "snap-%d" % old))
            try:
                os.remove(self.store.path(group))
            except FileNotFoundError:
                pass
            self.store.groups.pop(group, None)
            return {}


def main():
    ap = argparse.ArgumentParser(description="stdlib-only key-value adapter for raftd")
    ap.add_argument("--listen", default=os.environ.get("PY_KV_LISTEN", "127.0.0.1:7000"), help="HOST:PORT")
    ap.add_argument("--data-dir", default=os.environ.get("PY_KV_DATA_DIR", "./py-kv-data"))
    ap.add_argument("--app-secret-file", default=None,
                    help="the app secret raftd signs its calls with (or RAFTD_APP_SECRET / RAFTD_APP_SECRET_FILE)")
    ap.add_argument("--insecure", action="store_true", help="serve unsigned calls (tests only)")
    args = ap.parse_args()
    host, _, port = args.listen.rpartition(":")
    secret = read_secret(args.app_secret_file)
    if secret is None and not args.insecure:
        raise SystemExit("python-kv: no --app-secret-file (or RAFTD_APP_SECRET / RAFTD_APP_SECRET_FILE): "
                         "raftd signs every call; give the same secret, or --insecure for a throwaway test")
    Handler.verifier = Verifier(secret) if secret is not None else None
    Handler.store = Store(args.data_dir)
    server = ThreadingHTTPServer((host, int(port)), Handler)
    server.daemon_threads = True
    print("python-kv adapter listening on http://%s:%s (data %s)" % (host, server.server_port, args.data_dir), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    server.server_close()


if __name__ == "__main__":
    sys.exit(main())
