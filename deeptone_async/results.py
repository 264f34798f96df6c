"""Result containers for whole-input analysis (file and bytes)."""

from __future__ import annotations

from typing import Any

from .errors import ChannelKeyError

__all__ = ["AnalysisResult"]


class AnalysisResult(dict[str, Any]):
    """``{"channels": {"0": {"time_series": [...], "summary": {...}, "transitions": {...}}}}``.

    A plain dict in DeepTone's shape (``json.dumps`` writes exactly that). For a mono input
    the channel's keys can also be read directly, as DeepTone's own bytes example does:
    ``result["time_series"]`` is ``result["channels"]["0"]["time_series"]``. With several
    channels those keys raise :class:`~deeptone_async.errors.ChannelKeyError` (a
    ``KeyError``) naming the channel keys to use instead.
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
