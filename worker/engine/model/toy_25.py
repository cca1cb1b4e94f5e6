"""What the LTX-2.5 toy changes from the LTX-2.3 toy (``worker/engine/model/toy.py`` builds both).

LTX-2.5 keeps the 2.3 layout (gated attention, cross-attention modulation, perturbed attention,
per-modality connector projections, split RoPE, the BWE vocoder, the 4-stage conv VAE decoder)
and changes, as diffusers 0.42.1 and the official ltx-core read a 2.5 checkpoint:

- the text encoder is a Gemma 4 (``Gemma4UnifiedForConditionalGeneration``, model_type
  ``gemma4_unified``) instead of Gemma 3; its tokenizer does not emit a leading BOS, so the toy's
  tokenizer does not either (``worker/engine/data/text.py`` adds it, as ltx-core's
  ``LTXGemmaTokenizer`` does);
- the video feed-forward layers have no bias (``ff_bias=False``; the audio ones keep theirs);
- a learned keyframe absolute-position embedding (``use_keyframes_abs_pos_embedding=True``: one
  ``(1, inner_dim)`` parameter, ``keyframes_abs_pos_embedding``), which inference adds to the tokens
  of single-pixel-frame latents; the official trainer never marks a token, so training ignores it.

The prompt cross-attention modulation is 2.3's (``prompt_adaln`` / ``audio_prompt_adaln``, the
timestep MLP, on top of the per-layer ``prompt_scale_shift_table``): the released 2.5 files carry
``prompt_adaln_single`` and their config leaves ``use_prompt_adaln_single`` at its default, true
(docs/corrections.md, "LTX-2.5").

The duration head (``LTX2DurationHead``) is an optional pipeline component that only predicts a
clip length from the caption; training never uses it, so the toy has none.
"""

from __future__ import annotations

TOY_VERSIONS = ("2.3", "2.0", "2.5")
# The generations with cross-attention modulation, gated attention and per-modality connectors.
MODULATED_VERSIONS = ("2.3", "2.5")


def transformer_flags_25(version: str) -> dict:
    """The transformer arguments 2.5 sets (empty for 2.3 and 2.0: the class defaults). The prompt
    AdaLN is the default, kept, named here so that no one reads its absence as "dropped"."""
    if version != "2.5":
        return {}
    return {"ff_bias": False, "audio_ff_bias": True, "use_prompt_adaln_single": True,
            "use_keyframes_abs_pos_embedding": True}


def build_toy_gemma4(*, vocab_size: int, hidden: int, layers: int):
    """A tiny Gemma 4 text encoder (text tower only, no vision or audio tower) with random weights
    from torch's current seed. Every hidden state (embeddings + ``layers``) has width ``hidden``."""
    from transformers import Gemma4UnifiedConfig, Gemma4UnifiedForConditionalGeneration

    text = {
        "vocab_size": vocab_size,
        "hidden_size": hidden,
        "intermediate_size": 2 * hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 8,
        "global_head_dim": 8,
        "sliding_window": 64,
        "max_position_embeddings": 2048,
        "layer_types": ["sliding_attention"] * (layers - 1) + ["full_attention"],
    }
    # The multimodal token ids must lie inside the toy vocabulary (they are never used).
    top = vocab_size - 1
    config = Gemma4UnifiedConfig(
        text_config=text,
        vision_config=None,
        audio_config=None,
        boi_token_id=top,
        eoi_token_id=top - 1,
        image_token_id=top - 2,
        video_token_id=top - 3,
        boa_token_id=top - 4,
        eoa_token_index=top - 5,
        audio_token_id=top - 6,
    )
    return Gemma4UnifiedForConditionalGeneration(config).eval()
