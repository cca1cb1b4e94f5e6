"""Worker-side speech layer: recognition with word timings, forced alignment, voice activity,
speaker embeddings, split planning, word error rate, speech quality (DNSMOS), the voice measures
of validation samples, a ``speech`` CLI and a CPU benchmark.

Everything runs offline from models that ship inside pip packages (PocketSphinx's en-US
model, Resemblyzer's GE2E encoder, Silero VAD's ONNX export, speechmos's DNSMOS ONNX models)
or from local directories named by ``AVLORA_ASR_MODEL_DIR`` (a Whisper checkpoint). Modules
here may import numpy, scipy, av, soundfile, pocketsphinx, resemblyzer (and torch for it),
speechmos (onnxruntime, librosa), transformers (Whisper only) and the decoders of
:mod:`core.media`; never the web side (fastapi, templating, ``app``). Heavy libraries are
imported inside functions and models are thread-safe lazy singletons, so ``import
worker.speech`` stays cheap.
"""
