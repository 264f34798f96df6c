"""Cross-stream batching: one inference call for the waiting frames of many streams.

A live 16 kHz stream delivers one 64 ms frame at a time. Run alone, each frame costs a
thread hop and an ONNX call with batch 1; the bundled Vad then takes about 85 us of CPU a
frame on this project's CPU, against about 20 us a frame when 16 or more streams share a
call (see ``benchmarks/RESULTS.md``). :class:`BatchScheduler` collects the frame blocks that
streams submit, groups those that can share a call (same models, same frame count) and
runs each group as one :meth:`InferencePlan.run` over the stacked streams, in a worker
thread.

The policy is *greedy with a minimum interval*: a batch starts as soon as a worker is
free and at least ``interval_s`` has passed since the previous batch started (or at once
when every stream is already waiting), and takes every block waiting by then. A block
that arrives after a quiet spell runs at once (a lone stream gets no delay, and a single
stream sent faster than real time is not throttled); under load, batches start every
``interval_s`` at most, so the per-batch costs (a thread hop, Python bookkeeping) are paid
a bounded number of times per second while the batches grow with the load.
``interval_s=0`` is purely greedy.

Per-stream state (recurrent state, feature history) stays with the stream; the
scheduler only borrows it for the call. A stream never has more than one block in the
scheduler, so its state is never used by two calls at once.
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, AsyncIterable, Sequence
from dataclasses import dataclass
from types import TracebackType

import anyio
import anyio.abc

from ..audio import Float32
from ..batching import BatchRequest, group_requests, run_groups
from ..framer import FrameBlock
from ..inference import FrameOutputs, InferencePlan, StreamState

__all__ = ["BatchScheduler", "BatchStats"]


@dataclass
class BatchStats:
    """Counters of a scheduler.

    Attributes:
        batches: inference rounds run (one thread hop each).
        calls: :meth:`InferencePlan.run` calls (a round runs one per group).
        blocks: stream blocks served.
        frames: stream-frames served (a block of 3 frames of one stream counts 3).
        largest: the most blocks one call stacked.
    """

    batches: int = 0
    calls: int = 0
    blocks: int = 0
    frames: int = 0
    largest: int = 0

    @property
    def mean_batch(self) -> float:
        """Mean blocks per call."""
        return self.blocks / self.calls if self.calls else 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "batches": self.batches,
            "calls": self.calls,
            "blocks": self.blocks,
            "frames": self.frames,
            "largest": self.largest,
            "mean_batch": round(self.mean_batch, 2),
        }


class BatchScheduler:
    """Runs the frame blocks of concurrent streams in shared inference calls.

    Use it as an async context manager (it owns its worker tasks), then pass
    :meth:`infer` as a stream's inference stage::

        async with BatchScheduler() as scheduler:
            pairs = scheduler.infer(gate(frames(chunks)), plan, states)

    Args:
        interval_s: least time between the starts of two batches (0: none); the most a
            block waits for its batch beyond the batch in progress.
        max_batch: most blocks stacked in one call; a bigger group is split.
        workers: batches that may run at once, each in its own worker thread.

    Attributes:
        stats: :class:`BatchStats` counters.
    """

    def __init__(self, *, interval_s: float = 0.0, max_batch: int = 256, workers: int = 1) -> None:
        if interval_s < 0 or max_batch < 1 or workers < 1:
            raise ValueError("interval_s must be >= 0, max_batch and workers >= 1")
        self._interval = interval_s
        self._max_batch = max_batch
        self._workers = workers
        self._limiter = anyio.CapacityLimiter(workers)
        self._pending: list[BatchRequest] = []
        self._wake = anyio.Event()
        self._all_waiting = anyio.Event()
        self._streams = 0  # streams inside infer()
        self._tg: anyio.abc.TaskGroup | None = None
        self.stats = BatchStats()

    @property
    def running(self) -> bool:
        """Whether the scheduler is started (inside its ``async with``)."""
        return self._tg is not None

    @property
    def pending(self) -> int:
        """Blocks waiting for a batch."""
        return len(self._pending)

    async def __aenter__(self) -> BatchScheduler:
        tg = anyio.create_task_group()
        await tg.__aenter__()
        try:
            await tg.start(self._dispatch)
        except BaseException as exc:
            await tg.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        self._tg = tg
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        tg, self._tg = self._tg, None
        assert tg is not None
        tg.cancel_scope.cancel()
        try:
            return await tg.__aexit__(exc_type, exc, tb)
        finally:
            pending, self._pending = self._pending, []
            for req in pending:  # streams still waiting fail instead of hanging
                req.error = RuntimeError("the batch scheduler stopped")
                req.done.set()

    async def run(self, plan: InferencePlan, samples: Float32, states: Sequence[StreamState]) -> FrameOutputs:
        """Model outputs for one stream's block ``samples`` ``(channels, n, 1024)``.

        Waits (asynchronously) for the batch that includes the block. Cancelling the
        wait withdraws a block that has not started; one already running finishes in its
        thread and its result is discarded.

        Raises:
            RuntimeError: the scheduler is not running.
            ModelError, Exception: whatever the inference call raised.
        """
        if self._tg is None:
            raise RuntimeError("the BatchScheduler is not running (use it with `async with`)")
        req = BatchRequest(plan, samples, states)
        self._pending.append(req)
        self._wake.set()
        if len(self._pending) >= self._streams:
            self._all_waiting.set()  # nobody else can join this batch: no point waiting
        try:
            await req.done.wait()
        except BaseException:
            if req in self._pending:
                self._pending.remove(req)
            raise
        if req.error is not None:
            raise req.error
        assert req.outputs is not None
        return req.outputs

    async def infer(
        self, blocks: AsyncIterable[FrameBlock], plan: InferencePlan, states: Sequence[StreamState]
    ) -> AsyncGenerator[tuple[FrameBlock, FrameOutputs], None]:
        """The batched counterpart of :func:`deeptone_async.inference.infer` (same contract).

        Applies backpressure: the next block is not pulled until this one's outputs are
        consumed.
        """
        self._streams += 1
        try:
            async for block in blocks:
                outputs = await self.run(plan, block.samples, states)
                yield block, outputs
        finally:
            self._streams -= 1

    async def _dispatch(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        slots = anyio.Semaphore(self._workers)
        last_start = -math.inf
        async with anyio.create_task_group() as tg:
            task_status.started()
            while True:
                await self._wake.wait()
                await slots.acquire()
                wait = last_start + self._interval - anyio.current_time()
                self._all_waiting = anyio.Event()
                if wait > 0 and len(self._pending) < self._streams:
                    with anyio.move_on_after(wait):
                        await self._all_waiting.wait()
                last_start = anyio.current_time()
                batch, self._pending = self._pending, []
                self._wake = anyio.Event()
                if not batch:  # every waiting stream went away meanwhile
                    slots.release()
                    continue
                tg.start_soon(self._run_batch, batch, slots)

    async def _run_batch(self, batch: list[BatchRequest], slots: anyio.Semaphore) -> None:
        calls = group_requests(batch, self._max_batch)
        try:
            await anyio.to_thread.run_sync(run_groups, calls, limiter=self._limiter)
        finally:
            slots.release()
            for req in batch:
                if req.outputs is None and req.error is None:
                    req.error = RuntimeError("the batch scheduler stopped before running this block")
                req.done.set()
        st = self.stats
        st.batches += 1
        st.calls += len(calls)
        st.blocks += len(batch)
        st.frames += sum(int(r.samples.shape[1]) for r in batch)
        st.largest = max(st.largest, max(len(c) for c in calls))

