"""``deeptone-async serve --workers N``: N server processes on one listening socket.

The supervisor binds the socket and spawns the workers (``multiprocessing``'s spawn
context: no fork of a threaded parent); each builds its own engine and app and runs
uvicorn on the shared socket, as uvicorn's and gunicorn's own workers do: the kernel hands
each new connection to a worker that is accepting, and a busy one accepts less. Nothing is
shared between workers but the socket (and prometheus-client's multiprocess folder for
``/metrics``); a stream lives in one worker from start to end.

Signals: SIGTERM (or SIGINT) to the supervisor is passed to every worker as SIGTERM, which
drains it (``_drain.py``); a terminal's Ctrl-C, which reaches every process of the group,
stops each worker at once. A worker that dies
while the server runs is replaced. The supervisor returns when every worker has ended.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from multiprocessing.connection import wait
from types import FrameType
from typing import Any

__all__ = ["supervise"]

log = logging.getLogger("deeptone_async.server")


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    from ._runner import LISTEN_QUEUE

    sock.listen(LISTEN_QUEUE)
    sock.set_inheritable(True)
    return sock


def _worker(args: argparse.Namespace, sock: socket.socket) -> None:
    """A worker process: its own engine and app, serving on ``sock`` until stopped."""
    from .cli import configure_logging, serve_process

    configure_logging(args)
    raise SystemExit(serve_process(args, sockets=[sock]))


def supervise(args: argparse.Namespace, workers: int) -> int:
    """Run ``workers`` server processes on ``args.host:args.port``; blocks until they end.

    Returns:
        0 when stopped by a signal; 1 when the workers kept failing to start.

    Raises:
        OSError: the address cannot be bound.
    """
    sock = _bind(args.host, args.port)
    own_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        own_dir = tempfile.mkdtemp(prefix="deeptone-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_dir  # inherited by the spawned workers
    ctx = multiprocessing.get_context("spawn")
    plain = argparse.Namespace(**{k: v for k, v in vars(args).items() if k != "command_parser"})  # picklable
    stopping: list[int] = []
    procs: list[Any] = []

    def start() -> Any:
        p = ctx.Process(target=_worker, args=(plain, sock), name="deeptone-serve-worker")
        p.start()
        return p

    def forward(signum: int, frame: FrameType | None) -> None:
        # SIGTERM either way: a Ctrl-C in a terminal reaches the workers itself (they stop at
        # once, and a SIGTERM after it changes nothing); a SIGINT sent to the supervisor
        # alone makes them drain. Forwarding SIGINT would make a terminal's Ctrl-C a second
        # SIGINT, which uvicorn takes as "stop without waiting".
        stopping.append(signum)
        for p in procs:
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    failures = 0
    try:
        procs += [start() for _ in range(workers)]
        while any(p.is_alive() for p in procs):
            wait([p.sentinel for p in procs if p.is_alive()], timeout=0.5)
            if stopping:
                continue
            for i, p in enumerate(procs):
                if not p.is_alive() and p.exitcode is not None:
                    log.warning("worker %s ended (exit status %s): starting another", p.pid, p.exitcode)
                    _mark_dead(p.pid)
                    failures += 1
                    if failures > 3 * workers:
                        log.error("workers keep failing: stopping")
                        forward(signal.SIGTERM, None)
                        return 1
                    time.sleep(min(5.0, 0.1 * failures))
                    procs[i] = start()
        return 0
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for p in procs:
            p.join()
        sock.close()
        if own_dir is not None:
            shutil.rmtree(own_dir, ignore_errors=True)
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)


def _mark_dead(pid: int | None) -> None:
    """Drop a dead worker's live gauges (active streams) from the metrics."""
    try:
        from prometheus_client import multiprocess
    except ImportError:
        return
    if pid is not None:
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
