"""Plug-ins for bot frameworks, each behind its own extra and imported only when used.

- :mod:`deeptone_async.integrations.pipecat` (``pip install 'deeptone-async[pipecat]'``):
  :class:`~deeptone_async.integrations.pipecat.DeeptoneVADAnalyzer`, our Vad (or SpeechRT)
  as a pipecat ``VADAnalyzer``, and
  :class:`~deeptone_async.integrations.pipecat.DeeptoneAnalytics`, a frame processor that
  adds results and events (speech started / ended, gender, arousal and emotion changes) to
  a pipeline as frames.
- :mod:`deeptone_async.integrations.livekit` (``pip install 'deeptone-async[livekit]'``):
  :class:`~deeptone_async.integrations.livekit.DeeptoneVAD`, a LiveKit agents ``VAD``.

Importing this package imports neither framework; importing one of the modules without its
extra raises an ImportError that names the extra.
"""

from __future__ import annotations

__all__: list[str] = []
