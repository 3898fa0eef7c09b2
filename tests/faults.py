"""Faults a test (or bench/chaos.py) can inject: an endpoint that goes away and comes back.

:class:`TcpRelay` sits between damfleet and a server (moto's S3, an HTTP target) on a
loopback port of its own. ``outage()`` closes its listening socket and resets every open
connection, so clients see exactly what a dead store gives them (connection refused,
connection reset); ``restore()`` listens again on the same port. The server behind it
keeps running with its state: stopping moto itself (SIGSTOP or a restart) loses its
buckets or hangs requests instead of refusing them.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator

__all__ = ["TcpRelay"]


class TcpRelay:
    """A TCP relay on 127.0.0.1 that can refuse connections for a while."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.refused_connections = 0
        self.outages: list[tuple[float, float]] = []  # (started, seconds) per outage
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-relay", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._down_since: float | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TcpRelay:
        self._thread.start()
        self._call(self._listen())
        return self

    def close(self) -> None:
        self._call(self._shut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    @property
    def refusing(self) -> bool:
        """True from :meth:`outage` until :meth:`restore`."""
        return self._down_since is not None

    def outage(self) -> None:
        """Refuse new connections and reset the open ones until :meth:`restore`."""
        self._down_since = time.monotonic()
        self._call(self._shut())

    def restore(self) -> None:
        self._call(self._listen())
        if self._down_since is not None:
            self.outages.append((self._down_since, time.monotonic() - self._down_since))
            self._down_since = None

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        self.outage()
        try:
            yield
        finally:
            self.restore()

    def _call(self, coro: object) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)  # type: ignore[arg-type]

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port, reuse_address=True)

    async def _shut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._open):
            transport = writer.transport
            with contextlib.suppress(Exception):
                sock = transport.get_extra_info("socket")
                if sock is not None:  # RST, not FIN: a store that died, not one that hung up politely
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            transport.abort()
        self._open.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._open.update((writer, up_writer))

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self._open.discard(writer)
        self._open.discard(up_writer)
