"""Label constants, named as DeepTone's ``deeptone.deeptone`` module names them.

Scripts written for DeepTone import these with only the module name changed
(``from deeptone.deeptone import GENDER_MALE`` -> ``from deeptone_async.labels import GENDER_MALE``).
"""

SILENCE = "silence"
NO_SPEECH = "no_speech"
UNKNOWN = "unknown"

VAD_SPEECH = "speech"
VAD_NO_SPEECH = NO_SPEECH
VAD_SILENCE = SILENCE

SPEECH_SPEECH = "speech"
SPEECH_MUSIC = "music"
SPEECH_OTHER = "other"
SPEECH_SILENCE = SILENCE

GENDER_MALE = "male"
GENDER_FEMALE = "female"
GENDER_UNKNOWN = UNKNOWN
GENDER_NO_SPEECH = NO_SPEECH
GENDER_SILENCE = SILENCE

AROUSAL_HIGH = "high"
AROUSAL_NEUTRAL = "neutral"
AROUSAL_LOW = "low"
AROUSAL_NO_SPEECH = NO_SPEECH
AROUSAL_SILENCE = SILENCE

EMOTIONS_HAPPY = "happy"
EMOTIONS_IRRITATED = "irritated"
EMOTIONS_NEUTRAL = "neutral"
EMOTIONS_TIRED = "tired"
EMOTIONS_NO_SPEECH = NO_SPEECH
EMOTIONS_SILENCE = SILENCE
