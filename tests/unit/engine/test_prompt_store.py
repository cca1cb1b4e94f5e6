"""The validation prompts' embeddings kept in the run folder: Gemma loaded only for new text, and never kept."""

import gc
import weakref

import numpy as np
import pytest
import torch

import worker.engine.data.prompt_cache as prompt_cache
import worker.engine.model.pipelines as pipelines
from tests.unit.engine._train_data import build_precomputed, run_config
from worker.engine.data.prompt_cache import sampling_texts
from worker.engine.data.prompt_store import EMBEDDINGS_DIR, stored_prompt_embeddings
from worker.engine.model.pipelines import load_pipeline
from worker.engine.progress import CancelToken, TrainCallbacks
from worker.engine.sampling import SampleSpec, generate
from worker.engine.train import Trainer
from worker.engine.validate import validate_run

PROMPT = "ema_voice, a red square hums a low tone"
OTHER = "ema_voice, a blue circle whistles"


class EncoderSpy:
    """Counts the text encoders loaded and keeps a weak reference to each."""

    def __init__(self, monkeypatch):
        self.refs = []
        self.encoded: list[list[str]] = []
        load, encode = pipelines.load_text_encoder, prompt_cache.encode_prompts

        def loading(*args, **kwargs):
            encoder = load(*args, **kwargs)
            self.refs.append(weakref.ref(encoder))
            return encoder

        def encoding(pipe, texts, **kwargs):
            self.encoded.append(list(texts))
            return encode(pipe, texts, **kwargs)

        monkeypatch.setattr(pipelines, "load_text_encoder", loading)
        monkeypatch.setattr(prompt_cache, "encode_prompts", encoding)

    @property
    def loads(self) -> int:
        return len(self.refs)


class CancelAfterOneStep(TrainCallbacks):
    def __init__(self, cancel):
        self.cancel = cancel

    def on_progress(self, event):
        self.cancel.cancel()


@pytest.fixture(scope="module")
def precomputed(tmp_path_factory, engine_data_dir, toy_pipeline):
    return build_precomputed(tmp_path_factory.mktemp("dataset"), engine_data_dir, toy_pipeline)


def test_a_resume_and_avlora_validate_never_load_the_text_encoder(tmp_path, engine_data_dir, precomputed,
                                                                  monkeypatch):
    torch.set_num_threads(1)
    spy = EncoderSpy(monkeypatch)
    config = run_config(tmp_path / "run", precomputed, optimization={"steps": 2}, checkpoints={"interval": 1},
                        validation={"at_checkpoints": True})
    cancel = CancelToken()
    first = Trainer(config, data_dir=engine_data_dir, device="cpu", cancel=cancel, callbacks=CancelAfterOneStep(cancel))
    gc.collect()
    # set-up loaded Gemma once for the prompt and the negative prompt, and let it go
    assert spy.loads == 1 and spy.encoded == [[PROMPT, config.validation.negative_prompt]]
    assert first.pipe.text_encoder is None and spy.refs[0]() is None
    assert len(list((tmp_path / "run" / EMBEDDINGS_DIR).glob("*.safetensors"))) == 2
    assert first.run().status == "cancelled"
    del first
    resumed = Trainer(config, data_dir=engine_data_dir, device="cpu")
    assert resumed.pipe.text_encoder is None and spy.loads == 1
    assert resumed.run(resume=True).status == "completed"
    events = validate_run(tmp_path / "run", data_dir=engine_data_dir, device="cpu")
    assert [e.mp4_path.name for e in events] == ["step_000002_01.mp4"] and spy.loads == 1
    names = sorted(p.name for p in (tmp_path / "run" / "samples").glob("*.wav"))
    # the step-1 samples the cancel left out at its checkpoint were made by the resume
    assert names == ["step_000000_01.wav", "step_000001_01.wav", "step_000002_01.wav"]


def test_samples_from_stored_embeddings_equal_freshly_encoded_ones(tmp_path, engine_data_dir, monkeypatch):
    torch.set_num_threads(1)
    spy = EncoderSpy(monkeypatch)
    bare = load_pipeline("toy", data_dir=engine_data_dir, device="cpu", dtype=torch.float32, with_text_encoder=False)
    assert bare.text_encoder is None
    texts = sampling_texts([PROMPT], "blurry")
    kwargs = {"folder": tmp_path / EMBEDDINGS_DIR, "device": "cpu", "dtype": torch.float32,
              "model": ("toy", engine_data_dir, None)}
    fresh = stored_prompt_embeddings(bare, texts, **kwargs)
    stored = stored_prompt_embeddings(bare, texts, **kwargs)
    assert spy.loads == 1  # the second call read the files
    for text in texts:
        assert torch.equal(fresh.get(text).embeds, stored.get(text).embeds)
        assert torch.equal(fresh.get(text).mask, stored.get(text).mask)
    spec = SampleSpec(prompt=PROMPT, width=64, height=64, num_frames=9, num_inference_steps=2, negative_prompt="blurry")
    one, two = generate(bare, spec, fresh), generate(bare, spec, stored)
    assert np.array_equal(one.frames, two.frames) and np.array_equal(one.audio, two.audio)
    full = load_pipeline("toy", data_dir=engine_data_dir, device="cpu", dtype=torch.float32)
    by_pipeline = generate(full, spec)  # the pipeline's own text encoding
    assert np.array_equal(by_pipeline.frames, two.frames) and np.array_equal(by_pipeline.audio, two.audio)


def test_only_a_changed_prompt_is_encoded_again(tmp_path, engine_data_dir, monkeypatch):
    spy = EncoderSpy(monkeypatch)
    bare = load_pipeline("toy", data_dir=engine_data_dir, device="cpu", dtype=torch.float32, with_text_encoder=False)
    kwargs = {"folder": tmp_path / EMBEDDINGS_DIR, "device": "cpu", "dtype": torch.float32,
              "model": ("toy", engine_data_dir, None)}
    stored_prompt_embeddings(bare, sampling_texts([PROMPT], ""), **kwargs)
    stored_prompt_embeddings(bare, sampling_texts([PROMPT], ""), **kwargs)
    assert spy.loads == 1 and spy.encoded == [[PROMPT, ""]]
    cache = stored_prompt_embeddings(bare, sampling_texts([OTHER], ""), **kwargs)
    assert spy.loads == 2 and spy.encoded[-1] == [OTHER]  # the negative prompt came from disk
    assert OTHER in cache and "" in cache and PROMPT not in cache
    # another precision is another embedding: never mixed up with the float32 one
    stored_prompt_embeddings(bare, [OTHER], **{**kwargs, "dtype": torch.bfloat16})
    assert spy.loads == 3 and spy.encoded[-1] == [OTHER]


def test_an_unreadable_stored_embedding_is_encoded_again(tmp_path, engine_data_dir, monkeypatch):
    spy = EncoderSpy(monkeypatch)
    bare = load_pipeline("toy", data_dir=engine_data_dir, device="cpu", dtype=torch.float32, with_text_encoder=False)
    kwargs = {"folder": tmp_path / EMBEDDINGS_DIR, "device": "cpu", "dtype": torch.float32,
              "model": ("toy", engine_data_dir, None)}
    first = stored_prompt_embeddings(bare, [PROMPT], **kwargs)
    (file,) = (tmp_path / EMBEDDINGS_DIR).glob("*.safetensors")
    file.write_bytes(b"not a safetensors file")
    again = stored_prompt_embeddings(bare, [PROMPT], **kwargs)
    assert spy.loads == 2 and torch.equal(first.get(PROMPT).embeds, again.get(PROMPT).embeds)
