"""Raw PCM over TCP: as a client of a server that sends audio, or as a server accepting one.

The stream carries headerless PCM in the declared format (16-bit little-endian 16 kHz mono
by default) until the peer closes it. Reads happen only when the pipeline wants more audio,
so a fast sender is held back by TCP flow control (backpressure, not memory): what is read
ahead of the consumer is at most one ``read_size`` chunk plus the kernel's socket receive
buffer (on Linux at most ``net.ipv4.tcp_rmem``'s maximum, 6 MiB by default).

The accepted connection of server mode is read straight from its socket (wait until
readable, then one ``recv``) rather than through anyio's socket stream: on asyncio, an
anyio stream made by ``accept()`` keeps reading the socket into memory for as long as its
queue is never empty, so a client sending faster than the consumer reads grew the process
without bound (1 GB in a test).
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import anyio
import anyio.abc

from ..audio import AudioFormat
from ..errors import SourceError
from ..framer import Chunk

__all__ = ["TcpSource"]


class TcpSource:
    """Audio from a TCP connection.

    Args:
        host: address to connect to, or (``listen=True``) to bind.
        port: port to connect to or bind (0 picks a free port; see :attr:`port`).
        listen: accept one connection instead of connecting.
        fmt: the PCM format the peer sends.
        read_size: most bytes read per chunk.

    Raises (while iterating):
        SourceError: the connection cannot be made or breaks.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        listen: bool = False,
        fmt: AudioFormat | None = None,
        read_size: int = 8192,
    ) -> None:
        self.host = host
        self.port = port
        self._listen = listen
        self.format = fmt or AudioFormat()
        self._read = read_size
        self._listener: anyio.abc.SocketListener | None = None

    async def open(self) -> AudioFormat:
        """Resolve the format; in listen mode also bind, so :attr:`port` is known."""
        if self._listen and self._listener is None:
            try:
                multi = await anyio.create_tcp_listener(local_host=self.host, local_port=self.port)
            except OSError as exc:
                raise SourceError(f"cannot listen on {self.host}:{self.port}: {exc}") from exc
            first, *others = multi.listeners  # one per address family of `host`
            for other in others:
                await other.aclose()
            assert isinstance(first, anyio.abc.SocketListener)
            self._listener = first
            self.port = int(first.extra(anyio.abc.SocketAttribute.local_port))
        return self.format

    async def _connect(self) -> anyio.abc.SocketStream:
        try:
            return await anyio.connect_tcp(self.host, self.port)
        except OSError as exc:
            raise SourceError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc

    async def _accept(self) -> socket.socket:
        await self.open()
        assert self._listener is not None
        listener, self._listener = self._listener, None
        raw: socket.socket = listener.extra(anyio.abc.SocketAttribute.raw_socket)
        async with listener:
            while True:
                await anyio.wait_readable(raw)
                try:
                    conn, _ = raw.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as exc:
                    raise SourceError(f"cannot accept on {self.host}:{self.port}: {exc}") from exc
                conn.setblocking(False)
                return conn

    async def _receive(self, conn: socket.socket) -> bytes:
        while True:
            try:
                return conn.recv(self._read)
            except (BlockingIOError, InterruptedError):
                await anyio.wait_readable(conn)
            except OSError as exc:
                raise SourceError(f"connection on {self.host}:{self.port} broke: {exc}") from exc

    async def __aiter__(self) -> AsyncIterator[Chunk]:
        if self._listen:
            conn = await self._accept()
            try:
                while data := await self._receive(conn):
                    yield data
            finally:
                conn.close()
            return
        stream = await self._connect()
        async with stream:
            while True:
                try:
                    data = await stream.receive(self._read)
                except anyio.EndOfStream:
                    return
                except (anyio.BrokenResourceError, OSError) as exc:
                    raise SourceError(f"connection from {self.host}:{self.port} broke: {exc}") from exc
                yield data
