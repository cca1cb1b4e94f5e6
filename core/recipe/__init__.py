"""The recipe: pure-Python rules shared by the web form and the torch worker (never imports torch).

- ``buckets``: resolution buckets ``WxHxF;WxHxF`` and the official clip-to-bucket rule.
- ``captions``: the trigger-word rule and caption composition.
- ``metadata``: the official dataset metadata files (.csv / .json / .jsonl).
- ``architecture``: the LTX-2 transformer's module names from its config; families and sides.
- ``targets``: which layers a LoRA ``target_modules`` setting reaches, by PEFT's rule.
- ``run_config``: the training run config schema, presets, YAML and the resume fingerprint.
- ``lint``: findings about a run config and its dataset before training.
- ``official_yaml``: import/export of the official ltx-trainer YAML config.
- ``qa_rules``: clip QA thresholds (owned by the media engineer).
"""
