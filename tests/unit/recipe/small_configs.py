"""Small LTX-2 transformer configs for tests: 2.3, 2.0 and 2.5 flags, a mixed case."""

# Small shapes that keep the real class's constraints (equal head counts, cross dims = inner dims).
SMALL_SHAPE = {
    "num_layers": 2,
    "num_attention_heads": 2,
    "attention_head_dim": 8,
    "cross_attention_dim": 16,
    "audio_num_attention_heads": 2,
    "audio_attention_head_dim": 4,
    "audio_cross_attention_dim": 8,
    "caption_channels": 12,
    "in_channels": 8,
    "out_channels": 8,
    "audio_in_channels": 8,
    "audio_out_channels": 8,
}
FLAGS_23 = {
    "gated_attn": True,
    "audio_gated_attn": True,
    "cross_attn_mod": True,
    "audio_cross_attn_mod": True,
    "perturbed_attn": True,
    "use_prompt_embeddings": False,
    "rope_type": "split",
}
FLAGS_20 = {"rope_type": "split"}
# LTX-2.5: the 2.3 flags (prompt AdaLN kept), a bias-free video feed-forward, the keyframe embedding.
FLAGS_25 = {**FLAGS_23, "ff_bias": False, "audio_ff_bias": True, "use_keyframes_abs_pos_embedding": True}
CONFIGS = {
    "2.3": {**SMALL_SHAPE, **FLAGS_23},
    "2.0": {**SMALL_SHAPE, **FLAGS_20},
    "2.5": {**SMALL_SHAPE, **FLAGS_25},
    "2.3-video-gates-only": {**SMALL_SHAPE, "gated_attn": True, "cross_attn_mod": True, "out_channels": None},
}
