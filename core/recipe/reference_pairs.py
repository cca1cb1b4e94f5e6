"""Reference/target pairs of the ``reference_voice`` mode (pure Python, numpy/scipy).

For each training clip (the target) the reference is another clip of the same speaker: the
clips are grouped by voice with :func:`core.media.voices.cluster_voices` (the dataset page's
grouping, cut at :data:`core.recipe.speech_rules.OTHER_SPEAKER_SIMILARITY`); among the other clips
of the target's group that hold at least :data:`REFERENCE_MIN_SPEECH_S` of speech, the one whose
voice embedding is most similar to the target's is chosen (ties: the first name). A clip is
never its own reference and never gets one of another voice: a clip without a candidate is left
unpaired with the reason said (:attr:`PairPlan.unpaired`), and the linter and the engine refuse
the run until it has one. The reference's audio is cut to at most :data:`REFERENCE_MAX_S` when
it is fed to the model. The same embeddings give the same pairs (nothing random).

The plan is stored in the cache folder as ``reference_pairs.json``
(:data:`core.names.REFERENCE_PAIRS_NAME`), written by the worker's
``worker.engine.data.reference`` from the clips' own audio.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from core.media.voices import cluster_voices
from core.recipe.speech_rules import OTHER_SPEAKER_SIMILARITY

REFERENCE_MIN_SPEECH_S = 2.0
REFERENCE_MAX_S = 6.0
PAIRS_VERSION = 1


@dataclass(frozen=True)
class ClipVoice:
    """One clip as the pairing sees it: its cache name, voice embedding (None: too little
    speech to embed) and seconds of speech in the part of it that is trained on."""

    name: str
    embedding: Sequence[float] | None
    speech_s: float


@dataclass
class PairPlan:
    """``pairs``: target name -> reference name; ``similarity``: of each pair's voices;
    ``unpaired``: target name -> why it has no reference; ``voice_of``: name -> voice group."""

    pairs: dict[str, str] = field(default_factory=dict)
    similarity: dict[str, float] = field(default_factory=dict)
    unpaired: dict[str, str] = field(default_factory=dict)
    voice_of: dict[str, int] = field(default_factory=dict)
    speech_s: dict[str, float] = field(default_factory=dict)

    def problems(self) -> list[str]:
        """One sentence per clip that has no reference (empty when every clip has one)."""
        return [f"{name}: {why}" for name, why in sorted(self.unpaired.items())]

    def to_json(self) -> str:
        return json.dumps({"version": PAIRS_VERSION, "pairs": self.pairs, "similarity": self.similarity,
                           "unpaired": self.unpaired, "voice_of": self.voice_of, "speech_s": self.speech_s},
                          indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PairPlan:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("version") != PAIRS_VERSION:
            raise ValueError("not a reference pair plan of this version")
        return cls({str(k): str(v) for k, v in data["pairs"].items()},
                   {str(k): float(v) for k, v in data["similarity"].items()},
                   {str(k): str(v) for k, v in data["unpaired"].items()},
                   {str(k): int(v) for k, v in data["voice_of"].items()},
                   {str(k): float(v) for k, v in data.get("speech_s", {}).items()})


def _unit(vector: Sequence[float]) -> np.ndarray:
    array = np.asarray(vector, dtype=np.float64).reshape(-1)
    norm = float(np.linalg.norm(array))
    return array / norm if norm > 0 else array


def build_pairs(clips: Iterable[ClipVoice], *, same_voice: float = OTHER_SPEAKER_SIMILARITY,
                min_speech_s: float = REFERENCE_MIN_SPEECH_S) -> PairPlan:
    """Choose each clip's reference (see the module docstring); deterministic."""
    clips = sorted(clips, key=lambda clip: clip.name)
    plan = PairPlan(speech_s={c.name: round(float(c.speech_s), 3) for c in clips})
    voiced = [c for c in clips if c.embedding is not None and len(c.embedding)]
    for clip in clips:
        if clip not in voiced:
            plan.unpaired[clip.name] = "too little speech to tell its voice"
    vectors = [_unit(c.embedding) for c in voiced]
    labels = cluster_voices(vectors, threshold=same_voice)
    plan.voice_of = {c.name: label for c, label in zip(voiced, labels, strict=True)}
    for index, clip in enumerate(voiced):
        same = [j for j in range(len(voiced)) if j != index and labels[j] == labels[index]]
        if not same:
            plan.unpaired[clip.name] = "no other clip has the same voice: add another clip of this speaker"
            continue
        long_enough = [j for j in same if voiced[j].speech_s >= min_speech_s]
        if not long_enough:
            plan.unpaired[clip.name] = (f"the other clips of the same voice hold under {min_speech_s:g} s of speech "
                                        "each: add a longer clip of this speaker")
            continue
        scores = {j: float(np.dot(vectors[index], vectors[j])) for j in long_enough}
        best = max(long_enough, key=lambda j: (scores[j], -j))  # ties: the first name (clips are sorted)
        plan.pairs[clip.name] = voiced[best].name
        plan.similarity[clip.name] = round(scores[best], 4)
    return plan


def voice_counts(plan: PairPlan) -> dict[int, int]:
    """How many clips each voice group holds."""
    counts: dict[int, int] = {}
    for label in plan.voice_of.values():
        counts[label] = counts.get(label, 0) + 1
    return counts
