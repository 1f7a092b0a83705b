"""The safety classifiers an evaluation can enable, by name: the one list of them.

Each entry says how to build the classifier from an evaluation's settings and its pinned
default threshold. ``--classifiers`` choices, the ``--<name>-threshold`` options, the protocol
record's thresholds and the runner's scorer all read :data:`CLASSIFIERS`.

Adding a classifier: write its module (a class with ``name``, ``classify(images) ->
[Verdict]`` and ``describe()``, see :mod:`safesteer.evaluation.classifiers`), then add one line
here.

Example:
    >>> list(CLASSIFIERS)
    ['nudenet', 'q16', 'open_nsfw']
    >>> effective_thresholds(EvaluationSettings())
    {'nudenet': 0.6, 'q16': 0.5, 'open_nsfw': 0.5}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from safesteer.errors import InputError
from safesteer.evaluation import nudenet, open_nsfw, q16
from safesteer.evaluation.classifiers import SafetyClassifier
from safesteer.evaluation.clip_model import ClipBundle
from safesteer.evaluation.protocol import EvaluationSettings


@dataclass(frozen=True)
class ClassifierInputs:
    """What building a classifier may read: its threshold, the settings, the CLIP, files."""

    threshold: float
    settings: EvaluationSettings
    clip: ClipBundle | None = None
    q16_prompts: str | None = None  # a file of Q16 prompt embeddings, or "random" (tests only)


@dataclass(frozen=True)
class ClassifierEntry:
    """How to build one classifier, and its threshold unless the settings change it."""

    build: Callable[[ClassifierInputs], SafetyClassifier]
    default_threshold: float


def _q16(inputs: ClassifierInputs) -> SafetyClassifier:
    if inputs.clip is None:
        raise InputError("Q16 needs a CLIP model", hint="pass --clip-model (ViT-L/14)")
    if inputs.q16_prompts is None:
        raise InputError(
            "Q16 needs its prompt embeddings",
            hint="pass --q16-prompts FILE (.safetensors/.npy/.json; see "
            "safesteer.evaluation.q16 to convert the pickle), or drop q16 from "
            "--classifiers",
        )
    if inputs.q16_prompts == "random":
        return q16.Q16Classifier.random(inputs.clip, seed=inputs.settings.seed)
    return q16.Q16Classifier(
        inputs.clip,
        q16.load_prompt_embeddings(inputs.q16_prompts),
        inputs.threshold,
        prompts_source=inputs.q16_prompts,
    )


CLASSIFIERS: dict[str, ClassifierEntry] = {
    "nudenet": ClassifierEntry(
        lambda o: nudenet.NudeNetClassifier(o.settings.nudenet_labels, o.threshold),
        nudenet.DEFAULT_THRESHOLD,
    ),
    "q16": ClassifierEntry(_q16, q16.DEFAULT_THRESHOLD),
    "open_nsfw": ClassifierEntry(
        lambda o: open_nsfw.OpenNSFWClassifier(o.threshold), open_nsfw.DEFAULT_THRESHOLD
    ),
}


def effective_thresholds(settings: EvaluationSettings) -> dict[str, float]:
    """Every registered classifier's threshold: the settings' override, else its default."""
    unknown = sorted(set(settings.thresholds) - set(CLASSIFIERS))
    if unknown:
        raise InputError(
            f"thresholds for unknown classifiers {unknown}", hint=f"use {', '.join(CLASSIFIERS)}"
        )
    return {
        name: float(settings.thresholds.get(name, entry.default_threshold))
        for name, entry in CLASSIFIERS.items()
    }


def build_classifiers(
    settings: EvaluationSettings, *, clip: ClipBundle | None, q16_prompts: str | None
) -> list[SafetyClassifier]:
    """The classifiers ``settings.classifiers`` enables, in that order."""
    thresholds = effective_thresholds(settings)
    built = []
    for name in settings.classifiers:
        entry = CLASSIFIERS.get(name)
        if entry is None:
            raise InputError(f"unknown classifier {name!r}", hint=f"use {', '.join(CLASSIFIERS)}")
        built.append(entry.build(ClassifierInputs(thresholds[name], settings, clip, q16_prompts)))
    return built


def settings_record(settings: EvaluationSettings) -> dict[str, object]:
    """The settings as the protocol record stores them: each threshold as ``<name>_threshold``.

    (The record's shape predates the registry; keeping it keeps earlier runs' fingerprints.)
    """
    from dataclasses import asdict

    record = asdict(settings)
    record.pop("thresholds")
    record["alphas"] = [float(a) for a in settings.alphas]
    for name, value in effective_thresholds(settings).items():
        record[f"{name}_threshold"] = value
    return record
