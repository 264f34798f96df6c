"""What a batch run asks of every file: :meth:`Deeptone.process_file`'s options, picklable."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ParameterError

__all__ = ["FORMATS", "BatchOptions"]

#: Output formats: a Parquet dataset (a folder of tables) or one JSONL file.
FORMATS = ("parquet", "jsonl")


@dataclass(frozen=True)
class BatchOptions:
    """The :meth:`~deeptone_async.Deeptone.process_file` options applied to every file.

    Attributes mirror ``process_file``'s arguments. ``models=None`` runs every bundled
    model. Summaries are always computed for Parquet output (the ``summary`` table); for
    JSONL they are included when ``include_summary`` is set.
    """

    models: tuple[str, ...] | None = None
    output_period: int = 1024
    channel: int | None = None
    include_summary: bool = False
    include_transitions: bool = False
    include_raw_values: bool = False
    use_chunking: bool = True
    volume_threshold: float = 0.005

    def __post_init__(self) -> None:
        if self.models is not None and not all(isinstance(m, str) for m in self.models):
            raise ParameterError(f"models must be names (strings), got {self.models!r}")
        if self.channel is not None and (isinstance(self.channel, bool) or not isinstance(self.channel, int) or self.channel < 0):
            raise ParameterError(f"channel must be a non-negative int or None, got {self.channel!r}")
