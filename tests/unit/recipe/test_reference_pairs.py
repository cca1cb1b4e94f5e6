"""reference_voice pairs (pure Python): same voice, never itself, enough speech, said when impossible;
the mode in the table, its preset and the linter's refusal of a speaker with a single clip."""

import numpy as np

from core.recipe.lint import DatasetSummary, lint_run_config
from core.recipe.modes import MODE_REFERENCE_VOICE, mode_choices, rules_of
from core.recipe.reference_pairs import ClipVoice, PairPlan, build_pairs
from core.recipe.run_config import preset_config


def _voice(seed: int, spread: float = 0.0, jitter: int = 0) -> list[float]:
    base = np.random.default_rng(seed).normal(size=256)
    noise = np.random.default_rng(1000 + jitter).normal(size=256)
    vector = base + spread * noise
    return list(vector / np.linalg.norm(vector))


def _clips() -> list[ClipVoice]:
    return [
        ClipVoice("anna_1.pt", _voice(1, 0.3, 1), 4.0),
        ClipVoice("anna_2.pt", _voice(1, 0.3, 2), 5.0),
        ClipVoice("anna_3.pt", _voice(1, 0.1, 3), 1.0),  # too little speech to be a reference
        ClipVoice("bob_1.pt", _voice(2, 0.3, 4), 3.0),
        ClipVoice("bob_2.pt", _voice(2, 0.3, 5), 3.0),
    ]


def test_each_clip_gets_another_clip_of_its_own_voice_with_enough_speech():
    plan = build_pairs(_clips())
    assert not plan.unpaired
    for target, reference in plan.pairs.items():
        assert reference != target and reference.split("_")[0] == target.split("_")[0]
        assert reference != "anna_3.pt"  # 1 s of speech: a target, never a reference
    assert plan.pairs["anna_3.pt"] in {"anna_1.pt", "anna_2.pt"}
    # the most similar one of the same voice: anna_3 is nearest to anna_1 and anna_2 alike; check by score
    sims = {n: float(np.dot(_voice(1, 0.1, 3), c.embedding)) for n, c in ((c.name, c) for c in _clips()[:2])}
    assert plan.pairs["anna_3.pt"] == max(sims, key=sims.get)


def test_pairs_are_deterministic_and_round_trip():
    first, second = build_pairs(_clips()), build_pairs(list(reversed(_clips())))
    assert first == second
    assert PairPlan.from_json(first.to_json()) == first


def test_a_lone_speaker_or_a_silent_clip_is_unpaired_and_said_so():
    clips = [*_clips(), ClipVoice("carl_1.pt", _voice(3), 4.0), ClipVoice("mute.pt", None, 0.0)]
    plan = build_pairs(clips)
    assert "carl_1.pt" not in plan.pairs and "no other clip has the same voice" in plan.unpaired["carl_1.pt"]
    assert "too little speech" in plan.unpaired["mute.pt"]
    assert plan.pairs["anna_1.pt"] != "carl_1.pt"  # never another voice
    only_short = build_pairs([ClipVoice("a.pt", _voice(1, 0.2, 1), 4.0), ClipVoice("b.pt", _voice(1, 0.2, 2), 1.5)])
    assert only_short.pairs == {"b.pt": "a.pt"} and "under 2 s of speech" in only_short.unpaired["a.pt"]


def test_the_mode_its_preset_and_the_linter():
    rules = rules_of(MODE_REFERENCE_VOICE)
    assert rules.video_role == "denoised" and rules.scores_video
    assert any(c["value"] == MODE_REFERENCE_VOICE and "reference clip" in c["sentence"] for c in mode_choices())
    config = preset_config("reference-voice", model="toy", output_dir="/tmp/out",
                           data={"preprocessed_dir": "/tmp/p", "trigger": "ema_voice"})
    assert config.training.mode == MODE_REFERENCE_VOICE
    assert all(t.startswith(("audio_", "video_to_audio_attn")) for t in config.lora.target_modules)
    paired = DatasetSummary(clip_count=5, has_audio=True, voices=_clips())
    codes = {i.code: i for i in lint_run_config(config, paired)}
    assert "reference_voice_unpaired" not in codes and "mode_setting_ignored" not in codes
    lone = DatasetSummary(clip_count=6, has_audio=True, voices=[*_clips(), ClipVoice("carl_1.pt", _voice(3), 4.0)])
    issue = {i.code: i for i in lint_run_config(config, lone)}["reference_voice_unpaired"]
    assert issue.severity == "error" and "carl_1.pt" in issue.message and issue.detail["clips"] == ["carl_1.pt"]
