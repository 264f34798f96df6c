"""Slow clients and connection floods: a request-header deadline and bounds on open sockets.

uvicorn (0.54) closes a keep-alive connection that stays idle after a response
(``timeout_keep_alive``), but nothing bounds how long a client may take to send a request's
headers: a client that opens a connection and sends a header byte every few seconds (the
*slowloris* pattern) holds its socket for ever, and a few hundred such clients use up the
server's file descriptors, after which it accepts nothing, ``/health`` included. Its
``limit_concurrency`` does not help: it answers 503 to a request that *completed* its
headers (never to a WebSocket upgrade), and accepted sockets still hold descriptors.

:func:`guarded_h11` returns uvicorn's h11 protocol with three additions, kept by one
:class:`ConnectionGuard` per server:

- a connection is *pending* while the request it is sending has incomplete headers (from
  the moment it is accepted, and again from the first byte of each later keep-alive
  request); one pending for ``header_timeout_s`` is answered 408 and closed;
- at most ``max_pending`` connections are pending: when one more arrives, the oldest
  pending one is closed, preferring those that sent part of their headers (an attacker's
  many slow connections cannot crowd out quick ones);
- at most ``max_open`` connections are open (HTTP and WebSocket): when one more arrives, a
  pending one is closed the same way to make room, the new one itself when none other is.

A connection that finished its headers (a request being served, a WebSocket upgrade) is
left to the app's limits (``max_connections``, the streams' idle and length timeouts,
``max_upload_bytes``; a slowly sent request *body* has no deadline) and to ``max_open``.
The server always speaks HTTP through h11 (uvicorn's ``auto`` would take httptools when
installed; it has no header deadline either).
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["ConnectionGuard", "GuardedH11Protocol", "guarded_h11"]

_TIMEOUT_RESPONSE = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class ConnectionGuard:
    """The pending connections of one server, oldest first, each with its deadline.

    Pending connections are kept in two queues: *silent* ones (nothing read yet: just
    accepted, or idle) and *partial* ones (some of the headers read, not all). A bound
    closes the oldest partial connection first: a client that sends its request in one
    piece never becomes partial, so a flood of slow clients evicts its own members, not a
    quick client that was accepted a moment ago and has not been read yet.

    Args:
        header_timeout_s: most seconds a request's headers may take.
        max_pending: most connections with incomplete request headers.
        max_open: most open connections (HTTP and WebSocket).

    Attributes:
        timed_out: connections closed because their headers took too long.
        evicted: connections closed to keep within ``max_pending`` or ``max_open``.
    """

    def __init__(self, header_timeout_s: float, max_pending: int, max_open: int) -> None:
        self.header_timeout_s = header_timeout_s
        self.max_pending = max_pending
        self.max_open = max_open
        self.timed_out = 0
        self.evicted = 0
        # insertion order is age: oldest first
        self._silent: dict[GuardedH11Protocol, asyncio.TimerHandle] = {}
        self._partial: dict[GuardedH11Protocol, asyncio.TimerHandle] = {}
        self._closing: set[GuardedH11Protocol] = set()  # closed by the guard, not yet lost

    @property
    def pending(self) -> int:
        """Connections whose request headers are incomplete."""
        return len(self._silent) + len(self._partial)

    def admit(self, conn: GuardedH11Protocol) -> None:
        """A new connection: pending from now; close the oldest pending ones over a bound."""
        self._silent[conn] = conn.loop.call_later(self.header_timeout_s, self._expire, conn)
        while self.pending and (
            self.pending > self.max_pending or len(conn.connections) - len(self._closing) > self.max_open
        ):
            self._close(next(iter(self._partial or self._silent)))
            self.evicted += 1

    def progress(self, conn: GuardedH11Protocol) -> None:
        """Data arrived: pending while the headers of the request being sent are incomplete."""
        if conn.conn.their_state is not h11.IDLE or conn.transport.is_closing():
            self._settled(conn)
        elif conn in self._silent:
            self._partial[conn] = self._silent.pop(conn)
        elif conn not in self._partial:  # the first bytes of a kept-alive connection's next request
            self._partial[conn] = conn.loop.call_later(self.header_timeout_s, self._expire, conn)

    def forget(self, conn: GuardedH11Protocol) -> None:
        """The connection is lost."""
        self._settled(conn)
        self._closing.discard(conn)

    def _settled(self, conn: GuardedH11Protocol) -> None:
        timer = self._silent.pop(conn, None) or self._partial.pop(conn, None)
        if timer is not None:
            timer.cancel()

    def _expire(self, conn: GuardedH11Protocol) -> None:
        if conn in self._silent or conn in self._partial:
            conn.transport.write(_TIMEOUT_RESPONSE)
            self._close(conn)
            self.timed_out += 1

    def _close(self, conn: GuardedH11Protocol) -> None:
        self._settled(conn)
        self._closing.add(conn)
        conn.transport.close()


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol under a :class:`ConnectionGuard` (see :func:`guarded_h11`)."""

    guard: ClassVar[ConnectionGuard]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.guard.admit(self)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self.guard.progress(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.forget(self)
        super().connection_lost(exc)


def guarded_h11(header_timeout_s: float, max_pending: int, max_open: int) -> type[GuardedH11Protocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` with a new guard of these bounds.

    Each server needs its own class (the guard counts that server's connections).
    """

    class Guarded(GuardedH11Protocol):
        guard = ConnectionGuard(header_timeout_s, max_pending, max_open)

    return Guarded
