"""Validation samples written in the background: same bytes, an event only once the files exist, errors raised."""

import threading

import pytest
import torch

import worker.engine.validate as validate
from worker.engine.data.prompt_cache import encode_prompts, sampling_texts
from worker.engine.progress import TrainCallbacks
from worker.engine.sampling import generate, write_mp4, write_wav
from worker.engine.validate import ValidationPlan, run_validation

PROMPTS = ["ema_voice, a red square hums a low tone", "ema_voice, a blue circle whistles"]


class Events(TrainCallbacks):
    def __init__(self):
        self.samples = []

    def on_sample(self, event):
        assert event.mp4_path.is_file() and event.wav_path.is_file()  # never before its files are whole
        self.samples.append(event)


@pytest.fixture(scope="module")
def plan_and_cache(toy_pipeline):
    plan = ValidationPlan(prompts=PROMPTS, negative_prompt="", seed=3, width=64, height=64, num_frames=9,
                          frame_rate=24.0, inference_steps=2, video_guidance_scale=3.0, audio_guidance_scale=7.0,
                          variants=["base"])
    return plan, encode_prompts(toy_pipeline, sampling_texts(PROMPTS, ""))


def test_background_writes_equal_the_synchronous_files_byte_for_byte(tmp_path, toy_pipeline, plan_and_cache,
                                                                      monkeypatch):
    torch.set_num_threads(1)
    plan, cache = plan_and_cache
    threads = []
    real_write = validate.write_mp4
    monkeypatch.setattr(validate, "write_mp4", lambda *a: (threads.append(threading.current_thread()), real_write(*a)))
    recorder = Events()
    events = run_validation(toy_pipeline, plan, tmp_path / "background", 0, prompt_cache=cache, callbacks=recorder)
    assert [e.mp4_path.name for e in events] == ["base_01.mp4", "base_02.mp4"] and recorder.samples == events
    assert threads and all(t is not threading.main_thread() for t in threads)  # off the sampling thread
    for index, prompt in enumerate(PROMPTS):
        sample = generate(toy_pipeline, plan.spec(prompt), cache)
        wav = write_wav(tmp_path / "sync" / f"base_{index + 1:02d}.wav", sample)
        mp4 = write_mp4(tmp_path / "sync" / f"base_{index + 1:02d}.mp4", sample)
        assert wav.read_bytes() == events[index].wav_path.read_bytes()
        assert mp4.read_bytes() == events[index].mp4_path.read_bytes()


@pytest.mark.parametrize("failing", [0, 1])
def test_a_failed_write_is_the_error_and_its_sample_has_no_event(tmp_path, toy_pipeline, plan_and_cache, monkeypatch,
                                                                  failing):
    torch.set_num_threads(1)
    plan, cache = plan_and_cache
    calls = []
    real_write = validate.write_mp4

    def write(path, sample):
        calls.append(path)
        if len(calls) - 1 == failing:
            raise OSError(f"disk gone while writing {path.name}")
        return real_write(path, sample)

    monkeypatch.setattr(validate, "write_mp4", write)
    recorder = Events()
    with pytest.raises(OSError, match=f"base_0{failing + 1}.mp4"):
        run_validation(toy_pipeline, plan, tmp_path, 0, prompt_cache=cache, callbacks=recorder)
    assert [e.prompt_index for e in recorder.samples] == list(range(failing))
    assert not (tmp_path / f"base_0{failing + 1}.mp4").exists()
