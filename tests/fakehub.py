"""A local fake Hugging Face hub on loopback, for download tests.

Two real HTTP/1.1 servers on 127.0.0.1, as huggingface_hub 2.x sees the real hub:

- the hub answers `HEAD|GET /{owner}/{name}/resolve/{revision}/{filename}` with
  `X-Repo-Commit`; an LFS file answers `302` to the CDN with `X-Linked-Etag` (its SHA-256,
  quoted) and `X-Linked-Size`; a plain git file answers `200` with its git blob SHA-1 as
  `ETag`. Unknown repos, revisions and files answer `404` with the `X-Error-Code` header
  (`RepoNotFound`, `RevisionNotFound`, `EntryNotFound`) that huggingface_hub maps to errors.
- the CDN, on another port (another origin, so huggingface_hub does not follow the
  redirect during its HEAD), serves `/blobs/{sha256}` with `Range` support.

Every request is recorded in `hub.requests`. Failure modes a test switches on: drop the
connection after N body bytes, serve corrupted bytes, serve slowly (for cancel tests),
ignore Range headers.
"""

from __future__ import annotations

import hashlib
import random
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import pytest

_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
_BLOB = re.compile(r"^/blobs/(?P<sha>[0-9a-f]{64})$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


@dataclass
class HubFile:
    data: bytes
    lfs: bool = True

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def etag(self) -> str:
        if self.lfs:
            return self.sha256
        return hashlib.sha1(b"blob %d\0" % len(self.data) + self.data).hexdigest()


@dataclass(frozen=True)
class Seen:
    """One request as the fake hub received it."""

    server: str  # "hub" or "cdn"
    method: str
    path: str
    range: str | None


def fake_gguf_bytes(size: int, seed: int = 0) -> bytes:
    """`size` bytes that start like a GGUF v3 file (magic, version), then random bytes."""
    header = b"GGUF" + struct.pack("<I", 3)
    return header + random.Random(seed).randbytes(max(0, size - len(header)))


class FakeHub:
    CHUNK = 16 * 1024

    def __init__(self) -> None:
        self.files: dict[tuple[str, str], HubFile] = {}
        self.commit = hashlib.sha1(b"fake-hub-commit").hexdigest()
        self.requests: list[Seen] = []
        self.body_bytes_sent = 0
        self.chunk_delay_s = 0.0
        self.ignore_ranges = False  # answer 200 with the whole file, as some proxies do
        self._drops: list[int] = []
        self._corrupt: set[str] = set()
        self._lock = threading.Lock()
        self._hub = self._server("hub")
        self._cdn = self._server("cdn")
        self._threads = [
            threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            for s in (self._hub, self._cdn)
        ]
        for thread in self._threads:
            thread.start()

    # -- what tests use ------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._hub.server_address[1]}"

    @property
    def cdn_url(self) -> str:
        return f"http://127.0.0.1:{self._cdn.server_address[1]}"

    def add(self, repo_id: str, filename: str, data: bytes, *, lfs: bool = True) -> HubFile:
        file = HubFile(data, lfs)
        self.files[(repo_id, filename)] = file
        return file

    def drop_connection_after(self, n_bytes: int, times: int = 1) -> None:
        """The next `times` GET bodies stop after `n_bytes` and the socket is closed."""
        with self._lock:
            self._drops.extend([n_bytes] * times)

    def corrupt(self, filename: str) -> None:
        """Serve `filename` with one byte flipped (headers still name the true checksum)."""
        self._corrupt.add(filename)

    def gets(self) -> list[Seen]:
        return [r for r in self.requests if r.method == "GET"]

    def close(self) -> None:
        for server in (self._hub, self._cdn):
            server.shutdown()
            server.server_close()

    # -- serving -------------------------------------------------------------------------

    def _server(self, role: str) -> ThreadingHTTPServer:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_HEAD(self) -> None:
                hub._handle(self, role)

            def do_GET(self) -> None:
                hub._handle(self, role)

            def log_message(self, *args) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address) -> None:
                pass  # a client that hung up (cancel, test end) is not an error here

        return Server(("127.0.0.1", 0), Handler)

    def _handle(self, req: BaseHTTPRequestHandler, role: str) -> None:
        path = unquote(urlsplit(req.path).path)
        with self._lock:
            self.requests.append(Seen(role, req.command, path, req.headers.get("Range")))
        if role == "cdn":
            match = _BLOB.match(path)
            file = next((f for f in self.files.values() if match and f.sha256 == match["sha"]), None)
            if file is None:
                return self._error(req, 404, None)
            name = next(n for (_, n), f in self.files.items() if f is file)
            return self._serve_bytes(req, file, name)
        match = _RESOLVE.match(path)
        if not match:
            return self._error(req, 404, None)
        repo, rev, name = match["repo"], match["rev"], match["file"]
        if not any(r == repo for r, _ in self.files):
            return self._error(req, 404, "RepoNotFound", "Repository not found")
        if rev not in ("main", self.commit):
            return self._error(req, 404, "RevisionNotFound", "Invalid rev id")
        file = self.files.get((repo, name))
        if file is None:
            return self._error(req, 404, "EntryNotFound", "Entry not found", commit=True)
        if not file.lfs:
            return self._serve_bytes(req, file, name, {"X-Repo-Commit": self.commit})
        req.send_response(302)
        req.send_header("Location", f"{self.cdn_url}/blobs/{file.sha256}")
        req.send_header("X-Repo-Commit", self.commit)
        req.send_header("X-Linked-Etag", f'"{file.sha256}"')
        req.send_header("X-Linked-Size", str(len(file.data)))
        req.send_header("ETag", f'W/"{hashlib.sha1(file.sha256.encode()).hexdigest()}"')
        req.send_header("Accept-Ranges", "bytes")
        req.send_header("Content-Length", "0")
        req.end_headers()

    def _error(self, req, status: int, code: str | None, message: str = "Not found", *, commit=False) -> None:
        body = message.encode()
        req.send_response(status)
        if code:
            req.send_header("X-Error-Code", code)
            req.send_header("X-Error-Message", message)
        if commit:
            req.send_header("X-Repo-Commit", self.commit)
        req.send_header("Content-Type", "text/plain")
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        if req.command != "HEAD":
            req.wfile.write(body)

    def _serve_bytes(self, req, file: HubFile, name: str, extra: dict[str, str] | None = None) -> None:
        data = file.data
        if name in self._corrupt:
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
        start, end, status = 0, len(data) - 1, 200
        header = None if self.ignore_ranges else req.headers.get("Range")
        if header and (m := _RANGE.match(header.strip())):
            start = int(m[1])
            end = min(int(m[2]), len(data) - 1) if m[2] else len(data) - 1
            if start >= len(data):
                req.send_response(416)
                req.send_header("Content-Range", f"bytes */{len(data)}")
                req.send_header("Content-Length", "0")
                req.end_headers()
                return
            status = 206
        body = data[start : end + 1]
        req.send_response(status)
        req.send_header("Content-Type", "application/octet-stream")
        req.send_header("Content-Length", str(len(body)))
        req.send_header("Accept-Ranges", "bytes")
        req.send_header("ETag", f'"{file.etag}"')
        if status == 206:
            req.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        for key, value in (extra or {}).items():
            req.send_header(key, value)
        req.end_headers()
        if req.command == "HEAD":
            return
        with self._lock:
            drop_after = self._drops.pop(0) if self._drops else None
        sent = 0
        while sent < len(body):
            chunk = body[sent : sent + self.CHUNK]
            if drop_after is not None and sent + len(chunk) >= drop_after:
                chunk = chunk[: drop_after - sent]
            try:
                req.wfile.write(chunk)
                req.wfile.flush()
            except OSError:
                return  # the client went away (cancelled)
            sent += len(chunk)
            with self._lock:
                self.body_bytes_sent += len(chunk)
            if drop_after is not None and sent >= drop_after:
                req.connection.shutdown(socket.SHUT_RDWR)  # cut mid-body, as a dropped network would
                req.close_connection = True
                return
            if self.chunk_delay_s:
                time.sleep(self.chunk_delay_s)


@pytest.fixture
def fake_hub():
    """A running FakeHub; point huggingface_hub at it with HF_ENDPOINT=fake_hub.url."""
    hub = FakeHub()
    yield hub
    hub.close()
