"""Names the web, the recipe and the engine all spell the same way, declared once here.

Each is a ``Literal`` (for pydantic fields and type checks) and the tuple of its values (for
argparse choices, loops and messages), derived from it so the two never disagree.
"""

from __future__ import annotations

from typing import Literal, get_args

CheckpointPolicy = Literal["full", "attention", "matmul", "none"]
CHECKPOINT_POLICIES: tuple[str, ...] = get_args(CheckpointPolicy)
