"""The voice verdict of reference_voice samples, on espeak-ng voices with the real GE2E encoder."""

import numpy as np
import soundfile as sf

from worker.speech.audio import SAMPLE_RATE
from worker.speech.reference_verdict import reference_verdict, reference_verdict_files
from worker.speech.synth import BENCH_SENTENCES, espeak

LOW, HIGH = ("en-us+m3", 35), ("en-gb+f4", 75)


def _say(voice, index):
    name, pitch = voice
    return np.concatenate([espeak(s, name, pitch=pitch) for s in BENCH_SENTENCES[2 * index:2 * index + 2]])


def test_a_sample_in_the_references_voice_follows_it_and_one_in_the_default_voice_does_not():
    sample, reference, default = _say(LOW, 0), _say(LOW, 1), _say(HIGH, 2)
    follows = reference_verdict(sample, reference, default)
    assert follows["follows_reference"] is True, follows
    assert follows["reference_similarity"] > follows["default_voice_similarity"]
    # the same sample given a reference in the base model's voice: it did not follow that one
    ignores = reference_verdict(sample, _say(HIGH, 1), _say(LOW, 2))
    assert ignores["follows_reference"] is False, ignores


def test_silence_and_a_missing_base_sample_say_why(tmp_path):
    silent = np.zeros(SAMPLE_RATE * 2, dtype=np.float32)
    verdict = reference_verdict(silent, _say(LOW, 1), _say(HIGH, 2))
    assert verdict["follows_reference"] is None and "the sample" in verdict["verdict_reason"]
    sf.write(tmp_path / "s.wav", _say(LOW, 0), SAMPLE_RATE)
    sf.write(tmp_path / "r.wav", _say(LOW, 1), SAMPLE_RATE)
    alone = reference_verdict_files(tmp_path / "s.wav", tmp_path / "r.wav")
    assert alone["reference_similarity"] > 0.5 and alone["follows_reference"] is None
    assert "base sample" in alone["verdict_reason"]
