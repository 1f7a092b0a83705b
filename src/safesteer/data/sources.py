"""Prompt sources by name: a spec (file, named set or ``hf:`` data set) → texts + a label.

``safesteer build --pairs SPEC --anchors SPEC`` and the library take the same specs. Each
resolves to a :class:`Resolved`: the items (:class:`~safesteer.data.pairs.PromptPair` or
benign texts), the spec as given and a **label** saying what the data is — ``ours`` or its
source and licence — which the pack's provenance records.

**Pairs** (:func:`resolve_pairs`):

======================  =====================================================================
spec                    pairs
======================  =====================================================================
``safesteer``           SafeSteerDataset (MIT), the *direction* part of its train split
                        (:func:`safesteer.data.partitions.pair_parts`; 1,452 pairs)
``safesteer:<part>``    ``train`` / ``test`` (the official splits: 2,070 / 230), or a part:
                        ``direction``, ``gatecal``, ``probe``
``ours``                our own pairs, ``train`` split (``ours:judge``, ``ours:test``,
                        ``ours:all``)
a file path             JSON lines ``{"safe", "unsafe", "category"[, "subcategory"]}``
======================  =====================================================================

**Anchors** (:func:`resolve_anchors`; each named set is its ``fit`` part of
:func:`safesteer.data.partitions.benign_parts`, ``<name>:<part>`` picks another part):

===================  ========================================================================
spec                 anchors
===================  ========================================================================
``all``              the fit parts of ``safesteer-safe``, ``parti``, ``compbench``, ``geneval``
                     and ``ours`` (the map/covariance part of every offline benign set)
``parti``            PartiPrompts (Apache-2.0)
``compbench``        T2I-CompBench (MIT)
``geneval``          GenEval (MIT)
``safesteer-safe``   the safe halves of SafeSteerDataset's direction pairs (MIT)
``ours``             our generated captions and sentences (Apache-2.0, ours)
``imagereward:test`` ImageReward's 100 typed prompts (test part only)
a file path          any prompt file :func:`safesteer.data.loaders.load_prompts` reads
``hf:<dataset>``     a Hugging Face hub data set (below)
===================  ========================================================================

Named sets and ``hf:`` sets join with commas (``parti,geneval``, ``all,hf:coco``); a file
stands alone. Any named or ``hf:`` part takes a ``[:N]`` suffix: at most ``N`` items, evenly
spaced over the set (item ``⌊i·len/N⌋`` for ``i < N``; order kept), e.g. ``all[:2000]``. A
name wins over a file of the same name: write ``./all`` for such a file.

**Hub data sets**: ``hf:<dataset id>[:<config>][@<revision>][/<split>][#<text column>]``,
e.g. ``hf:Salesforce/wikitext:wikitext-103-raw-v1/train#text``. The id is ``owner/name``
(a third ``/part`` is the split); the revision a branch, tag or commit without ``/``; the
split defaults to ``train``; the column to the first of ``text``, ``prompt``, ``caption``,
``sentence``, ``caption1`` present (or the only text column). Shortcuts for the paper's
anchors (:data:`HF_PRESETS`; their fields can be overridden, e.g. ``hf:coco#caption2``):
``hf:wikitext`` (WikiText-2 raw, CC BY-SA 3.0; blank lines and ``= headings =`` dropped),
``hf:coco`` (COCO captions, CC BY 4.0), ``hf:flickr`` (Flickr30k captions, Flickr terms:
non-commercial research). A hub set is downloaded once with ``datasets`` (``pip install
'safesteer[hf]'``), its texts written under the safesteer cache
(``$SAFESTEER_CACHE/datasets/hf/``) as JSON lines with the file's sha256 in a sidecar; a
later run reads the cache (offline too) and refuses a copy whose sha256 no longer matches.
Without a cached copy and without the hub (``HF_HUB_OFFLINE=1``, no network) it fails at once
with ``error: ... (fix: ...)`` — before any model loads.

Example:
    >>> pairs = resolve_pairs("safesteer")
    >>> len(pairs), pairs.label.split(";")[0]
    (1452, 'SafeSteerDataset (MIT')
    >>> anchors = resolve_anchors("parti,geneval[:100]")
    >>> len(anchors), anchors.licences
    (917, {'PartiPrompts': 'Apache-2.0', 'GenEval': 'MIT'})
    >>> parse_hf("hf:coco[:500]").repo_id
    'sentence-transformers/coco-captions'
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

from safesteer.data.anchors import ANCHORS_SOURCE, read_anchors
from safesteer.data.pairs import PAIRS_SOURCE, PromptPair, load_pairs, read_pairs
from safesteer.data.partitions import DEFAULT_ANCHOR_SETS
from safesteer.data.real import REAL_SETS
from safesteer.errors import InputError
from safesteer.user_cache import user_cache_root

T = TypeVar("T")

OURS_LICENCE = "Apache-2.0 (safesteer's own)"
#: named pair sets (``safesteer`` = ``safesteer:direction``; ``ours`` = ``ours:train``)
PAIR_NAMES: tuple[str, ...] = (
    "safesteer",
    "safesteer:direction",
    "safesteer:gatecal",
    "safesteer:probe",
    "safesteer:train",
    "safesteer:test",
    "ours",
    "ours:train",
    "ours:judge",
    "ours:test",
    "ours:all",
)
#: named anchor sets → the set of :func:`~safesteer.data.partitions.benign_parts`
ANCHOR_SETS: dict[str, str] = {
    "safesteer-safe": "sspairs",
    "parti": "parti",
    "compbench": "compbench",
    "geneval": "geneval",
    "imagereward": "imagereward",
    "ours": "ours",
}
#: what ``all`` joins (each set's fit part): the library's default anchor sets, by their names here
ALL_ANCHORS: tuple[str, ...] = tuple(
    next(name for name, key in ANCHOR_SETS.items() if key == default)
    for default in DEFAULT_ANCHOR_SETS
)
DEFAULT_PAIRS = "safesteer"
DEFAULT_ANCHORS = "all"
#: how builds group pairs into category directions (``--per``)
GROUPINGS: tuple[str, ...] = ("category", "subcategory")
HF_DEFAULT_SPLIT = "train"
HF_TEXT_COLUMNS: tuple[str, ...] = ("text", "prompt", "caption", "sentence", "caption1")
HUB_TIMEOUT_S = 10.0
_LIMIT = re.compile(r"^(?P<body>.*?)\[:(?P<n>\d+)\]$")
_NAME = re.compile(r"^[a-z][a-z0-9-]*(?::[a-z]+)?$")
_HF = re.compile(
    r"^hf:(?P<id>[A-Za-z0-9][\w.-]*(?:/[A-Za-z0-9][\w.-]*)?)"
    r"(?::(?P<config>[\w.-]+))?(?:@(?P<revision>[\w.-]+))?(?:/(?P<split>[\w.-]+))?"
    r"(?:#(?P<column>[^#\[\],]+))?$"
)
HF_SYNTAX = "hf:<owner/name>[:<config>][@<revision>][/<split>][#<text column>][[:N]]"


# ---- what a spec resolves to ----------------------------------------------------------------
@dataclass(frozen=True)
class Resolved(Generic[T]):
    """The items of a spec, the spec as given, and what the data is.

    ``label`` names each part (``ours``, or title, licence and source, and the part used);
    ``licences`` maps each data set's title to its licence (the model card lists them);
    ``groups`` the set each item comes from (named and hub sets; ``None`` for a file), which the
    builds' gates use to hold their false-trigger rate on every set (``"set-max"``).
    """

    items: tuple[T, ...]
    spec: str
    label: str
    licences: dict[str, str] = field(default_factory=dict)
    groups: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.items)

    def provenance(self, role: str) -> dict[str, Any]:
        """``{<role>_spec, <role>_label}`` for a pack's provenance (role: pairs or anchors)."""
        return {f"{role}_spec": self.spec, f"{role}_label": self.label}


def _limited(items: Sequence[T], n: int | None) -> tuple[T, ...]:
    """At most ``n`` items evenly spaced over ``items`` (``⌊i·len/n⌋``), order kept."""
    if n is None or n >= len(items):
        return tuple(items)
    return tuple(items[i * len(items) // n] for i in range(n))


def _split_limit(part: str, what: str) -> tuple[str, int | None]:
    m = _LIMIT.match(part)
    if not m:
        return part, None
    n = int(m.group("n"))
    if n < 1:
        raise InputError(f"{what} {part!r} asks for 0 items", hint="use [:N] with N ≥ 1")
    return m.group("body"), n


def _join(spec: str, parts: Sequence[Resolved[T]]) -> Resolved[T]:
    items: list[T] = []
    licences: dict[str, str] = {}
    groups: list[str] | None = []
    for p in parts:
        items += p.items
        licences.update(p.licences)
        groups = None if groups is None or p.groups is None else [*groups, *p.groups]
    label = " + ".join(p.label for p in parts)
    return Resolved(tuple(items), spec, label, licences, None if groups is None else tuple(groups))


# ---- parsing (cheap: no files read beyond a check, no network) ------------------------------
@dataclass(frozen=True)
class HfRef:
    """A parsed ``hf:`` spec (:data:`HF_SYNTAX`); ``preset`` names a shortcut it came from."""

    repo_id: str
    config: str | None = None
    revision: str | None = None
    split: str = HF_DEFAULT_SPLIT
    column: str | None = None
    limit: int | None = None
    preset: str | None = None
    licence: str | None = None
    clean: str | None = None  # "wikitext": drop blank lines and "= heading =" lines

    def canonical(self) -> str:
        """The spec written out in full (the cache key; ``[:N]`` is applied after the cache)."""
        out = f"hf:{self.repo_id}"
        out += f":{self.config}" if self.config else ""
        out += f"@{self.revision}" if self.revision else ""
        return out + f"/{self.split}" + (f"#{self.column}" if self.column else "")


#: shortcuts for the paper's anchor sets (WikiText, COCO and Flickr captions), text only
HF_PRESETS: dict[str, HfRef] = {
    "wikitext": HfRef(
        "Salesforce/wikitext",
        "wikitext-2-raw-v1",
        column="text",
        preset="wikitext",
        licence="CC BY-SA 3.0 (WikiText, from Wikipedia)",
        clean="wikitext",
    ),
    "coco": HfRef(
        "sentence-transformers/coco-captions",
        "pair",
        column="caption1",
        preset="coco",
        licence="CC BY 4.0 (COCO caption annotations)",
    ),
    "flickr": HfRef(
        "sentence-transformers/flickr30k-captions",
        "pair",
        column="caption1",
        preset="flickr",
        licence="Flickr30k terms: non-commercial research and education",
    ),
}


def parse_hf(text: str) -> HfRef:
    """Parse an ``hf:`` spec; presets fill what the spec leaves out.

    Example:
        >>> r = parse_hf("hf:Salesforce/wikitext:wikitext-103-raw-v1@main/validation#text[:9]")
        >>> (r.repo_id, r.config, r.revision, r.split, r.column, r.limit)
        ('Salesforce/wikitext', 'wikitext-103-raw-v1', 'main', 'validation', 'text', 9)
        >>> parse_hf("hf:owner/name/test").split
        'test'
    """
    body, limit = _split_limit(text, "hub data set")
    m = _HF.match(body)
    if not m:
        raise InputError(
            f"{text!r} is not a hub data set spec",
            hint=f"write {HF_SYNTAX}, e.g. hf:Salesforce/wikitext:wikitext-2-raw-v1/train#text, "
            f"or a shortcut: {', '.join('hf:' + k for k in HF_PRESETS)}",
        )
    g = m.groupdict()
    preset = HF_PRESETS.get(g["id"])
    base = preset if preset is not None else HfRef(g["id"])
    return replace(
        base,
        config=g["config"] or base.config,
        revision=g["revision"] or base.revision,
        split=g["split"] or base.split,
        column=g["column"].strip() if g["column"] else base.column,
        limit=limit,
    )


def _names_of(text: str) -> list[str]:
    parts = [p.strip() for p in text.split(",")]
    if not all(parts):
        raise InputError(f"{text!r} has an empty part", hint="e.g. parti,geneval (no ,,)")
    return parts


def _looks_named(text: str) -> bool:
    """Named sets / hf: parts joined by commas (not a path; a file with a comma stays a file)."""
    if text.startswith("hf:"):
        return True
    if "," in text:
        return not Path(text).is_file()
    return bool(_NAME.match(_split_limit(text, "set")[0]))


def _check_name(part: str, role: str) -> None:
    name, _ = _split_limit(part, f"{role} set")
    if name.startswith("hf:"):
        if role == "pairs":
            raise InputError(
                f"pairs {part!r}: hub data sets are for --anchors",
                hint="give pairs as a named set (safesteer, ours) or a JSON-lines file",
            )
        parse_hf(part)
        return
    if role == "pairs":
        if name not in PAIR_NAMES:
            raise InputError(
                f"unknown pairs set {name!r}",
                hint=f"use one of {', '.join(PAIR_NAMES)}, or a pairs file path "
                f"(./{name} for a file of that name)",
            )
        return
    from safesteer.data.partitions import BENIGN_PARTS

    base, _, part_name = name.partition(":")
    if base not in (*ANCHOR_SETS, "all"):
        raise InputError(
            f"unknown anchors set {name!r}",
            hint=f"use all, {', '.join(ANCHOR_SETS)} (optionally :<part>), hf:<dataset>, "
            f"or a prompt file path (./{name} for a file of that name)",
        )
    if part_name and part_name not in BENIGN_PARTS:
        raise InputError(
            f"anchors set {name!r}: unknown part {part_name!r}",
            hint=f"use one of {', '.join(BENIGN_PARTS)}",
        )
    if base == "imagereward" and part_name not in ("", "test"):
        raise InputError(f"{name!r}: ImageReward has only a test part", hint="imagereward:test")


def check_spec(text: str | Path, role: str) -> str:
    """Check a spec's syntax (names known, ``hf:`` well formed, a file present and readable);
    nothing is downloaded. ``role``: ``"pairs"`` or ``"anchors"``. Returns the spec."""
    from safesteer.validation import check_input_file, read_utf8

    spec = str(text).strip()
    if not spec:
        raise InputError(f"empty {role} spec", hint="give a named set, hf:<dataset> or a file")
    if _looks_named(spec):
        for part in _names_of(spec):
            _check_name(part, role)
        return spec
    if role == "anchors" and Path(spec).is_dir():  # a data set saved with save_to_disk
        return spec
    p = check_input_file(spec, "file" if role == "pairs" else "prompt file")
    if role == "pairs" or p.suffix.lower() in (".txt", ".csv", ".jsonl", ".json", ".tsv"):
        read_utf8(p, "file" if role == "pairs" else "prompt file")
    return spec


def _arg(role: str) -> Callable[[str], str]:
    from safesteer import validation as v

    return v.arg_type(lambda t: check_spec(t, role), f"{role}_spec")


#: argparse types (``--pairs``, ``--anchors``): the syntax checks of :func:`check_spec`
pairs_spec = _arg("pairs")
anchors_spec = _arg("anchors")


# ---- named sets -----------------------------------------------------------------------------
def _named_pairs(name: str) -> Resolved[PromptPair]:
    from safesteer.data.partitions import pair_parts
    from safesteer.data.real import safesteer_pairs

    base, _, part = name.partition(":")
    if base == "ours":
        split = part or "train"
        return Resolved(
            tuple(load_pairs(split)),
            name,
            f"ours ({PAIRS_SOURCE}), {split} split",
            {"ours": OURS_LICENCE},
        )
    real = REAL_SETS["safesteer"]
    part = part or "direction"
    if part in ("train", "test"):
        pairs = tuple(safesteer_pairs(part))
        what = f"official {part} split"
    else:
        pairs = pair_parts()[part].pairs
        what = f"{part} part of the train split"
    return Resolved(pairs, name, f"{real.label()}, {what}", {real.title: real.licence})


def _named_anchors(name: str) -> Resolved[str]:
    from safesteer.data.partitions import benign_parts

    base, _, part = name.partition(":")
    if base == "all":
        return _join(name, [_named_anchors(n + (f":{part}" if part else "")) for n in ALL_ANCHORS])
    key = ANCHOR_SETS[base]
    part = part or ("test" if key == "imagereward" else "fit")
    texts = benign_parts()[key][part]
    if key == "ours":
        label = f"ours ({ANCHORS_SOURCE}), {part} part"
        return Resolved(texts, name, label, {"ours": OURS_LICENCE}, (key,) * len(texts))
    real = REAL_SETS["safesteer" if key == "sspairs" else key]
    title = "SafeSteerDataset safe halves" if key == "sspairs" else real.title
    label = f"{title} ({real.licence}; {real.source}), {part} part"
    return Resolved(texts, name, label, {real.title: real.licence}, (key,) * len(texts))


# ---- hub data sets --------------------------------------------------------------------------
def cache_root() -> Path:
    """Where hub data sets are cached: ``$SAFESTEER_CACHE/datasets/hf`` (default
    ``~/.cache/safesteer``: :func:`safesteer.user_cache.user_cache_root`)."""
    return user_cache_root() / "datasets" / "hf"


def cache_paths(ref: HfRef) -> tuple[Path, Path]:
    """``(<key>.jsonl, <key>.meta.json)`` of a hub set in :func:`cache_root`."""
    canonical = ref.canonical() + (f" clean={ref.clean}" if ref.clean else "")
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", ref.repo_id)[:60]
    stem = cache_root() / f"{slug}-{digest}"
    return stem.with_suffix(".jsonl"), stem.with_suffix(".meta.json")


@dataclass(frozen=True)
class HubDownload:
    """What :func:`hub_download` fetched: the rows (a ``datasets.Dataset`` or any object with
    ``column_names`` and iterable rows), the resolved revision and the card's licence."""

    rows: Any
    revision: str
    licence: str | None = None


def _offline() -> bool:
    from safesteer.hub import hub_offline

    flag = os.environ.get("HF_DATASETS_OFFLINE", "").strip().lower()
    return hub_offline() or flag in ("1", "true", "yes", "on")


def _no_hub(ref: HfRef, why: str) -> InputError:
    return InputError(
        f"hub data set {ref.canonical()} is not in the cache ({cache_root()}) and {why}",
        hint="download it once where the hub is reachable (cached copies are reused offline), "
        "or use a named set (all, parti, …) or a prompt file",
    )


def hub_download(ref: HfRef) -> HubDownload:
    """Ask the hub for the data set's revision, then load the split with ``datasets``: the
    only function here that uses the network. Without a hub it fails at once: offline flags,
    then :func:`safesteer.hub.hub_reachable` (a 2 s handshake), then a
    :data:`HUB_TIMEOUT_S` limit on the revision request."""
    from safesteer.hub import hub_reachable

    if _offline():
        raise _no_hub(ref, "the hub is switched off (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE)")
    if not hub_reachable():
        raise _no_hub(ref, "the hub cannot be reached (no answer within 2 s)")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        GatedRepoError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None)
        info = api.dataset_info(ref.repo_id, revision=ref.revision, timeout=HUB_TIMEOUT_S)
    except GatedRepoError:
        raise InputError(
            f"hub data set {ref.repo_id} is gated", hint="accept its terms and log in (hf auth)"
        ) from None
    except RevisionNotFoundError:
        raise InputError(
            f"hub data set {ref.repo_id} has no revision {ref.revision!r}",
            hint="use a branch, tag or commit it has",
        ) from None
    except RepositoryNotFoundError:
        raise InputError(
            f"no data set {ref.repo_id!r} on the hub", hint=f"check the id ({HF_SYNTAX})"
        ) from None
    except Exception as exc:  # httpx/requests/OS errors: no network, DNS, proxy…
        raise _no_hub(ref, f"the hub cannot be reached ({type(exc).__name__})") from None
    try:
        import datasets
    except ImportError:
        raise InputError(
            f"downloading {ref.canonical()} needs `datasets`", hint="pip install 'safesteer[hf]'"
        ) from None
    try:
        rows = datasets.load_dataset(ref.repo_id, ref.config, revision=info.sha, split=ref.split)
    except Exception as exc:  # missing config/split, format errors
        raise InputError(
            f"cannot load {ref.canonical()} ({str(exc).splitlines()[0][:200]})",
            hint="check the config and split on the data set's page",
        ) from None
    card = getattr(info, "card_data", None)
    licence = getattr(card, "license", None) if card is not None else None
    return HubDownload(rows, str(info.sha), None if licence is None else str(licence))


def _pick_column(ref: HfRef, columns: Sequence[str], rows: Any) -> str:
    if ref.column is not None:
        if ref.column not in columns:
            raise InputError(
                f"{ref.canonical()} has no column {ref.column!r} (columns: {list(columns)})",
                hint="name the text column with #<column>",
            )
        return ref.column
    for name in HF_TEXT_COLUMNS:
        if name in columns:
            return name
    features = getattr(rows, "features", None) or {}
    text_cols = [c for c in columns if getattr(features.get(c), "dtype", None) == "string"]
    if len(text_cols) == 1:
        return text_cols[0]
    raise InputError(
        f"{ref.canonical()}: which column holds the text? (columns: {list(columns)})",
        hint=f"add #<column>, e.g. {ref.canonical()}#{(text_cols or list(columns) or ['text'])[0]}",
    )


def _clean(values: Sequence[Any], how: str | None) -> list[str]:
    """Strings stripped, blanks (wikitext: also ``= headings =``) dropped, de-duplicated in
    order; a list of strings (several captions per image) gives each of them."""
    out: dict[str, None] = {}
    flat = (t for v in values for t in (v if isinstance(v, list | tuple) else [v]))
    for t in flat:
        if not isinstance(t, str):
            continue
        s = t.strip()
        if not s or (how == "wikitext" and s.startswith("=")):
            continue
        out.setdefault(s, None)
    return list(out)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_cache(ref: HfRef) -> tuple[list[str], dict[str, Any]] | None:
    data, meta_path = cache_paths(ref)
    if not (data.is_file() and meta_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text("utf-8"))
        expected = str(meta["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        meta, expected = {}, ""
    if not expected or _sha256(data) != expected:
        raise InputError(
            f"the cached copy of {ref.canonical()} ({data}) is damaged: its sha256 does not "
            "match the one recorded when it was written",
            hint=f"delete {data} and {meta_path} to download it again",
        )
    texts = [json.loads(line)["text"] for line in data.read_text("utf-8").splitlines() if line]
    return texts, meta


def _write_cache(ref: HfRef, texts: Sequence[str], got: HubDownload, column: str) -> dict[str, Any]:
    from safesteer.atomic import write_json_atomic, write_text_atomic

    data, meta_path = cache_paths(ref)
    body = "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts)
    write_text_atomic(data, body)
    meta = {
        "spec": ref.canonical(),
        "repo_id": ref.repo_id,
        "config": ref.config,
        "revision_asked": ref.revision,
        "revision": got.revision,
        "split": ref.split,
        "column": column,
        "clean": ref.clean,
        "licence": ref.licence or got.licence,
        "n": len(texts),
        "sha256": hashlib.sha256(body.encode("utf-8")).hexdigest(),
    }
    write_json_atomic(meta_path, meta)  # after the data: no meta, no reuse
    return meta


def hub_texts(ref: HfRef) -> tuple[list[str], dict[str, Any]]:
    """All texts of a hub set (cleaned, de-duplicated, in order) and the cache record; read
    from the cache when present (integrity checked), else downloaded and cached."""
    cached = _read_cache(ref)
    if cached is not None:
        return cached
    got = hub_download(ref)
    columns = list(getattr(got.rows, "column_names", None) or [])
    column = _pick_column(ref, columns, got.rows)
    values = got.rows[column] if hasattr(got.rows, "column_names") else []
    texts = _clean(list(values), ref.clean)
    if not texts:
        raise InputError(f"{ref.canonical()} has no texts in column {column!r}", hint="#<column>")
    return texts, _write_cache(ref, texts, got, column)


def _hub_anchors(part: str) -> Resolved[str]:
    ref = parse_hf(part)
    texts, meta = hub_texts(ref)
    licence = str(meta.get("licence") or "licence not stated on the hub card")
    items = _limited(texts, ref.limit)
    label = (
        f"{ref.canonical()} at revision {str(meta.get('revision', '?'))[:12]}, column "
        f"{meta.get('column')!r} ({licence}; Hugging Face hub)"
    )
    if ref.limit is not None:
        label += f", {len(items)} of {len(texts)}"
    return Resolved(items, part, label, {ref.repo_id: licence}, (ref.repo_id,) * len(items))


# ---- resolution ---------------------------------------------------------------------------
def _resolve_part(part: str, role: str) -> Resolved[Any]:
    name, limit = _split_limit(part, f"{role} set")
    if name.startswith("hf:"):
        return _hub_anchors(part)
    got: Resolved[Any] = _named_pairs(name) if role == "pairs" else _named_anchors(name)
    if limit is None:
        return got
    items = _limited(got.items, limit)
    groups = None if got.groups is None else _limited(got.groups, limit)
    label = f"{got.label}, {len(items)} of {len(got)}"
    return Resolved(items, part, label, got.licences, groups)


def _resolve(spec: str | Path, role: str) -> Resolved[Any]:
    text = check_spec(spec, role)
    if _looks_named(text):
        return _join(text, [_resolve_part(p, role) for p in _names_of(text)])
    if role == "pairs":
        items: tuple[Any, ...] = tuple(read_pairs(text))
    else:
        items = tuple(read_anchors(text))
    return Resolved(items, text, f"file {text} (given by the user)", {})


def resolve_pairs(spec: str | Path | None = None) -> Resolved[PromptPair]:
    """Pairs of a spec (module docstring); ``None``: :data:`DEFAULT_PAIRS`."""
    return _resolve(DEFAULT_PAIRS if spec is None else spec, "pairs")


def resolve_anchors(spec: str | Path | None = None) -> Resolved[str]:
    """Benign anchor texts of a spec (module docstring); ``None``: :data:`DEFAULT_ANCHORS`."""
    return _resolve(DEFAULT_ANCHORS if spec is None else spec, "anchors")


# ---- grouping pairs into directions -------------------------------------------------------
def subcategory_key(subcategory: str) -> str:
    """A subcategory as a direction name: ``"Drug-related crime"`` → ``"drug_related_crime"``."""
    return re.sub(r"[^a-z0-9]+", "_", subcategory.lower()).strip("_")


def group_pairs(
    pairs: Sequence[PromptPair], per: str = "category"
) -> tuple[list[PromptPair], dict[str, str]]:
    """Pairs with ``category`` set to the group a direction is fitted per, and group → category.

    ``per="category"`` keeps them; ``"subcategory"`` names each pair's group by its
    :func:`subcategory_key` (23 for SafeSteerDataset), so the builds fit one direction (and
    one gate threshold) per subcategory: ``v_g = mean_{i∈g}[h(x_i⁺) − h(x_i⁻)]``.

    Example:
        >>> grouped, parents = group_pairs([PromptPair("a", "b", "violence", "Self-harm")],
        ...                                "subcategory")
        >>> grouped[0].category, parents
        ('self_harm', {'self_harm': 'violence'})
    """
    if per not in GROUPINGS:
        raise InputError(f"unknown grouping {per!r}", hint=f"use one of {', '.join(GROUPINGS)}")
    if per == "category":
        return list(pairs), {p.category: p.category for p in pairs}
    missing = sum(1 for p in pairs if not p.subcategory)
    if missing:
        raise InputError(
            f"{missing} of {len(pairs)} pairs have no subcategory, so directions per subcategory "
            "cannot be fitted",
            hint='use SafeSteerDataset pairs (--pairs safesteer), add "subcategory" to every '
            "line of the pairs file, or --per category",
        )
    parents: dict[str, str] = {}
    grouped = []
    for p in pairs:
        key = subcategory_key(p.subcategory)
        if parents.setdefault(key, p.category) != p.category:
            raise InputError(
                f"subcategory {p.subcategory!r} appears under two categories "
                f"({parents[key]}, {p.category})",
                hint="give each subcategory one category",
            )
        grouped.append(replace(p, category=key))
    return grouped, parents


__all__ = [
    "ALL_ANCHORS",
    "ANCHOR_SETS",
    "DEFAULT_ANCHORS",
    "DEFAULT_PAIRS",
    "GROUPINGS",
    "HF_PRESETS",
    "HF_SYNTAX",
    "PAIR_NAMES",
    "HfRef",
    "HubDownload",
    "Resolved",
    "anchors_spec",
    "cache_paths",
    "cache_root",
    "check_spec",
    "group_pairs",
    "hub_download",
    "hub_texts",
    "pairs_spec",
    "parse_hf",
    "resolve_anchors",
    "resolve_pairs",
    "subcategory_key",
]
