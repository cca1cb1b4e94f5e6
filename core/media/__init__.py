"""Clip media: probing, audio QA analysis, images, browser proxies and QA findings.

Modules (no torch anywhere; onnxruntime is imported lazily by ``vad`` on first use):
``probe`` (what a file holds), ``analysis`` (loudness, peaks, clipping, speech, SNR),
``vad`` (Silero voice activity), ``images`` (poster, waveform, spectrogram), ``proxy``
(H.264/AAC MP4 for browsers), ``findings`` (QA findings and dataset summary) and
``pipeline`` (``analyze_clip``: all of it for one file, for the cpu worker).
"""
