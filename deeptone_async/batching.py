"""Cross-stream batching in the engine: concurrent streams share inference calls.

A stream's inference stage hands each block to the engine's :class:`StreamBatcher` instead
of running it alone. The blocks of every stream that is ready at the same moment are
stacked into one :meth:`InferencePlan.run` per group (same models, same frame count) and
all groups run in *one* worker-thread hop, so an application holding 200 streams gets
what the server gets; the server's connections are ``process_stream`` calls and share
their calls through this same batcher.

No task of its own does this (nothing outlives the streams, nothing to start or stop):
the first stream to arrive *leads*. It lets the event loop run once, so the streams that
are ready join, takes every waiting block, runs them in a worker thread, hands each
stream its rows, and returns; if more blocks arrived meanwhile, the first of them leads
the next round.

The policy is the server's: *greedy with a minimum interval*. A round starts at once
when at least ``interval_s`` (10 ms) has passed since the previous round started, or when
every stream of the batcher is already waiting; otherwise the leader waits for whichever
comes first, and the round takes every block waiting by then. A lone stream, or a block
after a quiet spell, is never delayed; under load, rounds start at most every
``interval_s``, so their fixed costs (a thread hop, one ONNX call per model: 0.3-0.6 ms a
model for a call of one stream, ``benchmarks/bench_call_shapes.py``) are paid a bounded
number of times per second while the rounds grow with the load. The most a block waits for its
round, beyond the round in progress, is ``interval_s``.

Results: stacking changes how ONNX Runtime splits its work, which can move a probability
by about 1e-6 and so a 4-decimal value by one rounding step, as block length does (see
the README); labels are unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio
import numpy as np

from .audio import Float32
from .inference import FrameOutputs, InferencePlan, StreamState

__all__ = ["BatchRequest", "StreamBatcher", "run_groups"]


@dataclass(eq=False)
class BatchRequest:
    """One stream's block waiting for a shared call."""

    plan: InferencePlan
    samples: Float32  # (channels, n, 1024)
    states: Sequence[StreamState]
    done: anyio.Event = field(default_factory=anyio.Event)
    outputs: FrameOutputs | None = None
    error: BaseException | None = None

    def key(self) -> tuple[int, ...]:
        """Requests with equal keys can share a call: same runners, same frame count."""
        ids = [id(r) for r in self.plan.runners]
        return (*ids, id(self.plan.detector), int(self.samples.shape[1]))


def _run_group(group: list[BatchRequest]) -> None:
    """Stack the group's streams, run once, hand each request its rows (worker thread)."""
    plan = group[0].plan
    frames = np.concatenate([r.samples for r in group]) if len(group) > 1 else group[0].samples
    states = [st for r in group for st in r.states]
    try:
        out = plan.run(frames, states)
    except Exception as exc:  # every stream of the call sees the failure
        for r in group:
            r.error = exc
        return
    lo = 0
    for r in group:
        hi = lo + r.samples.shape[0]
        speech = None if out.speech is None else out.speech[lo:hi]
        r.outputs = FrameOutputs({k: v[lo:hi] for k, v in out.probs.items()}, speech)
        lo = hi


def group_requests(batch: Sequence[BatchRequest], max_batch: int) -> list[list[BatchRequest]]:
    """The calls for ``batch``: requests that can share a call, at most ``max_batch`` each."""
    groups: dict[tuple[int, ...], list[BatchRequest]] = {}
    for req in batch:
        groups.setdefault(req.key(), []).append(req)
    return [g[lo : lo + max_batch] for g in groups.values() for lo in range(0, len(g), max_batch)]


def run_groups(calls: list[list[BatchRequest]]) -> None:
    """Run every call (blocks: call it in a worker thread)."""
    for group in calls:
        _run_group(group)


class StreamBatcher:
    """Shares inference calls between the concurrent streams of one event loop.

    Args:
        limiter: the engine's limit on inference threads.
        max_batch: most stream blocks stacked in one call.
        interval_s: least time between the starts of two rounds, unless every stream is
            already waiting (0: purely greedy).

    Attributes:
        rounds: worker-thread hops made; calls: :meth:`InferencePlan.run` calls (a round
            runs one per group of requests that can share a call); blocks: stream blocks
            served; frames: stream-frames served (a block of 3 frames counts 3);
            largest: the most blocks one call stacked.
    """

    def __init__(self, limiter: anyio.CapacityLimiter, max_batch: int = 256, interval_s: float = 0.01) -> None:
        if interval_s < 0 or max_batch < 1:
            raise ValueError("interval_s must be >= 0 and max_batch >= 1")
        self._limiter = limiter
        self._max_batch = max_batch
        self._interval = interval_s
        self._waiting: list[BatchRequest] = []
        self._leading = False
        self._streams = 0  # streams between open_stream() and close_stream()
        self._all_waiting = anyio.Event()
        self._last_start = -math.inf
        self.rounds = 0
        self.calls = 0
        self.blocks = 0
        self.frames = 0
        self.largest = 0

    @property
    def pending(self) -> int:
        """Blocks waiting for a round."""
        return len(self._waiting)

    def stats(self) -> dict[str, float]:
        """The counters as a dict (the server's ``/health`` shows it), with the mean blocks per call."""
        return {
            "batches": self.rounds,
            "calls": self.calls,
            "blocks": self.blocks,
            "frames": self.frames,
            "largest": self.largest,
            "mean_batch": round(self.blocks / self.calls, 2) if self.calls else 0.0,
        }

    def open_stream(self) -> None:
        """Count one more stream that will submit blocks (see :meth:`close_stream`)."""
        self._streams += 1

    def close_stream(self) -> None:
        """The stream counted by :meth:`open_stream` submits no more blocks."""
        self._streams -= 1
        if self._waiting and len(self._waiting) >= self._streams:
            self._all_waiting.set()  # the rest are all waiting now: the round need not wait

    async def run(self, plan: InferencePlan, samples: Float32, states: Sequence[StreamState]) -> FrameOutputs:
        """Model outputs for one stream's block ``samples`` ``(channels, n, 1024)``.

        Waits (asynchronously) for the round that includes the block; the worker thread
        is not cancellable, so a round in progress always finishes and hands out its
        results. A cancelled wait withdraws a block that has not started.

        Raises:
            ModelError, Exception: whatever the inference call raised.
        """
        req = BatchRequest(plan, samples, states)
        self._waiting.append(req)
        if len(self._waiting) >= self._streams:
            self._all_waiting.set()  # nobody else can join this round: no point waiting
        try:
            while req.outputs is None and req.error is None:
                if not self._leading:
                    await self._lead()
                else:
                    await req.done.wait()
                    req.done = anyio.Event()  # woken to lead, or done: the loop tells which
        except BaseException:
            if req in self._waiting:
                self._waiting.remove(req)
            if self._waiting and not self._leading:  # it may have been woken to lead: pass it on
                self._waiting[0].done.set()
            raise
        if req.error is not None:
            raise req.error
        assert req.outputs is not None
        return req.outputs

    async def _lead(self) -> None:
        self._leading = True
        try:
            await anyio.lowlevel.cancel_shielded_checkpoint()  # one loop turn: ready streams join
            wait = self._last_start + self._interval - anyio.current_time()
            if wait > 0 and len(self._waiting) < self._streams:
                self._all_waiting = anyio.Event()
                with anyio.move_on_after(wait):  # the previous round started < interval ago
                    await self._all_waiting.wait()
            self._last_start = anyio.current_time()
            batch, self._waiting = self._waiting, []
            if not batch:
                return
            calls = group_requests(batch, self._max_batch)
            try:
                await anyio.to_thread.run_sync(run_groups, calls, limiter=self._limiter)
            finally:
                for req in batch:
                    if req.outputs is None and req.error is None:
                        req.error = RuntimeError("inference did not run for this block")
                    req.done.set()
            self.rounds += 1
            self.calls += len(calls)
            self.blocks += len(batch)
            self.frames += sum(int(r.samples.shape[1]) for r in batch)
            self.largest = max(self.largest, max(len(c) for c in calls))
        finally:
            self._leading = False
            if self._waiting:  # blocks that arrived during the round: the first one leads next
                self._waiting[0].done.set()
