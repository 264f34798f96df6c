"""Result containers for whole-input analysis (file and bytes)."""

from __future__ import annotations

from typing import Any

__all__ = ["AnalysisResult"]


class AnalysisResult(dict[str, Any]):
    """``{"channels": {"0": {"time_series": [...], "summary": {...}, "transitions": {...}}}}``.

    A plain dict in DeepTone's shape (``json.dumps`` writes exactly that). For a mono input
    the channel's keys can also be read directly, as DeepTone's own bytes example does:
    ``result["time_series"]`` is ``result["channels"]["0"]["time_series"]``.
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
