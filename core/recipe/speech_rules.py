"""The recipe's speech rules: how long a cut part may be, when a voice is someone else's, when a
transcript disagrees with what is heard. Pure Python, shared by the split planner (worker), the
API's checks of a person's cuts and the clip findings (web and worker).
"""

from __future__ import annotations

# Parts of a split: the recipe's 3-5 s lines, never over 10 s (the long_clip rule), never under
# the smallest bucket's duration (the frames % 8 == 1 rule at the clip's frame rate).
TARGET_PART_S = (3.0, 5.0)
SHORTEST_PART_S = 1.0
LONGEST_PART_S = 10.0
EDGE_MARGIN_S = 0.15  # silence kept before the first and after the last word of a part

# Voices: cosine similarity of two voice embeddings (Resemblyzer's GE2E unless configured).
# Measured on espeak-ng voices and recorded in docs/benchmarks.md; a clip whose voice is below
# OTHER_SPEAKER_SIMILARITY to the dataset's majority voice is flagged ``other_speaker``.
OTHER_SPEAKER_SIMILARITY = 0.75
MIN_SPEECH_FOR_VOICE_S = 1.0  # less speech than this gives no reliable embedding

# A transcript the person typed that the recogniser hears as clearly other words.
TRANSCRIPT_MISMATCH_WER = 0.5


def part_problem(start_s: float, end_s: float, duration_s: float, min_s: float, max_s: float) -> str | None:
    """Why a part ``start_s..end_s`` of a clip ``duration_s`` long cannot be cut, or None."""
    if start_s < 0 or end_s <= start_s:
        return "the end must come after the start, both inside the clip"
    if duration_s and end_s > duration_s + 0.05:
        return f"it ends after the clip does ({duration_s:.2f} s)"
    length = end_s - start_s
    if length < min_s - 1e-6:
        return f"{length:.2f} s is shorter than the smallest bucket's {min_s:.2f} s"
    if length > max_s + 1e-6:
        return f"{length:.2f} s is longer than {max_s:.0f} s"
    return None


def frames_for(length_s: float, fps: float) -> int:
    """The largest frame count of the form 8k+1 that fits in ``length_s`` at ``fps`` (at least 1)."""
    frames = int(length_s * fps + 1e-6)
    return max(1, (frames - 1) // 8 * 8 + 1)
