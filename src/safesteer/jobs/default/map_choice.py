"""Which map the job puts first: a benign-only rule fixed in advance (issue 10 §4, FINDINGS §4).

Every map is built and reported; the *chosen* one is what the headline, the images and a
generator's image evaluation use. It is chosen by the **transport fidelity** ρ of the source
direction on benign prompts the maps never saw (the calibration parts of every benign set):

    ρ = corr_j( ⟨h_s(a_j), v̂_s⟩, ⟨h_t(a_j), v̂_t⟩ )   (Pearson over benign prompts a_j)

— whether benign prompts keep their order along the direction once it is carried over. It
needs no unsafe target data and no test data (in the research, Spearman(ρ, test AUROC) was
0.78 / 0.84 over 252 variants, and ρ picked Procrustes on both targets). Ties go to the first
map in the job's order. It replaces the old choice by style-matched *test* AUROC (a leak).

Example:
    >>> choose_map({"procrustes": 0.80, "ridge": 0.75, "mlp": 0.80})
    'procrustes'
"""

from __future__ import annotations

from collections.abc import Mapping

from safesteer.maths.metrics import transport_fidelity

MAP_RULE = (
    "highest transport fidelity ρ (Pearson correlation of benign prompts' projections on the "
    "source direction and on the transported one) on the benign calibration parts of every set, "
    "never seen by the maps; no unsafe target data, no test data; ties → first map"
)


def choose_map(fidelity: Mapping[str, float]) -> str | None:
    """The map with the highest ρ (the first on ties; NaN never wins); None for no maps."""
    best: str | None = None
    for kind, rho in fidelity.items():
        if rho == rho and (best is None or rho > fidelity[best]):
            best = kind
    if best is None and fidelity:
        return next(iter(fidelity))
    return best


__all__ = ["MAP_RULE", "choose_map", "transport_fidelity"]
