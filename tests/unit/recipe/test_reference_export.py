"""Which LoRA keys ComfyUI's LTX-2 model loads, and what the key report says of a reference-voice file."""

from __future__ import annotations

from core.recipe.reference_export import comfy_key_problems, key_report_note

REFERENCE = {"avlora_training_mode": "reference_voice"}


def _keys(prefix: str = "diffusion_model.", layers=("audio_attn1.to_q", "audio_ff.net.0.proj")) -> list[str]:
    return [f"{prefix}transformer_blocks.{block}.{layer}.lora_{half}.weight"
            for block in (0, 1) for layer in layers for half in "AB"]


def test_official_block_keys_in_pairs_load_and_the_report_says_so():
    keys = _keys()
    assert comfy_key_problems(keys) == []
    note = key_report_note(keys, REFERENCE, loaded=True)
    assert note["comfy_loads"] and note["mode"] == "reference_voice"
    assert "8 keys are in the official layout ComfyUI loads" in note["sentence"]
    assert "LoraLoaderModelOnly" in note["sentence"] and "LTXVReferenceAudio" in note["sentence"]


def test_diffusers_keys_do_not_load_in_comfyui_and_the_report_points_to_the_official_file():
    keys = _keys("transformer.")
    assert any("lack the diffusion_model. prefix" in p for p in comfy_key_problems(keys))
    note = key_report_note(keys, REFERENCE, loaded=True)
    assert not note["comfy_loads"] and "diffusers layout" in note["sentence"] and "layout comfy" in note["sentence"]


def test_half_layers_unknown_layers_and_unloaded_files_are_named():
    keys = _keys()
    half = [k for k in keys if not k.endswith("blocks.1.audio_ff.net.0.proj.lora_B.weight")]
    assert any("lack their lora_A or lora_B half" in p and "blocks.1.audio_ff.net.0.proj" in p
               for p in comfy_key_problems(half))
    outside = keys + ["diffusion_model.patchify_proj.lora_A.weight", "diffusion_model.patchify_proj.lora_B.weight"]
    assert any("name no transformer-block layer" in p and "patchify_proj" in p for p in comfy_key_problems(outside))
    assert comfy_key_problems([]) == ["the file holds no keys"]
    unloaded = key_report_note(keys, REFERENCE, loaded=False)
    assert not unloaded["comfy_loads"] and "would not all load" in unloaded["sentence"]


def test_only_reference_voice_files_get_the_note():
    assert key_report_note(_keys(), {"avlora_training_mode": "audio_video"}, loaded=True) is None
    assert key_report_note(_keys(), {}, loaded=True) is None
