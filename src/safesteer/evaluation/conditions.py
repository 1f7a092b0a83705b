"""What is evaluated side by side: packs and the baselines (no steering, native, random).

- ``none``: the unsteered pipeline (run once, at α = 0).
- a pack, always on: its global vector added to every prompt (the paper).
- a pack, gated (``modes`` includes ``"gated"``; condition ``<pack>-gated``): only prompts the
  pack's benign-fitted target-side gate flags are steered, along their active categories [ours].
- a pack, source-gated (``"gated-source"``; condition ``<pack>-gated-source``): the same, but
  the pack's *source* gate decides, on the source model's pooled states of each prompt (the
  source model is loaded from the pack's ``source_gate_spec``) [ours].
- a pack, steered to its target projection (``"to-projection"``; condition
  ``<pack>-to-projection``): every prompt's projection on the pack's unit global vector is
  moved up to the pack's benign quantile τ and no further (``attach(rule="to-projection")``;
  the pack needs ``calibration["to_projection_tau"]``) [ours, issue 11].
- ``native=PATH``: a :class:`~safesteer.pack.SafetyPack` file holding the direction computed in
  the target's own space (uses target-side unsafe data — the thing the method avoids).
- ``random``: for each pack, a seeded random direction of the same norm::

      v_rand = ‖v_pack‖ · g / ‖g‖,   g ~ N(0, I) with a seed derived from (seed, pack name)

Example:
    >>> [c.name for c in load_conditions([], ["none"])]
    ['none']
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from safesteer.errors import InputError

KINDS = ("none", "pack", "native", "random")
MODES = ("always", "gated", "gated-source", "to-projection")


@dataclass(frozen=True)
class Condition:
    """One steering condition: a name, a kind and the pack it applies (None for ``none``)."""

    name: str
    kind: str
    pack: Any = None  # SafetyPack; Any keeps this layer importable without the pack module
    source: str = ""
    gate: str | None = None  # None: always on; "target" / "source": which gate decides
    rule: str = "add"  # the steering rule (safesteer.maths.steering.STEERING_RULES)

    @property
    def gated(self) -> bool:
        return self.gate is not None

    def steering_options(self, source_reader: Any = None) -> dict[str, Any]:
        """Options for :func:`safesteer.targets.steered` (beyond the pack and α)."""
        if self.rule != "add":
            return {"rule": self.rule}
        if self.gate is None:
            return {}
        options: dict[str, Any] = {"gated": True, "categories": "auto", "gate": self.gate}
        if self.gate == "source":
            options["source_reader"] = source_reader
        return options

    def alphas(self, alphas: Sequence[float]) -> tuple[float, ...]:
        """Strengths this condition is run at (``none`` ignores α, so it runs once)."""
        return (0.0,) if self.kind == "none" else tuple(float(a) for a in alphas)

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "source": self.source,
            "mode": {None: "always", "target": "gated", "source": "gated-source"}[self.gate]
            if self.rule == "add"
            else self.rule,
        }
        if self.pack is not None:
            v = self.pack.global_vector.detach().float().cpu().contiguous()
            d.update(
                vector_sha256=hashlib.sha256(v.numpy().tobytes()).hexdigest(),
                norm=float(v.norm()),
                dim=int(v.numel()),
                target_id=self.pack.target_id,
                conditioning_space=self.pack.conditioning_space,
                categories=list(self.pack.categories),
                gate=self.pack.gate is not None,
            )
        return d


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "pack"


def _load_pack(path: str) -> Any:
    from safesteer.pack import SafetyPack

    if not Path(path).is_file():
        raise InputError(f"pack file {path} does not exist", hint="pass a .safetensors SafetyPack")
    return SafetyPack.load(path)


def random_condition(base: Condition, seed: int) -> Condition:
    """A random direction with the norm of ``base``'s global vector, in the same space."""
    from safesteer.pack import SafetyPack

    pack = base.pack
    key = int(hashlib.sha256(f"{seed}|{base.name}".encode()).hexdigest()[:8], 16)
    g = torch.randn(pack.dim, generator=torch.Generator().manual_seed(key))
    vector = g / g.norm() * pack.global_vector.float().norm()
    rand = SafetyPack(
        global_vector=vector,
        category_vectors={},
        target_id=pack.target_id,
        conditioning_space=pack.conditioning_space,
        calibration=dict(pack.calibration),
        gate=None,
        provenance={
            "baseline": "random direction of equal norm",
            "of": base.name,
            "seed": str(key),
        },
    )
    return Condition(f"random-{base.name}", "random", rand, f"random(seed={key}) of {base.source}")


def load_conditions(
    packs: Sequence[str],
    baselines: Sequence[str],
    *,
    seed: int = 0,
    modes: Sequence[str] = ("always",),
) -> list[Condition]:
    """Conditions from pack paths and baseline specs (``none``, ``random``, ``native=PATH``).

    ``modes`` says how each pack is applied: ``"always"`` (every prompt) and/or ``"gated"``
    (a second condition ``<pack>-gated``; the pack needs a gate), ``"gated-source"``,
    ``"to-projection"`` (module docstring).
    """
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise InputError(
            f"unknown steering mode(s) {unknown or list(modes)}", hint=f"use some of {MODES}"
        )
    conds: list[Condition] = []
    pack_conds = []
    from safesteer.evaluation.protocol import resolved_path

    for path in packs:
        pack = _load_pack(path)
        name = _safe_name(Path(path).stem)
        if "always" in modes:
            pack_conds.append(Condition(name, "pack", pack, resolved_path(str(path))))
        if "gated" in modes:
            if pack.gate is None:
                raise InputError(
                    f"pack {path} has no gate, so it cannot run gated",
                    hint="build it with safesteer build, or drop --mode gated",
                )
            pack_conds.append(
                Condition(f"{name}-gated", "pack", pack, resolved_path(str(path)), gate="target")
            )
        if "gated-source" in modes:
            if pack.source_gate is None:
                raise InputError(
                    f"pack {path} has no source gate",
                    hint="build it with safesteer build, or drop --mode gated-source",
                )
            pack_conds.append(
                Condition(
                    f"{name}-gated-source", "pack", pack, resolved_path(str(path)), gate="source"
                )
            )
        if "to-projection" in modes:
            if "to_projection_tau" not in pack.calibration:
                raise InputError(
                    f"pack {path} has no target projection τ (built before the to-projection rule)",
                    hint="rebuild it with safesteer build, or drop --mode to-projection",
                )
            pack_conds.append(
                Condition(
                    f"{name}-to-projection",
                    "pack",
                    pack,
                    resolved_path(str(path)),
                    rule="to-projection",
                )
            )
    for spec in baselines:
        name, _, value = spec.partition("=")
        if name == "none":
            conds.append(Condition("none", "none"))
        elif name == "native":
            if not value:
                raise InputError(
                    "--baseline native needs a pack file",
                    hint="write --baseline native=PATH.safetensors",
                )
            conds.append(
                Condition(
                    f"native-{_safe_name(Path(value).stem)}",
                    "native",
                    _load_pack(value),
                    resolved_path(value),
                )
            )
        elif name == "random":
            if not pack_conds:
                raise InputError(
                    "--baseline random needs at least one --pack",
                    hint="it draws a direction of each pack's norm",
                )
        else:
            raise InputError(
                f"unknown baseline {spec!r}", hint="use none, random or native=PATH.safetensors"
            )
    conds.extend(pack_conds)
    if any(s.partition("=")[0] == "random" for s in baselines):
        conds.extend(
            random_condition(c, seed) for c in pack_conds if not c.gated and c.rule == "add"
        )
    names = [c.name for c in conds]
    if len(set(names)) != len(names):
        raise InputError(f"condition names collide: {names}", hint="rename the pack files")
    if not conds:
        raise InputError("nothing to evaluate", hint="pass --pack and/or --baseline none")
    return conds
