"""The sink protocol, chaining and draining.

A sink receives each stream result with ``await sink.send(result)`` and is finished with
``await sink.aclose()``. Sinks compose: :func:`tee` passes results through several sinks
and on to the caller, :func:`drain` consumes a stream into several sinks. A sink that
raises stops the stream; the error reaches the caller as :class:`~deeptone_async.SinkError`
naming the sink, with the original exception as its cause, and every sink is still closed.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

import anyio

from ..errors import SinkError

__all__ = ["Result", "Sink", "SinkBase", "drain", "tee"]

Result = dict[str, Any]


@runtime_checkable
class Sink(Protocol):
    """Receives results; may apply backpressure by taking its time in ``send``."""

    async def send(self, result: Result) -> None: ...

    async def aclose(self) -> None: ...


class SinkBase:
    """Convenience base: async context manager support and a no-op ``aclose``."""

    async def send(self, result: Result) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    async def aclose(self) -> None:
        return None

    async def __aenter__(self) -> SinkBase:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


async def _send_all(sinks: tuple[Sink, ...], result: Result) -> None:
    for sink in sinks:
        try:
            await sink.send(result)
        except (SinkError, anyio.get_cancelled_exc_class()):
            raise
        except Exception as exc:
            raise SinkError(f"sink {type(sink).__name__} failed: {exc}") from exc


async def _close_all(sinks: tuple[Sink, ...]) -> None:
    first: BaseException | None = None
    with anyio.CancelScope(shield=True):
        for sink in sinks:
            try:
                await sink.aclose()
            except Exception as exc:  # close the rest, then report the first failure
                first = first or SinkError(f"sink {type(sink).__name__} failed to close: {exc}")
                first.__cause__ = first.__cause__ or exc
    if first is not None:
        raise first


async def tee(results: AsyncIterable[Result], *sinks: Sink) -> AsyncIterator[Result]:
    """Send each result to every sink, in order, then yield it on.

    The sinks are closed when the stream ends, fails, or the caller stops iterating.

    Raises:
        SinkError: a sink failed (the stream stops there).
    """
    try:
        async for result in results:
            await _send_all(sinks, result)
            yield result
    finally:
        await _close_all(sinks)


async def drain(results: AsyncIterable[Result], *sinks: Sink) -> int:
    """Consume ``results`` into every sink and close them; returns the number of results.

    Blocks (asynchronously) until the stream ends.

    Raises:
        SinkError: a sink failed; results before the failure were delivered to every sink.
    """
    count = 0
    async for _ in tee(results, *sinks):
        count += 1
    return count
