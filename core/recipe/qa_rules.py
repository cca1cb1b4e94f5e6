"""Every clip-QA threshold in one place, each with the reason for its value.

The media probe, the audio analysis and the findings read these names; change a value here and
the whole studio follows. Pure Python constants (no torch, no I/O).
"""

from __future__ import annotations

# ------------------------------------------------------------------ duration
# The advice the product is built on: "cut clips to around 3-5 seconds, one clear spoken line
# per clip" for a first AV-LoRA. Outside that range is advice (a warning), not a blocker.
RECOMMENDED_MIN_SECONDS = 3.0
RECOMMENDED_MAX_SECONDS = 5.0
# Above 10 s a clip holds several lines and only its first F frames reach the trainer (the
# official bucketing keeps the first F frames): splitting it gives more, better-aligned samples.
LONG_CLIP_SECONDS = 10.0
# Durations are written with two decimals everywhere (card, clip page, findings): one frame at
# 25 fps is 0.04 s, and one decimal would show a one-frame clip as "0.0 s".
SECONDS_DECIMALS = 2

# ------------------------------------------------------------------ video
# A frame interval counts as irregular when it differs from the median interval by more than
# 25 % (a 30 fps clip whose frames land 33 ms +- 8 ms apart still counts as constant; the
# floor of two timestamp ticks in the probe absorbs millisecond time-base rounding).
VFR_INTERVAL_TOLERANCE = 0.25
# More than 5 % irregular intervals = variable frame rate. The trainer reads frames at the
# nominal rate, so uneven spacing drifts the picture against the audio (lip sync). A couple of
# dropped frames in a long clip stay below this.
VFR_IRREGULAR_INTERVAL_FRACTION = 0.05
# A file whose header lists N frames but which holds fewer than 98 % of them was cut off
# (2 % leaves room for muxers that count a trailing empty packet or an edit list).
TRUNCATION_MIN_FRAME_FRACTION = 0.98
# The trainer resizes keeping aspect and centre-crops to the bucket. Any upscale (factor above
# 1.0) invents pixels and softens the picture the LoRA learns from, so we warn from just above
# 1.0; the 5 % margin tolerates sources a few pixels short of the bucket (e.g. 500 px for 512).
MAX_UPSCALE_WITHOUT_WARNING = 1.05

# ------------------------------------------------------------------ audio levels
# Below -60 dBFS sample peak a track is silence for training purposes: a 16-bit noise floor sits
# near -90 dBFS and room tone near -60 to -50; nothing the model could learn a voice from.
SILENT_PEAK_DBFS = -60.0
# Integrated loudness below -35 LUFS (spoken-word targets are -16 to -23 LUFS) means the voice is
# very quiet next to the model's training data; normalise the clip before training.
LOW_LOUDNESS_LUFS = -35.0
# A sample within 0.3 dB of full scale (|x| >= 0.966) counts as clipped. Lossy codecs (AAC, Opus)
# turn a hard-clipped flat top into ripples around full scale, so an exact-1.0 test misses them.
CLIPPED_SAMPLE_LEVEL = 0.966
# More than 0.1 % such samples is audible distortion in speech; clean speech peaking at 0 dBFS
# touches that level in well under 0.01 % of samples.
CLIPPING_RATIO_WARN = 0.001
# Analysis frames (20 ms) quieter than -50 dBFS RMS count as silence for the silence ratio.
SILENCE_FRAME_DBFS = -50.0

# ------------------------------------------------------------------ speech and noise
# Silero VAD frame probability at or above 0.5 counts as speech (the model's own default).
VAD_SPEECH_PROBABILITY = 0.5
# A talking-clip dataset wants speech in most of each clip; under 25 % speech (e.g. one word in
# four seconds, or music/ambience) the LoRA mostly learns something else.
LOW_SPEECH_RATIO = 0.25
# At least 0.5 s of detected speech means there are words to transcribe (shorter detections are
# breaths, clicks or single syllables the VAD picked up).
TRANSCRIPT_NEEDED_SPEECH_SECONDS = 0.5
# Estimated speech-to-noise ratio under 15 dB: background noise or hiss is clearly audible under
# the voice and the LoRA learns it as part of the voice (ai-toolkit #684/#780 "noisy voice").
NOISY_SNR_DB = 15.0
# Noise is estimated from non-speech frames when there are at least 0.25 s of them; otherwise
# from the quietest 10 % of frames (also the noise floor, and each frequency's noise level when
# the VAD listens again to a noise-reduced copy).
MIN_NOISE_SECONDS = 0.25
NOISE_FLOOR_PERCENTILE = 10.0
# Quieter than -90 dBFS RMS there is no noise floor to measure: 16-bit quantisation noise sits
# near -98 dBFS and a real room or microphone far above it, so such frames are digital silence
# or codec residue. The SNR is then not estimated (it used to be a made-up 99 dB for every
# clean clip).
NO_NOISE_FLOOR_DBFS = -90.0

# ------------------------------------------------------------------ analysis limits
# Audio analysis reads at most the first 2 minutes: twelve times the long-clip limit, so every
# sensible clip is measured whole, while a mistaken upload of a whole film stays within about
# 100 MB of samples (it gets a long_clip finding anyway).
MAX_ANALYSIS_SECONDS = 120.0
# If decoded audio covers less than half of the stream's stated duration, or more than 5 % of
# packets fail, the audio cannot be trusted: that is audio_decode_failed (a hard error, because
# other trainers silently train without audio in this case).
MIN_DECODED_AUDIO_FRACTION = 0.5
MAX_FAILED_AUDIO_PACKET_FRACTION = 0.05
