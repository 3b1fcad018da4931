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

    ready_mark = READY_MARK

    def __init__(self, exe: str, timeout: float, port: int | None = None) -> None:
        self.directory = tempfile.mkdtemp(prefix="caseline-redis-")
        self.port = port or free_port()
        self.output: list[str] = []
        self.process = subprocess.Popen(
            self._command(exe), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            errors="replace",
        )
        self._ready = threading.Event()
        # The drain thread detects readiness and keeps the pipe from filling up later.
        self._drain = threading.Thread(target=self._read_output, name=f"redis-{self.port}", daemon=True)
        self._drain.start()
        if not self._ready.wait(timeout) or self.process.poll() is not None:
            self.stop()
            tail = " | ".join(self.output[-3:]) or "no output"
            raise RedisUnavailable(f"redis-server did not start on port {self.port}: {tail}")

    def _command(self, exe: str) -> list[str]:
        return [exe, "--port", str(self.port), "--bind", self.host, "--dir", self.directory,
                "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "notice"]

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
            if self.ready_mark in line:
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


class SentinelServer(RedisServer):
    """A Redis Sentinel (`redis-server --sentinel`) watching one master, as `name`.

    Quick to decide (down after 1 s): tests fail a master over in seconds. Ready once it
    logs that it monitors the master.
    """

    ready_mark = "+monitor master"
    watch: tuple[str, int, str] = ("127.0.0.1", 0, "caseline")

    def _command(self, exe: str) -> list[str]:
        host, master_port, name = self.watch
        conf = f"{self.directory}/sentinel.conf"  # Sentinel rewrites its own config file
        with open(conf, "w") as f:
            f.write(f"port {self.port}\nbind {self.host}\ndir {self.directory}\n"
                    f"sentinel monitor {name} {host} {master_port} 1\n"
                    f"sentinel down-after-milliseconds {name} 1000\n"
                    f"sentinel failover-timeout {name} 5000\n")
        return [exe, conf, "--sentinel", "--loglevel", "notice"]

    @classmethod
    def watching(cls, master: RedisServer, name: str = "caseline", timeout: float = 10.0) -> SentinelServer:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RedisUnavailable("redis-server is not installed")
        server = cls.__new__(cls)
        server.watch = (master.host, master.port, name)
        cls.__init__(server, exe, timeout)
        return server
