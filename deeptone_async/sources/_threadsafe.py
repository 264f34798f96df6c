"""Schedule a call on the running event loop from a foreign thread, without blocking it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


def loop_caller() -> Callable[..., None]:
    """Return ``call(fn, *args)`` that runs ``fn(*args)`` soon on the current event loop.

    Safe to use from any thread (e.g. an audio callback); never blocks. Calls made after
    the loop has closed are dropped. Works under asyncio and trio.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not asyncio: anyio's other backend is trio
        return _trio_caller()

    def call_asyncio(fn: Callable[..., Any], *args: Any) -> None:
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop closed
            pass

    return call_asyncio


def _trio_caller() -> Callable[..., None]:
    import trio

    token = trio.lowlevel.current_trio_token()

    def call_trio(fn: Callable[..., Any], *args: Any) -> None:
        try:
            token.run_sync_soon(fn, *args)
        except trio.RunFinishedError:
            pass

    return call_trio
