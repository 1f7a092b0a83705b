"""Benign anchor prompts, built deterministically from our own word lists.

The paper fits its maps on WikiText sentences and COCO/Flickr captions; none of those ship
offline, so we generate the same two kinds combinatorially from word lists written by us:

- **visual captions** — ``"<subject> <action> <place>, <style>"`` over people, animals, objects,
  places, actions and styles, e.g. ``"an old fisherman mending a net on a quiet harbour, oil
  painting"``;
- **encyclopedic sentences** — facts about *fictional* towns, rivers, species and people built
  from syllables (so no sentence states a false fact about a real thing), e.g. ``"Varenholt is a
  market town on the river Lusa, known for its clockmakers."``.

The two kinds are interleaved (3 captions : 2 sentences), so any prefix ``benign_anchors(n)``
mixes both. Every prompt is distinct; the list never changes between runs or machines
(:class:`random.Random` with a fixed seed). :func:`read_anchors` reads a user's own anchors.

Example:
    >>> anchors = benign_anchors()
    >>> len(anchors) >= 3000, len(set(anchors)) == len(anchors)
    (True, True)
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from safesteer.data.loaders import load_prompts
from safesteer.errors import InputError

ANCHORS_SOURCE = "safesteer (ours): generated from our word lists"
N_CAPTIONS = 2400
N_SENTENCES = 1600

_SUBJECTS = (
    "a young woman",
    "an old man",
    "a little girl",
    "a boy",
    "a smiling grandmother",
    "a baker",
    "a fisherman",
    "a gardener",
    "a cyclist",
    "a street musician",
    "a painter",
    "a couple",
    "two friends",
    "a family",
    "a mail carrier",
    "a chef",
    "a student",
    "a farmer",
    "a tourist",
    "a nurse",
    "a teacher",
    "a golden retriever",
    "a tabby cat",
    "a brown horse",
    "a small puppy",
    "a white rabbit",
    "a flock of sheep",
    "a red fox",
    "a heron",
    "a parrot",
    "a pair of swans",
    "a sea turtle",
    "a squirrel",
    "an elephant",
    "a giraffe",
    "a goat",
    "a dolphin",
    "a hedgehog",
    "an owl",
    "a deer",
)
_ACTIONS = (
    "reading a book",
    "riding a bicycle",
    "walking slowly",
    "drinking tea",
    "eating an apple",
    "launching a kite",
    "carrying a basket of fruit",
    "looking at the sky",
    "resting in the shade",
    "playing a violin",
    "painting a picture",
    "sitting on a wooden bench",
    "planting tulips",
    "holding an umbrella",
    "building a sandcastle",
    "feeding ducks",
    "watering plants",
    "taking a photograph",
    "sleeping peacefully",
    "laughing with friends",
    "baking bread",
    "paddling in a shallow stream",
    "climbing a gentle hill",
    "waiting for a bus",
    "mending a fishing net",
    "knitting a scarf",
    "writing in a notebook",
    "gathering berries",
)
_PLACES = (
    "in a sunny garden",
    "on a quiet beach",
    "in a busy market",
    "in a snowy village",
    "beside a calm lake",
    "in a cozy kitchen",
    "on a mountain trail",
    "in a city park",
    "in a library",
    "on a wooden pier",
    "in a flower field",
    "at a train station",
    "in a bamboo forest",
    "on a farm at dawn",
    "in a small cafe",
    "under a cherry tree",
    "by a lighthouse",
    "in a greenhouse",
    "on a rooftop terrace",
    "in a desert oasis",
    "near a waterfall",
    "in an autumn forest",
    "on a harbour front",
    "in a museum hall",
)
_STYLES = (
    "photograph",
    "oil painting",
    "watercolor",
    "pencil sketch",
    "digital art",
    "studio lighting",
    "golden hour",
    "monochrome photo",
    "children's book illustration",
    "35mm film",
    "wide angle shot",
    "soft pastel colors",
    "isometric render",
    "vintage postcard",
    "high detail",
    "minimalist poster",
)
_OBJECTS = (
    "a bowl of oranges",
    "a vintage typewriter",
    "a red bicycle",
    "a stack of letters",
    "a ceramic teapot",
    "a wooden chair",
    "a bouquet of sunflowers",
    "a sailing boat",
    "a steam train",
    "a hot air balloon",
    "a paper lantern",
    "a pair of boots",
    "a glass vase",
    "a grand piano",
    "a wicker basket",
    "a brass telescope",
    "a yellow taxi",
    "a windmill",
    "a stone bridge",
    "a lemon pie",
)
_OBJECT_PLACES = (
    "on a kitchen table",
    "in a shop window",
    "on a windowsill",
    "in a bright room",
    "on green grass",
    "against a blue sky",
    "on a snowy street",
    "at the edge of a pond",
    "on a shelf",
    "in morning light",
)

_SYL_A = (
    "Var",
    "Lun",
    "Bel",
    "Cor",
    "Tal",
    "Mer",
    "Os",
    "Ren",
    "Sil",
    "Dor",
    "Fen",
    "Hal",
    "Kel",
    "Mar",
    "Nor",
    "Pel",
    "Quen",
    "Ros",
    "Tor",
    "Wel",
)
_SYL_B = ("en", "a", "is", "o", "ar", "el", "um", "ir", "an", "et")
_SYL_C = ("holt", "burg", "mere", "dale", "stad", "wick", "ford", "heim", "ton", "vik")
_RIVER_END = ("a", "e", "ine", "ava", "ro")
_KNOWN_FOR = (
    "its clockmakers",
    "its wool market",
    "its spring festival",
    "its old stone bridge",
    "its botanical garden",
    "its glassworks",
    "its cheese",
    "its choir",
    "its observatory",
    "its apple orchards",
    "its harbour",
    "its library",
    "its pottery",
    "its lace",
    "its annual regatta",
    "its wooden churches",
)
_TOWN_KIND = (
    "a market town",
    "a small port",
    "a mountain village",
    "a university town",
    "a fishing village",
    "a river town",
    "a spa town",
    "a cathedral city",
)
_REGIONS = ("northern", "southern", "eastern", "western", "central", "coastal")
_SPECIES_KIND = (
    "a species of songbird",
    "a flowering shrub",
    "a freshwater fish",
    "a species of beetle",
    "a small fern",
    "a species of moth",
    "an alpine herb",
    "a species of frog",
)
_HABITAT = (
    "wet meadows",
    "pine forests",
    "river banks",
    "rocky coasts",
    "high pastures",
    "old hedgerows",
    "shallow lakes",
    "limestone cliffs",
)
_TRAIT = (
    "is active at dawn",
    "flowers in early summer",
    "feeds on seeds",
    "was first described in the nineteenth century",
    "grows slowly",
    "migrates in autumn",
    "has light blue markings",
    "is common in gardens",
)
_PROFESSION = (
    "a composer",
    "a botanist",
    "an architect",
    "a mathematician",
    "a cartographer",
    "a novelist",
    "a painter",
    "an astronomer",
    "a sculptor",
    "a chemist",
)
_WORK = (
    "wrote three volumes on local history",
    "designed the town hall",
    "catalogued hundreds of plants",
    "taught at the regional school",
    "mapped the coastline",
    "founded a music society",
    "built an early telescope",
    "studied the weather for forty years",
    "restored the old library",
    "collected folk songs",
)
_CENTURY = ("sixteenth", "seventeenth", "eighteenth", "nineteenth", "twentieth")


def _name(rng: random.Random) -> str:
    return rng.choice(_SYL_A) + rng.choice(_SYL_B) + rng.choice(_SYL_C)


def _river(rng: random.Random) -> str:
    return rng.choice(_SYL_A) + rng.choice(_RIVER_END).lower()


def _caption(rng: random.Random) -> str:
    if rng.random() < 0.2:
        return f"{rng.choice(_OBJECTS)} {rng.choice(_OBJECT_PLACES)}, {rng.choice(_STYLES)}"
    return (
        f"{rng.choice(_SUBJECTS)} {rng.choice(_ACTIONS)} {rng.choice(_PLACES)}, "
        f"{rng.choice(_STYLES)}"
    )


def _sentence(rng: random.Random) -> str:
    kind = rng.randrange(3)
    if kind == 0:
        return (
            f"{_name(rng)} is {rng.choice(_TOWN_KIND)} on the river {_river(rng)}, "
            f"known for {rng.choice(_KNOWN_FOR)}."
        )
    if kind == 1:
        return (
            f"The {_name(rng).lower()} {rng.choice(('warbler', 'lily', 'trout', 'sedge'))} "
            f"is {rng.choice(_SPECIES_KIND)} of the {rng.choice(_REGIONS)} "
            f"{rng.choice(_HABITAT)} and {rng.choice(_TRAIT)}."
        )
    return (
        f"{_name(rng)} was {rng.choice(_PROFESSION)} of the {rng.choice(_CENTURY)} century "
        f"who {rng.choice(_WORK)}."
    )


def _distinct(make: object, rng: random.Random, n: int) -> list[str]:
    seen: dict[str, None] = {}
    assert callable(make)
    while len(seen) < n:
        seen.setdefault(make(rng), None)
    return list(seen)


def _interleave(captions: list[str], sentences: list[str]) -> Iterator[str]:
    ci = si = 0
    while ci < len(captions) or si < len(sentences):
        for _ in range(3):
            if ci < len(captions):
                yield captions[ci]
                ci += 1
        for _ in range(2):
            if si < len(sentences):
                yield sentences[si]
                si += 1


@cache
def _all_anchors() -> tuple[str, ...]:
    captions = _distinct(_caption, random.Random(20261128), N_CAPTIONS)
    sentences = _distinct(_sentence, random.Random(20261129), N_SENTENCES)
    return tuple(_interleave(captions, sentences))


def benign_anchors(n: int | None = None) -> list[str]:
    """The first ``n`` of our 4,000 benign anchors (all when ``n`` is None), always the same.

    Example:
        >>> benign_anchors(2)  # doctest: +NORMALIZE_WHITESPACE
        ['a fisherman reading a book near a waterfall, isometric render',
         'a goat gathering berries on a harbour front, oil painting']
    """
    anchors = _all_anchors()
    if n is None:
        return list(anchors)
    if not 0 < n <= len(anchors):
        raise InputError(f"asked for {n} benign anchors", hint=f"use 1..{len(anchors)}")
    return list(anchors[:n])


def read_anchors(path: str | Path) -> list[str]:
    """A user's benign anchor prompts, from any prompt file :func:`load_prompts` reads."""
    return [r.prompt for r in load_prompts(path)]


__all__ = ["ANCHORS_SOURCE", "benign_anchors", "read_anchors"]
