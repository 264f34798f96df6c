"""Running the app with uvicorn: in the foreground (the CLI) or in a task (tests, bots)."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import uvicorn

from ..engine import Deeptone
from ._app import StreamServer, create_app
from ._drain import Drain
from ._guard import guarded_h11
from ._settings import ServerSettings

__all__ = ["RunningServer", "open_connection_limit", "running_server", "serve", "uvicorn_config"]

#: Seconds a stopping server waits for open connections before cancelling them.
SHUTDOWN_TIMEOUT_S = 5
#: Most connections asyncio accepts in one turn of the event loop (uvicorn's ``backlog``).
#: Each holds a descriptor for about three turns before the connection guard can close it,
#: so a burst of connections takes at most about ``3 * ACCEPT_BURST`` descriptors more than
#: the guard's bounds allow (64 overran a 256-descriptor limit under 1,000 slowloris
#: clients: ``benchmarks/bench_abuse.py``).
ACCEPT_BURST = 32
#: The kernel's queue of connections not yet accepted (they hold no descriptor of the
#: server's), set once uvicorn has listened with ``ACCEPT_BURST``: a burst waits there
#: rather than having its SYNs dropped, which costs a 1 s retransmit to every client,
#: legitimate ones too.
LISTEN_QUEUE = 1024


def open_connection_limit(settings: ServerSettings) -> int:
    """``settings.max_open_connections``, or when ``None`` half the process's
    file-descriptor limit less 16 (at least 16; 4096 where the limit is unknown)."""
    if settings.max_open_connections is not None:
        return settings.max_open_connections
    try:
        import resource
    except ImportError:  # Windows
        return 4096
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return 4096
    return max(16, soft // 2 - 16)


def uvicorn_config(app: Any, *, host: str = "127.0.0.1", port: int = 8765, log_level: str = "warning") -> uvicorn.Config:
    """A uvicorn configuration suited to the streaming server.

    HTTP is uvicorn's h11 protocol under a connection guard (``_guard.py``): request
    headers must arrive within ``header_timeout_s`` (408 and close after), at most
    ``max_pending_handshakes`` connections may be waiting for theirs and at most
    :func:`open_connection_limit` may be open (the oldest pending one is closed to make
    room). uvicorn's ``limit_concurrency`` is not used: it closes no socket and does not
    cover WebSocket upgrades. uvicorn's ``backlog`` is :data:`ACCEPT_BURST`; :func:`serve`
    and :func:`running_server` then raise the kernel's queue to :data:`LISTEN_QUEUE`.

    WebSocket frames over ``2 * max_message_bytes`` are refused by uvicorn itself (close
    1009, no error message); smaller ones that still pass the limit get an error message
    from the app. Compression is off: PCM barely compresses and deflate costs CPU.
    """
    server = getattr(getattr(app, "state", None), "deeptone", None)
    settings = server.settings if isinstance(server, StreamServer) else ServerSettings()
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        ws="websockets-sansio",
        ws_max_size=2 * settings.max_message_bytes,
        ws_per_message_deflate=False,
        http=guarded_h11(settings.header_timeout_s, settings.max_pending_handshakes, open_connection_limit(settings)),
        backlog=ACCEPT_BURST,
        lifespan="on",
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=SHUTDOWN_TIMEOUT_S,
    )


class _Server(uvicorn.Server):
    """uvicorn's server, its listening sockets' queues raised to :data:`LISTEN_QUEUE` once
    it serves (``listen()`` on a listening socket only changes its queue: Linux, BSD).

    With a :class:`~deeptone_async.server._drain.Drain`, SIGTERM starts draining instead of
    stopping at once; the server stops when the drain is done (no stream open, or its
    timeout), closing what is left with 1012. A second SIGTERM, or SIGINT, stops it now.
    """

    def __init__(self, config: uvicorn.Config, drain: Drain | None = None) -> None:
        super().__init__(config)
        self.drain = drain

    def handle_exit(self, sig: int, frame: object) -> None:
        drain = self.drain
        if sig == signal.SIGTERM and drain is not None and not drain.draining and not self.should_exit:
            getattr(self, "_captured_signals", []).append(sig)  # re-raised after shutdown, as uvicorn does
            drain.start()
            return
        super().handle_exit(sig, frame)  # type: ignore[arg-type]

    async def on_tick(self, counter: int) -> bool:
        if self.drain is not None and self.drain.done():
            self.should_exit = True
        return await super().on_tick(counter)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        for server in getattr(self, "servers", ()):  # absent when startup failed
            for listener in server.sockets:
                with socket.socket(fileno=os.dup(listener.fileno())) as sock:  # the same socket
                    sock.listen(LISTEN_QUEUE)


def serve(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    log_level: str = "info",
    drain: Drain | None = None,
    sockets: list[socket.socket] | None = None,
) -> None:
    """Run ``app`` with uvicorn until SIGINT/SIGTERM. Blocks the calling thread.

    Args:
        drain: drain on SIGTERM (:mod:`._drain`) rather than stop at once.
        sockets: serve on these listening sockets (a supervisor's, shared by its worker
            processes) instead of binding ``host:port``.
    """
    _Server(uvicorn_config(app, host=host, port=port, log_level=log_level), drain).run(sockets=sockets)


@dataclass(frozen=True)
class RunningServer:
    """A server started by :func:`running_server`.

    Attributes:
        host: the bound address.
        port: the bound port (the one picked when 0 was asked for).
        app: the ASGI app being served.
    """

    host: str
    port: int
    app: Any

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """``ws://host:port/stream``."""
        return f"ws://{self.host}:{self.port}/stream"

    @property
    def deeptone(self) -> StreamServer | None:
        """The app's :class:`StreamServer` (for counters in tests)."""
        server = getattr(getattr(self.app, "state", None), "deeptone", None)
        return server if isinstance(server, StreamServer) else None


@asynccontextmanager
async def running_server(
    app: Any = None,
    *,
    engine: Deeptone | None = None,
    settings: ServerSettings | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    log_level: str = "warning",
) -> AsyncIterator[RunningServer]:
    """Serve an app with uvicorn in a task of the current event loop, for the block's duration.

    ``port=0`` binds a free port (see :attr:`RunningServer.port`). On exit the server
    shuts down gracefully: open WebSockets are closed with 1012, then the app's lifespan
    ends. Useful for tests and for bots that embed the server.

    Args:
        app: the ASGI app; ``create_app(engine, settings=settings)`` when ``None``.

    Raises:
        OSError: the address cannot be bound.
        TimeoutError: the server did not start within 30 s.
    """
    if app is None:
        app = create_app(engine, settings=settings)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(256)
        sock.setblocking(False)
        bound = int(sock.getsockname()[1])
        config = uvicorn_config(app, host=host, port=bound, log_level=log_level)
        server = _Server(config)
        stopped = anyio.Event()

        async def run() -> None:
            try:
                await server.serve([sock])
            finally:
                stopped.set()

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                with anyio.fail_after(30):
                    while not server.started and not stopped.is_set():
                        await anyio.sleep(0.005)
                try:
                    yield RunningServer(host, bound, app)
                finally:
                    server.should_exit = True  # graceful: close streams (1012), end the lifespan
                    with anyio.CancelScope(shield=True), anyio.move_on_after(SHUTDOWN_TIMEOUT_S + 5):
                        await stopped.wait()
        except BaseException as exc:  # the body's own exception, not a one-item group of it
            inner = _only_exception(exc)
            if inner is exc:
                raise
            raise inner from inner.__cause__
    finally:
        sock.close()


def _only_exception(exc: BaseException) -> BaseException:
    """The single exception inside (nested) one-item exception groups, else ``exc``."""
    while type(exc).__name__.endswith("ExceptionGroup"):
        inner: tuple[BaseException, ...] = tuple(getattr(exc, "exceptions", ()))
        if len(inner) != 1:
            break
        exc = inner[0]
    return exc
