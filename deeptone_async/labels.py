"""Label constants, named as DeepTone's ``deeptone.deeptone`` module names them.

Scripts written for DeepTone import these with only the module name changed.
"""

VAD_SPEECH = "speech"
VAD_NO_SPEECH = "no_speech"
VAD_SILENCE = "silence"
