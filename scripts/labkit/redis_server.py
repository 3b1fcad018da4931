"""A throw-away `redis-server` for tests: free port, temp dir, no persistence.

    server = RedisServer.start()   # raises RedisUnavailable if it cannot
    ... server.url ...
    server.stop()

Readiness is detected from the server's own log line (no sleeping and polling).
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
from types import TracebackType

READY_MARK = "Ready to accept connections"


class RedisUnavailable(RuntimeError):
    """redis-server is missing or did not start."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    host = "127.0.0.1"

    def __init__(self, exe: str, timeout: float, port: int | None = None) -> None:
        self.directory = tempfile.mkdtemp(prefix="caseline-redis-")
        self.port = port or free_port()
        self.output: list[str] = []
        self.process = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", self.host, "--dir", self.directory,
             "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "notice"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
        )
        self._ready = threading.Event()
        # The drain thread detects readiness and keeps the pipe from filling up later.
        self._drain = threading.Thread(target=self._read_output, name=f"redis-{self.port}", daemon=True)
        self._drain.start()
        if not self._ready.wait(timeout) or self.process.poll() is not None:
            self.stop()
            tail = " | ".join(self.output[-3:]) or "no output"
            raise RedisUnavailable(f"redis-server did not start on port {self.port}: {tail}")

    @classmethod
    def start(cls, timeout: float = 10.0, attempts: int = 3, port: int | None = None) -> RedisServer:
        """A running server; retries on a new port if the chosen one was taken meanwhile.

        With `port` (a restart after an outage), only that port is tried."""
        exe = shutil.which("redis-server")
        if exe is None:
            raise RedisUnavailable("redis-server is not installed")
        error: RedisUnavailable | None = None
        for _ in range(attempts):
            try:
                return cls(exe, timeout, port)
            except RedisUnavailable as e:
                error = e
        assert error is not None
        raise error

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def _read_output(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line.rstrip())
            if READY_MARK in line:
                self._ready.set()
        self._ready.set()  # EOF: the server exited

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._drain.join(timeout=5)
        if self.process.stdout:
            self.process.stdout.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()
