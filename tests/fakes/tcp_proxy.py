"""A TCP proxy on 127.0.0.1 that can be cut and restored: a real outage, without killing a server.

Put it in front of the Temporal dev server's gRPC port, or in front of PostgreSQL, and point
the client under test at :attr:`TcpProxy.address`. :meth:`TcpProxy.cut` stops listening and
resets every open connection, so the client sees exactly what it would see if the server went
away (``connection refused`` for new connections, ``connection reset`` for open ones);
:meth:`TcpProxy.restore` listens again on the same port. The server behind it keeps running, so
whatever else talks to it directly (the worker) carries on through the outage.

Usage::

    async with TcpProxy("127.0.0.1", 7233) as proxy:
        client = await Client.connect(proxy.address)
        await proxy.cut()
        ...                     # the client's calls fail as if the server were down
        await proxy.restore()
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from types import TracebackType

#: Bytes read per hop; gRPC frames and PostgreSQL messages pass through unchanged.
CHUNK = 65536


class TcpProxy:
    """Forward ``127.0.0.1:<port>`` to ``target_host:target_port`` until cut."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        #: Connections accepted so far (a client that reconnected after a restore shows here).
        self.accepted = 0

    @classmethod
    def to(cls, address: str) -> TcpProxy:
        """A proxy for ``host:port``."""
        host, _, port = address.rpartition(":")
        return cls(host or "127.0.0.1", int(port))

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``, what the client under test connects to."""
        return f"127.0.0.1:{self.port}"

    @property
    def is_cut(self) -> bool:
        return self._server is None

    async def start(self) -> None:
        """Listen (on an ephemeral port the first time, on the same port after a cut)."""
        if self._server is not None:
            return
        # The port must survive a cut: the client under test keeps the address it was given.
        # SO_REUSEADDR (asyncio's default) lets us rebind at once despite TIME_WAIT sockets.
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, family=socket.AF_INET
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def restore(self) -> None:
        """End an outage: listen again on the same port."""
        await self.start()

    async def cut(self) -> None:
        """Begin an outage: refuse new connections and reset the open ones."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            # abort(), not close(): an RST is what a dead server's peer sees, at once; a FIN
            # would let the client drain politely and hide the failure mode under test.
            writer.transport.abort()
        self._writers.clear()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        if server is not None:
            with contextlib.suppress(Exception):
                await server.wait_closed()

    async def close(self) -> None:
        await self.cut()

    async def __aenter__(self) -> TcpProxy:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._server is None:  # accepted in the instant before a cut
            writer.transport.abort()
            return
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        pipes = [
            asyncio.create_task(self._pipe(reader, up_writer)),
            asyncio.create_task(self._pipe(up_reader, writer)),
        ]
        self._pipes.update(pipes)
        try:
            await asyncio.gather(*pipes, return_exceptions=True)
        finally:
            self._pipes.difference_update(pipes)
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.transport.abort()

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(CHUNK):
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            # One side ended: end the other, so a half-open pair does not linger.
            dst.transport.abort()
