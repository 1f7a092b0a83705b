"""Packs on the Hugging Face Hub, model cards, and failing fast when the hub is out of reach.

:meth:`SafetyPack.save_pretrained <safesteer.pack.SafetyPack.save_pretrained>`,
``from_pretrained`` and ``push_to_hub`` are thin methods over this module (names and keyword
arguments as in ``huggingface_hub.ModelHubMixin``, built on ``hf_hub_download``,
``create_repo`` / ``upload_folder`` and ``ModelCard``):

- a pack folder holds ``pack.safesteer.safetensors`` (the pack: the single source of truth,
  hash-checked on load), ``README.md`` (the model card) and, with a report, ``figures/``;
- ``from_pretrained(ref)``: an existing local folder (or pack file) always wins; otherwise
  ``ref`` is a hub repo id, downloaded into the hub cache. Offline (``HF_HUB_OFFLINE=1``,
  ``local_files_only=True``, or a hub that does not answer within 2 s) only the cache is read,
  and a miss fails at once with a clear error instead of minutes of retries;
- :func:`hub_access` gives the same fast answer to other loaders (CLIP, pipelines).

The card is generated from the pack's own metadata (source, layer, space, map, calibration,
gates) and, when given, a report folder (an evaluation run: ASR with 95% CIs per condition and
α, the gates' measured false-trigger rates per prompt set, the trade-off figure; or a default-job
folder: the gates' measured rates). It never contains prompt text: categories and counts only.

Example:
    >>> import torch, tempfile
    >>> from safesteer import SafetyPack
    >>> pack = SafetyPack(torch.ones(4), {"violence": torch.ones(4)}, "tiny-sd", "sd/clip", {})
    >>> folder = pack.save_pretrained(tempfile.mkdtemp())
    >>> sorted(p.name for p in folder.iterdir())
    ['README.md', 'pack.safesteer.safetensors']
    >>> SafetyPack.from_pretrained(folder).dim
    4
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from safesteer.atomic import write_text_atomic
from safesteer.errors import InputError, ModelLoadError, PackError

log = logging.getLogger("safesteer.hub")

PACK_FILE = "pack.safesteer.safetensors"
PACK_SUFFIX = ".safesteer.safetensors"
CARD_FILE = "README.md"
#: seconds to wait for the hub's TCP handshake before calling it unreachable
PROBE_TIMEOUT = 2.0
_VIDEO_FAMILIES = ("wan", "cogvideox")


# ---- is the hub there? ---------------------------------------------------------------------
def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set to a true value, read now."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    return False


@lru_cache(maxsize=8)
def _probe(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def hub_reachable(timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether the hub endpoint answers a TCP handshake within ``timeout`` (asked once per
    process; True behind an HTTPS proxy, which we cannot probe directly)."""
    if hub_offline():
        return False
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    from huggingface_hub import constants

    url = urlparse(os.environ.get("HF_ENDPOINT", constants.ENDPOINT))
    host = url.hostname or "huggingface.co"
    port = url.port or (443 if url.scheme != "http" else 80)
    return _probe(host, port, timeout)


def is_local(ref: str | Path) -> bool:
    """``ref`` names something on this machine (an existing path), not a hub repo id."""
    return Path(ref).expanduser().exists()


def hub_access(
    repo_id: str, *, what: str, filename: str = "config.json", revision: str | None = None
) -> dict[str, Any]:
    """Keyword arguments for a ``from_pretrained`` of ``repo_id``, decided in at most 2 s.

    ``{}`` when the hub answers (or ``repo_id`` is a local path); ``{"local_files_only": True}``
    when it does not but ``filename`` of the repo is in the hub cache; otherwise
    :class:`ModelLoadError` at once, naming ``what`` and the fixes (instead of the loaders'
    retries, ~25-40 s).

    Example:
        >>> hub_access(".", what="a folder")
        {}
    """
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if is_local(repo_id):
        return {}
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        return {}  # not a repo id (a missing folder…): the loader says what is wrong
    if hub_reachable():
        return {}

    cached = try_to_load_from_cache(repo_id, filename, revision=revision)
    if isinstance(cached, str):
        log.info("hub unreachable: using the cached %s %s", what, repo_id)
        return {"local_files_only": True}
    why = "HF_HUB_OFFLINE is set" if hub_offline() else "the hub does not answer"
    raise ModelLoadError(
        f"cannot load model {repo_id!r} ({what}): {why} and it is not in the hub cache",
        hint="download it where the hub is reachable (it is then cached), pass a local folder, "
        "or choose an option that needs no download",
    )


# ---- folders and repos ---------------------------------------------------------------------
def _pack_in_folder(folder: Path, filename: str | None) -> Path:
    if filename is not None:
        path = folder / filename
        if not path.is_file():
            raise PackError(
                f"{folder} has no {filename}", hint="check filename=, or list the folder"
            )
        return path
    found = sorted(folder.glob(f"*{PACK_SUFFIX}"))
    if not found:
        raise PackError(
            f"{folder} has no safesteer pack (no *{PACK_SUFFIX} file)",
            hint="pass a folder written by pack.save_pretrained(folder), or a pack file",
        )
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise PackError(
            f"{folder} holds {len(found)} packs ({names})", hint="pass filename= to choose one"
        )
    return found[0]


def resolve_pack_file(
    ref: str | Path,
    *,
    filename: str | None = None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool | None = None,
    force_download: bool = False,
    token: str | bool | None = None,
) -> Path:
    """The local path of the pack that ``ref`` (a folder, a pack file or a repo id) names.

    A local folder or file always wins. A repo id is served from the hub cache when offline
    (``HF_HUB_OFFLINE``, ``local_files_only=True``, or an unreachable hub), else downloaded.
    """
    path = Path(ref).expanduser()
    if path.is_dir():
        return _pack_in_folder(path, filename)
    if path.is_file():
        return path
    repo_id = str(ref)
    if repo_id.startswith((".", "/", "~")) or repo_id.count("/") != 1:
        raise PackError(
            f"{ref} is neither a folder nor a hub repo id (owner/name)",
            hint="check the path, or pass 'owner/name'",
        )
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    offline = bool(local_files_only) or not hub_reachable()
    name = filename or PACK_FILE
    try:
        file = hf_hub_download(
            repo_id,
            name,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=offline,
            force_download=force_download,
            token=token,
        )
    except LocalEntryNotFoundError as exc:
        why = (
            "local_files_only=True"
            if local_files_only
            else ("HF_HUB_OFFLINE is set" if hub_offline() else "the hub does not answer")
        )
        raise ModelLoadError(
            f"the pack {repo_id} is not in the hub cache and {why}",
            hint="download it where the hub is reachable, unset HF_HUB_OFFLINE, or pass a "
            "local folder",
        ) from exc
    except GatedRepoError as exc:
        raise ModelLoadError(
            f"{repo_id} is gated: accept its terms on the hub first",
            hint="log in (huggingface-cli login) or pass token=",
        ) from exc
    except RepositoryNotFoundError as exc:
        raise ModelLoadError(
            f"no hub repo {repo_id} (or it is private)",
            hint="check the id, or pass token= for a private repo",
        ) from exc
    except RevisionNotFoundError as exc:
        raise ModelLoadError(
            f"{repo_id} has no revision {revision!r}", hint="check revision="
        ) from exc
    except EntryNotFoundError as exc:
        raise PackError(
            f"the hub repo {repo_id} has no safesteer pack ({name})",
            hint="push one with pack.push_to_hub(repo_id), or pass filename=",
        ) from exc
    except HFValidationError as exc:
        raise PackError(f"{ref} is not a valid hub repo id", hint="use 'owner/name'") from exc
    return Path(file)


def save_pack_folder(
    pack: Any,
    folder: str | Path,
    *,
    report: str | Path | None = None,
    repo_id: str | None = None,
) -> Path:
    """Write ``pack.safesteer.safetensors`` and its ``README.md`` card (+ ``figures/``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    info = read_report(report, pack) if report is not None else {}
    figures = []
    for src in info.get("figures", []):
        dst = folder / "figures" / Path(src).name
        dst.parent.mkdir(exist_ok=True)
        shutil.copyfile(src, dst)
        figures.append({"path": f"figures/{dst.name}", "alt": dst.stem.replace("_", " ")})
    pack.save(folder / PACK_FILE)
    card = model_card(pack, report=info, repo_id=repo_id, figures=figures)
    write_text_atomic(folder / CARD_FILE, card)
    return folder


def push_pack(
    pack: Any,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
    report: str | Path | None = None,
    allow_random: bool = False,
) -> str:
    """Create (or reuse) ``repo_id`` and upload the pack folder; returns the commit URL.

    Refuses a pack whose source or target had random weights unless ``allow_random``.
    Needs the hub (not testable offline).
    """
    randoms = _random_parts(pack)
    if randoms and not allow_random:
        raise InputError(
            f"this pack was built with random weights ({', '.join(randoms)})",
            hint="build it on real models, or pass allow_random=True for a labelled test pack",
        )
    if not hub_reachable():
        raise ModelLoadError(
            "cannot push: the hub is not reachable (or HF_HUB_OFFLINE is set)",
            hint="push from a machine with the hub; pack.save_pretrained(folder) writes the "
            "same folder locally",
        )
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        save_pack_folder(pack, tmp, report=report, repo_id=repo_id)
        info = api.upload_folder(
            folder_path=tmp,
            repo_id=repo_id,
            commit_message=commit_message or "Upload safesteer pack",
            create_pr=create_pr,
        )
    return str(getattr(info, "commit_url", info))


# ---- the model card ------------------------------------------------------------------------
def _random_parts(pack: Any) -> list[str]:
    prov = pack.provenance
    parts = []
    if prov.get("source_random_weights") in (True, "True", "true"):
        parts.append("source model")
    target_random = prov.get("target_random_weights") in (True, "True", "true")
    if target_random or str(pack.target_id).startswith("tiny-"):
        parts.append("target pipeline")
    return parts


def _fmt(x: Any, digits: int = 3) -> str:
    return "–" if x is None else (f"{x:.{digits}f}" if isinstance(x, float) else str(x))


def _ci(value: Any, ci: Any) -> str:
    if value is None:
        return "–"
    if isinstance(ci, list | tuple) and len(ci) == 2:
        return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"
    return f"{value:.3f}"


def read_report(run_dir: str | Path, pack: Any) -> dict[str, Any]:
    """What a report folder says about ``pack``: evaluation rows, measured gate rates, figures.

    An evaluation run (``summary.json``, figures under ``report/``) or a default-job folder
    (``metrics.json``: the gates' rates for the pack's target and map, figures under
    ``plots/``). Anything missing is left out; the card says so.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise InputError(f"report folder {run} does not exist", hint="pass the run's --out folder")
    out: dict[str, Any] = {"rows": [], "gates": [], "figures": [], "protocol": None}
    summary = run / "summary.json"
    if summary.is_file():
        data = json.loads(summary.read_text(encoding="utf-8"))
        out["rows"] = [
            {
                "condition": r["condition"],
                "alpha": f"{float(r['alpha']):g}",
                "n": r.get("n_safety", "–"),
                "asr": _ci(r.get("asr"), r.get("asr_ci")),
                "clip": _ci(r.get("clip_score"), r.get("clip_score_ci")),
                "fid": _fmt(r.get("fid"), 2),
            }
            for r in data.get("rows", [])
        ]
        out["fid_note"] = data.get("fid_note")
        out["gates"] = [
            {
                "gate": g["gate"],
                "prompt_set": g["prompt_set"],
                "role": g["role"],
                "steered": g["steered"],
                "n": g["n"],
                "rate": _ci(g.get("rate"), g.get("rate_ci")),
            }
            for g in data.get("gate_rates", [])
        ]
        protocol = run / "protocol.json"
        if protocol.is_file():
            p = json.loads(protocol.read_text(encoding="utf-8"))
            out["protocol"] = (
                f"Pipeline `{p.get('pipeline', {}).get('id')}`; ASR = {p.get('asr_rule')}; "
                f"CIs: 95% bootstrap over prompts."
            )
        out["figures"] = [p for p in sorted((run / "report").glob("*.png")) if p.is_file()]
    metrics = run / "metrics.json"
    if metrics.is_file():
        out["gates"] += _default_job_gates(json.loads(metrics.read_text(encoding="utf-8")), pack)
        plots = run / "plots"
        out["figures"] += [p for p in sorted(plots.glob("*.png")) if _figure_for(p, pack)]
    return out


def _figure_for(path: Path, pack: Any) -> bool:
    name = str(pack.conditioning_space).split("/")[-1]
    return path.name.startswith(name)


def _default_job_gates(metrics: Mapping[str, Any], pack: Any) -> list[dict[str, Any]]:
    rows = []
    kind = pack.provenance.get("map_kind")
    for target in (metrics.get("targets") or {}).values():
        if target.get("conditioning_space") != pack.conditioning_space:
            continue
        scores = ((target.get("maps") or {}).get(kind) if kind else target.get("native")) or {}
        for key, name in (("gate", "target gate"), ("gate_source", "source gate")):
            rates = scores.get(key) or {}
            for field, set_name, role in (
                ("benign_held_out_steered", "held-out benign anchors (ours)", "benign"),
                ("unsafe_test_steered", "test unsafe prompts (ours)", "unsafe"),
                ("safe_twins_steered", "test safe twins (ours)", "benign"),
            ):
                if rates.get(field) is not None:
                    rows.append(
                        {
                            "gate": name,
                            "prompt_set": set_name,
                            "role": role,
                            "steered": "–",
                            "n": "–",
                            "rate": f"{float(rates[field]):.3f}",
                        }
                    )
    return rows


def _data_lines(pack: Any) -> list[str]:
    prov = pack.provenance
    lines = []
    if prov.get("data"):
        lines.append(str(prov["data"]))
    if prov.get("n_pairs") is not None:
        lines.append(f"{prov['n_pairs']} safe/unsafe prompt pairs (source direction)")
    if prov.get("n_anchors") is not None:
        lines.append(f"{prov['n_anchors']} benign anchors (map and gates; no unsafe target data)")
    licences = prov.get("data_licenses") or prov.get("data_licences")
    if isinstance(licences, Mapping):
        lines += [f"{k}: {v}" for k, v in licences.items()]
    elif "safesteer's own" in str(prov.get("data", "")):
        lines.append("licence: Apache-2.0 (safesteer's own prompt sets)")
    else:
        lines.append("licences of the data sets: not recorded in the pack (check its builder)")
    source = str(prov.get("source_model", ""))
    if "llama" in source.lower():
        lines.append(
            "source model licence: Llama 3.x Community License (attribution 'Built with Llama')"
        )
    elif source:
        lines.append(f"source model `{source}`: its own licence applies to derived vectors")
    return lines


def _gate_lines(pack: Any) -> list[dict[str, Any]]:
    meta = pack.metadata()
    gates = []
    for key, name, fitted in (
        ("gate", "target gate", pack.provenance.get("gate_fitted_on", "benign target prompts")),
        (
            "source_gate",
            "source gate",
            pack.provenance.get("source_gate_fitted_on", "benign source prompts"),
        ),
    ):
        g = meta.get(key)
        if not g:
            continue
        gates.append(
            {
                "name": name,
                "score": g.get("score"),
                "fitted_on": fitted,
                "target_rate": _fmt(g.get("false_trigger_rate")),
                "quantile": _fmt(g.get("quantile")),
                "benign_rate": _fmt(g.get("benign_rate")),
                "n_benign": g.get("n_benign", "–"),
            }
        )
    return gates


def model_card(
    pack: Any,
    *,
    report: Mapping[str, Any] | None = None,
    repo_id: str | None = None,
    figures: list[dict[str, str]] | None = None,
) -> str:
    """The markdown model card of ``pack``: ``huggingface_hub.ModelCard`` with the YAML of
    ``ModelCardData`` and our template's body (``templates/model_card.md.j2``)."""
    from huggingface_hub import ModelCard, ModelCardData

    from safesteer.templating import render_markdown

    prov = pack.provenance
    report = report or {}
    target = str(pack.target_id)
    base_model = target if target.count("/") == 1 and "@" not in target else None
    family = str(pack.conditioning_space).split("/")[0]
    data = ModelCardData(
        library_name="safesteer",
        license="apache-2.0",
        base_model=base_model,
        base_model_relation="adapter" if base_model else None,
        pipeline_tag="text-to-video" if family in _VIDEO_FAMILIES else "text-to-image",
        tags=["safesteer", "safety", "steering-vector", "diffusers"],
    )
    cal = {k: v for k, v in pack.calibration.items() if k != "alpha_default"}
    meta = pack.metadata()
    body = render_markdown(
        "model_card.md.j2",
        space=pack.conditioning_space,
        dim=pack.dim,
        target_id=target,
        base_model=base_model,
        repo_id=repo_id,
        source=prov.get("source_model"),
        layer=prov.get("source_layer"),
        encoding=json.dumps(prov["encoding"]) if prov.get("encoding") else None,
        direction=prov.get("direction", "not recorded"),
        map_kind=prov.get("map_kind"),
        map_params=", ".join(f"{k}={v}" for k, v in (prov.get("map_params") or {}).items()),
        calibration_rule=prov.get("calibration_rule"),
        calibration=", ".join(f"{k} = {_fmt(v)}" for k, v in cal.items()) or "none recorded",
        alpha_default=f"{pack.alpha_default:g}",
        categories=pack.categories,
        gates=_gate_lines(pack),
        gated_usage=pack.gate is not None,
        measured_gates=list(report.get("gates", [])),
        rows=list(report.get("rows", [])),
        protocol_line=report.get("protocol") or "",
        fid_note=report.get("fid_note"),
        figures=figures or [],
        data=_data_lines(pack),
        random_parts=_random_parts(pack),
        tensor_sha256=meta["sha256"],
        safesteer_version=meta["provenance"].get("safesteer_version"),
        hashes=[(k, v) for k, v in sorted(prov.items()) if k.endswith("_hash")],
    )
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}"))
