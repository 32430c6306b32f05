"""TEST FIXTURE ONLY — ClickHouse's HTTP interface served over chDB, in a process of its own.

No modern ClickHouse server installs on the CI machines, so this small server lets the tests
exercise the store's HTTP path (clickhouse-connect's HTTP client, settings and insert formats
over the wire) against the real ClickHouse engine that chDB embeds. It is never a product
component. Run: ``python chdb_http.py DATA_PATH PORT``; it prints ``ready`` once listening.

Each request gets its own chDB connection (settings are per connection, like a server-side
query context): URL parameters that are ClickHouse settings are applied with ``SET``, ``param_*``
are bound as query parameters, the query is the ``query`` parameter followed by the body,
and for ``INSERT ... FORMAT X`` the rest of the body is the data.
"""

from __future__ import annotations

import gzip
import re
import sys
import tempfile
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import chdb
import lz4.frame
import zstandard

TRANSPORT = {
    "query",
    "database",
    "query_id",
    "session_id",
    "session_timeout",
    "session_check",
    "default_format",
    "client_protocol_version",
    "user",
    "password",
    "compress",
    "decompress",
    "buffer_size",
    "wait_end_of_query",
    "quota_key",
    "enable_http_compression",
    "send_progress_in_http_headers",
    "http_headers_progress_interval_ms",
}
_INSERT_FORMAT = re.compile(rb"^\s*INSERT\s+INTO\s.*?\sFORMAT\s+(\w+)[ \t]*\r?\n?", re.I | re.S)
_ENGINE_LOCK = threading.Lock()  # one query at a time: the embedded engine is shared


def decompress(body: bytes, encoding: str | None) -> bytes:
    if not encoding or encoding == "identity":
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    if encoding == "lz4":
        return bytes(lz4.frame.decompress(body))
    raise ValueError(f"unsupported Content-Encoding {encoding}")


def quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    path_: str = ""

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        if urlsplit(self.path).path in ("/ping", "/") and "query" not in self.path:
            self._send(200, b"Ok.\n")
            return
        self._handle(b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._read_chunked()
        self._handle(decompress(body, self.headers.get("Content-Encoding")))

    def _read_chunked(self) -> bytes:
        out = bytearray()
        while True:
            size = int(self.rfile.readline().strip().split(b";")[0], 16)
            if size == 0:
                self.rfile.readline()
                return bytes(out)
            out += self.rfile.read(size)
            self.rfile.readline()

    def _handle(self, body: bytes) -> None:
        params = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        query = params.get("query", "").encode()
        text = query + (b"\n" + body if query and body else body)
        binds = {k[len("param_") :]: v for k, v in params.items() if k.startswith("param_")}
        settings = {
            k: v for k, v in params.items() if k not in TRANSPORT and not k.startswith("param_")
        }
        try:
            result = self._run(text, params.get("database"), settings, binds)
        except Exception as exc:
            message = str(exc).encode()
            code = re.search(rb"Code: (\d+)", message)
            self._send(
                500,
                message,
                {"X-ClickHouse-Exception-Code": code.group(1).decode() if code else "1"},
            )
            return
        self._send(200, result, {"X-ClickHouse-Timezone": "UTC", "X-ClickHouse-Summary": "{}"})

    def _run(
        self, text: bytes, database: str | None, settings: dict[str, str], binds: dict[str, str]
    ) -> bytes:
        with _ENGINE_LOCK:
            conn = chdb.connect(self.path_)
            try:
                if database:
                    conn.query(f"USE `{database}`")
                for key, value in settings.items():
                    if re.fullmatch(r"[A-Za-z0-9_]+", key):
                        conn.query(f"SET {key} = {quote(value)}")
                match = _INSERT_FORMAT.match(text)
                if match:  # INSERT ... FORMAT X, then the data
                    data = text[match.end() :]
                    statement = text[: match.start(1)].decode().rstrip()
                    statement = re.sub(r"\s+FORMAT\s*$", "", statement, flags=re.I)
                    with tempfile.NamedTemporaryFile(suffix=".data", delete=False) as tmp:
                        tmp.write(data)
                    try:
                        fmt = match.group(1).decode()
                        conn.query(f"{statement} FROM INFILE {quote(tmp.name)} FORMAT {fmt}")
                    finally:
                        Path(tmp.name).unlink(missing_ok=True)
                    return b""
                result = conn.query(text.decode(), "TabSeparated", params=binds)
                return bytes(result.bytes() or b"")
            finally:
                conn.close()

    def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def main() -> None:
    path, port = sys.argv[1], int(sys.argv[2])
    Path(path).mkdir(parents=True, exist_ok=True)
    chdb.connect(path).query("SELECT 1")  # open the engine before saying ready
    Handler.path_ = path
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
