"""Every threshold of the per-sample audio metrics, each with the reason for its value.

The validation samples of a run (base model, LoRA, LoRA with audio modules off) are measured by
:mod:`core.media.sample_metrics`; :func:`core.media.sample_metrics.compare_to_base` raises a flag
when a checkpoint's audio is worse than the base model's for the same prompt and seed. Clipping,
loudness gating and the VAD threshold are shared with clip QA and stay in
:mod:`core.recipe.qa_rules`. Pure Python constants (no torch, no I/O).

The analysis rate is 16 kHz mono (the rate the VAD and the clip analysis use), so the numbers
below in samples are at 16 kHz.
"""

from __future__ import annotations

from core.recipe.speech_rules import OTHER_SPEAKER_SIMILARITY

# ------------------------------------------------------------------ frames that count
# Frames quieter than -60 dBFS RMS are left out of the spectral measures: digital silence has no
# spectrum, and room tone that quiet cannot be heard under a voice anyway (same level as
# qa_rules.SILENT_PEAK_DBFS, the "this is silence" line of clip QA).
ACTIVE_FRAME_DBFS = -60.0

# ------------------------------------------------------------------ spectral flatness
# 32 ms frames, 16 ms hop: the usual short-time speech analysis frame (a few pitch periods).
FLATNESS_FRAME = 512
FLATNESS_HOP = 256
# The full band leaves out the lowest bins (DC, rumble) and the top where resampling to 16 kHz
# rolls the spectrum off; either would pull the flatness of white noise down.
FLATNESS_LOW_HZ = 100.0
FLATNESS_HIGH_HZ = 7000.0
# The telephone speech band: where a voice's harmonics and formants carry it, so hiss added to
# a voice raises this band's flatness even when the voice is loud.
SPEECH_BAND_LOW_HZ = 300.0
SPEECH_BAND_HIGH_HZ = 3400.0

# ------------------------------------------------------------------ buzz / hum
# 256 ms frames (3.9 Hz bins) so the harmonics of 50 Hz mains hum stay 13 bins apart and the
# neighbourhood floor between them is still the floor; 75 % overlap keeps ~60 frames in 4 s.
BUZZ_FRAME = 4096
BUZZ_HOP = 1024
# Per bin, the 25th percentile over time: a component counts only if it is there in three
# quarters of the non-silent frames. Buzz and hum are; speech harmonics follow the pitch and stop
# between words (espeak-ng speech, whose pitch is flatter than a person's, scores 17-24 dB
# with this; with the median over time it scored up to 28 dB, and a buzz under it less).
BUZZ_TIME_PERCENTILE = 25
# Each bin is compared with the 25th percentile of the bins within +-100 Hz: wide enough to
# reach past a peak's own main lobe and past the teeth of a 50 Hz comb, narrow enough to follow
# the slope of a speech spectrum.
BUZZ_NEIGHBOURHOOD_HZ = 100.0
BUZZ_FLOOR_PERCENTILE = 25
# Peaks are looked for from 40 Hz (below, a peak is rumble or DC, not an audible buzz) to 7 kHz.
BUZZ_LOW_HZ = 40.0
BUZZ_HIGH_HZ = 7000.0
# The score is capped at 60 dB: a synthetic pure tone would otherwise read as its numeric floor.
BUZZ_MAX_SCORE_DB = 60.0
# From 30 dB a persistent peak is tonal noise: clean espeak-ng speech scores 20-24 dB and white
# noise under 8 dB, while a 60-137 Hz square-wave buzz under that speech scores 32-38 dB at
# 37 dB below the voice's peak and 39-48 dB at 31 dB below it.
BUZZ_TONAL_DB = 30.0

# ------------------------------------------------------------------ MFCC voice profile
# The classic speaker-feature setup at 16 kHz: 32 ms frames every 10 ms, 40 mel bands from
# 20 Hz to 7.6 kHz, 20 coefficients (c0, the energy, is then dropped from the voice profile so
# loudness does not count as voice).
MFCC_FRAME = 512
MFCC_HOP = 160
MFCC_MELS = 40
MFCC_LOW_HZ = 20.0
MFCC_HIGH_HZ = 7600.0
MFCC_COEFFICIENTS = 20
# Log-mel values more than 80 dB under the clip's loudest are floored there (librosa's top_db),
# so near-silent frames do not dominate the cepstrum with numerical noise.
MFCC_DYNAMIC_RANGE_DB = 80.0
# A voice profile needs at least 0.3 s (30 frames at a 10 ms hop) of VAD speech; with less the
# profile is taken over all non-silent frames (a sample that is noise then measures as noise).
MIN_VOICE_FRAMES = 30
# MFCC standard deviations are floored at 1 (dB-like units) before dividing by them, so a
# constant signal (a pure tone) does not make every difference infinite.
MFCC_MIN_STD = 1.0

# ------------------------------------------------------------------ checkpoint vs base model
# Flags compare a checkpoint's sample with the base model's sample for the same prompt and seed.
# Clipping: the sample's clipping ratio is over qa_rules.CLIPPING_RATIO_WARN (audible) and at
# least 3x the base's, so a base that already clips does not flag every checkpoint.
CLIPPING_RISE_FACTOR = 3.0
# 10 dB quieter than the base is half as loud to the ear (and more, for speech at -23 LUFS it is
# at the low-loudness line of clip QA): the LoRA is collapsing the audio towards silence.
LOUDNESS_DROP_DB = 10.0
# 6 dB louder is twice the amplitude: model audio does not grow that much from a voice LoRA
# unless it is blowing up (distortion and clipping follow).
LOUDNESS_RISE_DB = 6.0
# Buzz: the sample's score is over BUZZ_TONAL_DB and at least 10 dB over the base's score for
# the same prompt (a tone 10 dB stronger than anything persistent in the base's audio).
BUZZ_RISE_DB = 10.0
# Noise: flatness rose by 0.1 or more over the base's (a sixth of the way from clean speech, near
# 0, to white noise, 0.56): a hiss fills the gaps between harmonics. Calibrated on espeak-ng speech
# peaking at -3 dBFS with white noise under it: at 19 dB SNR flatness rises by 0.06, at 13 dB by
# 0.15, at 10 dB by 0.25, so the line sits near clip QA's noisy line (qa_rules.NOISY_SNR_DB, 15 dB).
FLATNESS_RISE = 0.1
# Speech lost: the base said something (speech ratio at least qa_rules.LOW_SPEECH_RATIO) and the
# sample has less than half of the base's speech ratio.
SPEECH_KEPT_FRACTION = 0.5

# ------------------------------------------------------------------ voice measures (worker/speech/sample_voice.py)
# Speaker similarity, word error rate and DNSMOS need speech: with less VAD speech than half a
# second (a word or two) a sample's three voice measures are None with the reason "no speech".
# Resemblyzer itself embeds from 0.1 s, but an embedding of a single word wanders by 0.1-0.2.
VOICE_MIN_SPEECH_S = 0.5
# speaker_similarity is the cosine of the sample's GE2E embedding to the unit mean of the
# training clips'. Measured on espeak-ng (reference: four en-us+m3 sentences; samples: four other
# sentences): the same voice scores 0.81-0.88, en-us+f4 0.53-0.59, en-us+f2 0.55-0.63, and the
# same voice under a 100 Hz buzz 12 dB below its peak 0.55, under white noise at 5 dB SNR 0.64.
# A sample under the line where clip QA calls a clip another speaker
# (speech_rules.OTHER_SPEAKER_SIMILARITY, 0.75) is flagged ``voice_not_theirs``.
SPEAKER_SIMILARITY_MIN = OTHER_SPEAKER_SIMILARITY
# ... and one 0.1 or more below the base model's sample of the same prompt and seed is flagged
# ``voice_moved_away``: the LoRA made the voice less like the dataset's than no LoRA at all.
# 0.1 is above the 0.06 spread of one voice over different sentences and well under the
# 0.25-0.3 gap to another voice.
SPEAKER_SIMILARITY_DROP = 0.1
# quality_mos is DNSMOS P.835 OVRL (1-5). Clean espeak-ng speech scores 2.8-3.0 (a formant
# synthesiser is not studio speech); white noise at 20 dB SNR brings it to 2.2-2.5, at 5 dB to
# 1.8-1.9; a 100 Hz buzz 30 dB below the peak to 2.2-2.4, 12 dB below to 1.1-1.4. Half a point
# under the base model's sample is flagged ``quality_dropped``: above the 0.3 spread of clean
# speech over prompts, so the loud buzz and noise that ruin a sample always flag, and the faint
# ones (drops of 0.3-0.9) only when they cost more than half a point.
QUALITY_MOS_DROP = 0.5
# wer is the recogniser's word error rate against the prompt's Speech: "..." words. PocketSphinx
# (trained on people) gets clean espeak-ng sentences in the default voice 0-0.13 wrong, but the
# same sentence in the low en-us+m3 voice up to 0.43 wrong: a change of voice alone moves it that
# much. Under a loud buzz or 5 dB noise it gets 0.9-1.0 wrong. Half the words more wrong than in
# the base model's sample (0.5) is flagged ``intelligibility_dropped``.
WER_RISE = 0.5
