"""Result containers for whole-input analysis (file and bytes)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ChannelKeyError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from .segments import Segment

__all__ = ["AnalysisResult"]


class AnalysisResult(dict[str, Any]):
    """``{"channels": {"0": {"time_series": [...], "summary": {...}, "transitions": {...}}}}``.

    A plain dict in DeepTone's shape (``json.dumps`` writes exactly that). For a mono input
    the channel's keys can also be read directly, as DeepTone's own bytes example does:
    ``result["time_series"]`` is ``result["channels"]["0"]["time_series"]``. With several
    channels those keys raise :class:`~deeptone_async.errors.ChannelKeyError` (a
    ``KeyError``) naming the channel keys to use instead.

    Tables, segments and pictures (optional extras, imported at the first call):
    :meth:`to_pandas`, :meth:`to_arrow`, :meth:`summary_table`, :meth:`segments`, and in
    Jupyter the timeline (:mod:`deeptone_async.plot`) with the summary table.
    """

    def _mono(self) -> dict[str, Any] | None:
        channels = dict.get(self, "channels") or {}
        if len(channels) != 1:
            return None
        (only,) = channels.values()
        return only if isinstance(only, dict) else None

    def __missing__(self, key: str) -> Any:
        mono = self._mono()
        if mono is not None and key in mono:
            return mono[key]
        channels = dict.get(self, "channels") or {}
        if len(channels) > 1 and any(isinstance(c, dict) and key in c for c in channels.values()):
            names = ", ".join(f'output["channels"][{c!r}][{key!r}]' for c in channels)
            raise ChannelKeyError(f"this result has {len(channels)} channels; {key!r} is per channel: use {names}")
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        if dict.__contains__(self, key):
            return True
        mono = self._mono()
        return mono is not None and key in mono

    # -- tables, segments and pictures ------------------------------------------------------

    def to_pandas(self, file: str | None = None) -> pd.DataFrame:
        """Tidy table, one row per result and model (:func:`deeptone_async.tables.to_pandas`).

        Raises:
            ImportError: pandas is not installed (``pip install 'deeptone-async[tables]'``).
        """
        from .tables import to_pandas

        return to_pandas(self, file=file)

    def to_arrow(self, file: str | None = None) -> pa.Table:
        """:meth:`to_pandas`'s table as a ``pyarrow.Table`` (:func:`deeptone_async.tables.to_arrow`).

        Raises:
            ImportError: pyarrow is not installed.
        """
        from .tables import to_arrow

        return to_arrow(self, file=file)

    def summary_table(self, file: str | None = None) -> pd.DataFrame:
        """The summary as ``file, channel, model, label, fraction`` rows (needs
        ``include_summary=True``; :func:`deeptone_async.tables.summary_table`).

        Raises:
            ImportError: pandas is not installed.
            ParameterError: no summary in this result.
        """
        from .tables import summary_table

        return summary_table(self, file=file)

    def segments(self, model: str = "vad", **kwargs: Any) -> list[Segment]:
        """:func:`deeptone_async.segments.segments` of this result."""
        from .segments import segments

        return segments(self, model, **kwargs)

    def _repr_png_(self) -> bytes | None:
        """The timeline as PNG, for Jupyter; ``None`` (plain text) without matplotlib or
        with nothing to draw."""
        try:
            from .plot import timeline, to_png

            return to_png(timeline(self))
        except (ImportError, ValueError, KeyError, IndexError):
            return None

    def _repr_html_(self) -> str | None:
        """The timeline picture and, with a summary, the summary table, for Jupyter;
        ``None`` without matplotlib."""
        import base64

        png = self._repr_png_()
        if png is None:
            return None
        html = f'<img src="data:image/png;base64,{base64.b64encode(png).decode()}" alt="timeline"/>'
        channels = dict.get(self, "channels") or {}
        if channels and all(isinstance(c, dict) and "summary" in c for c in channels.values()):
            try:
                table = self.summary_table().pivot_table(
                    index=["channel", "model"], columns="label", values="fraction", observed=True
                )
                html += table.to_html(float_format=lambda x: f"{x:.1%}", na_rep="")
            except ImportError:
                pass
        return html
