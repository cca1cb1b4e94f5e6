"""Engine subcommands of the ``avlora`` CLI. Each module exposes ``register(subparsers)`` and
imports torch only inside its handler, so ``avlora --help`` and the web stay torch-free."""

from __future__ import annotations

import importlib

ENGINE_COMMAND_MODULES = ("preprocess", "config", "train", "validate", "verify_lora", "bench")


def register_all(subparsers) -> list[str]:
    """Register every engine command module that exists; returns the ones found missing."""
    missing = []
    for name in ENGINE_COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            missing.append(name)
            continue
        module.register(subparsers)
    return missing
