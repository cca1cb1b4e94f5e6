"""The Whisper backend's plumbing, on a tiny randomly initialised Whisper built offline.

The model is random, so its words are gibberish; what is checked is that the backend loads
from the directory only, asks for token timestamps through the alignment heads, groups
tokens into words and returns well-formed times inside the audio.
"""

from __future__ import annotations

import string

import numpy as np
import pytest

from worker.speech.asr import get_recognizer
from worker.speech.whisper import WhisperModelError, WhisperRecognizer

SPACE = "\u0120"  # byte-level BPE's visible form of " "


def build_tiny_whisper(path, seed: int = 0) -> None:
    """Save a 1-layer, d_model 32 Whisper with a 53-token letter vocabulary to ``path``."""
    import torch
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    letters = list(string.ascii_lowercase)
    vocab = {token: i for i, token in enumerate(letters + [SPACE] + [SPACE + c for c in letters])}
    specials = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|translate|>",
                "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>"]
    specials += [f"<|{i * 0.02:.2f}|>" for i in range(1501)]
    for token in specials:
        vocab[token] = len(vocab)
    tokenizer = WhisperTokenizer(vocab=vocab, merges=[(SPACE, c) for c in letters])
    tokenizer.add_special_tokens({"additional_special_tokens": specials[1:]})
    eot, sot = vocab["<|endoftext|>"], vocab["<|startoftranscript|>"]
    torch.manual_seed(seed)
    config = WhisperConfig(vocab_size=len(vocab), d_model=32, encoder_layers=1, decoder_layers=1,
                           encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
                           decoder_ffn_dim=64, max_target_positions=64, pad_token_id=eot, bos_token_id=eot,
                           eos_token_id=eot, decoder_start_token_id=sot)
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig(  # built directly: from_model_config drops Whisper's keys
        decoder_start_token_id=sot, eos_token_id=eot, pad_token_id=eot, bos_token_id=eot, max_length=64,
        no_timestamps_token_id=vocab["<|notimestamps|>"], is_multilingual=True,
        lang_to_id={"<|en|>": vocab["<|en|>"]}, prev_sot_token_id=vocab["<|startofprev|>"],
        task_to_id={"transcribe": vocab["<|transcribe|>"], "translate": vocab["<|translate|>"]},
        alignment_heads=[[0, 0], [0, 1]], begin_suppress_tokens=[eot],
        no_repeat_ngram_size=1,  # a random model otherwise repeats one token: no words to group
        suppress_tokens=[vocab[SPACE]] + [vocab[t] for t in specials[1:]])
    model.save_pretrained(path)
    WhisperProcessor(feature_extractor=WhisperFeatureExtractor(), tokenizer=tokenizer).save_pretrained(path)


@pytest.fixture(scope="module")
def tiny_whisper_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-whisper")
    build_tiny_whisper(path)
    return path


def test_tiny_random_whisper_returns_words_with_times_inside_the_audio(tiny_whisper_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    recognizer = get_recognizer({"AVLORA_ASR_MODEL_DIR": str(tiny_whisper_dir)})
    audio = (0.1 * np.random.default_rng(0).standard_normal(3 * 16000)).astype(np.float32)
    transcript = recognizer.transcribe(audio, 16000, "en")
    assert len(transcript.words) >= 3
    assert transcript.text == " ".join(w.word for w in transcript.words)
    previous = 0.0
    for word in transcript.words:
        assert word.word and " " not in word.word and set(word.word) <= set(string.ascii_lowercase)
        assert 0.0 <= word.start_s <= word.end_s <= 3.0
        assert word.start_s >= previous - 1e-6  # times never run backwards
        assert 0.0 < word.confidence <= 1.0
        previous = word.start_s


def test_a_directory_without_a_model_is_a_clear_error(tmp_path):
    with pytest.raises(WhisperModelError, match="cannot load a Whisper model"):
        WhisperRecognizer(tmp_path).transcribe(np.zeros(16000, np.float32), 16000)
    with pytest.raises(WhisperModelError, match="not a directory"):
        WhisperRecognizer(tmp_path / "missing").transcribe(np.zeros(16000, np.float32), 16000)


def test_tokens_are_grouped_into_words_with_their_punctuation():
    from worker.speech.whisper import group_words

    class Pieces:  # stands in for a tokenizer: token id -> text
        table = {1: " Hel", 2: "lo", 3: ",", 4: " world", 5: ".", 6: " \u2026"}

        def decode(self, ids):
            return "".join(self.table[i] for i in ids)

    ids = [1, 2, 3, 4, 5, 6]
    starts = [0.0, 0.2, 0.4, 0.5, 0.9, 1.0]
    ends = [0.2, 0.4, 0.5, 0.9, 1.0, 1.1]
    words = group_words(Pieces(), ids, starts, ends, [0.5, 0.7, 0.9, 0.8, 1.0, 0.4])
    assert [(w.word, w.start_s, w.end_s) for w in words] == [("Hello,", 0.0, 0.5), ("world.", 0.5, 1.0)]
    assert words[0].confidence == pytest.approx(0.7)
