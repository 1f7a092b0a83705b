"""MLP map: one hidden GELU layer trained with MSE on centred anchors (method.md §2).

``T(x) = s_t · (W₂ GELU(W₁ x / s_s + b₁) + b₂)`` on centred source points, with ``s_s``, ``s_t``
the RMS norms of the centred anchors (fixed rescaling so one learning rate suits any model).
Adam on minibatches of 128 (or full batch), early stopping on a held-out fraction's loss,
best weights kept. Deterministic for a seed: initialisation, split and shuffling use a private
``torch.Generator``; training runs in float32 with deterministic CPU ops.

Transport of a direction (the MLP is not linear, so this is a choice):

* ``"direct"`` (default, the paper's reading): ``ṽ = T(v_s)``;
* ``"difference"`` [ours]: ``ṽ = T(μ_safe) − T(μ_unsafe)`` via :meth:`MLPMap.transport_means`;
  given only ``v`` it uses the anchor mean as the midpoint: ``T(+v/2) − T(−v/2)``;
* ``"jacobian"`` [ours, issue 11]: ``ṽ = J_T(μ_s) v``, the map's Jacobian at the source
  anchor mean (centred input 0) applied to v — the linearisation of T where the anchors are
  (a Jacobian–vector product by autograd; no D×D Jacobian is formed). On a linear map all three
  modes agree; for the MLP, ``J = (s_t / s_s) · W₂ diag(GELU′(b₁)) W₁``.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(300, 4, generator=g)
    >>> y = torch.tanh(x @ torch.randn(4, 3, generator=g))
    >>> a = MLPMap(hidden_dim=32, seed=1).fit(x, y)
    >>> b = MLPMap(hidden_dim=32, seed=1).fit(x, y)
    >>> bool(torch.equal(a.transform(x), b.transform(x)))
    True
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import torch
from torch import Tensor
from torch.nn import functional as F

from safesteer.errors import InputError
from safesteer.maths.alignment.base import AlignmentMap

__all__ = ["TRANSPORT_MODES", "MLPMap"]

#: how a direction is carried (module docstring); the first is the default
TRANSPORT_MODES = ("direct", "difference", "jacobian")
#: multiply-adds per training step below which one thread is faster than several
_SMALL_STEP = 5_000_000


@contextlib.contextmanager
def _threads_for(step_work: int) -> Iterator[None]:
    """Run small networks on one thread: many tiny ops, where thread hand-offs dominate
    (on a loaded 2-core machine a 2-thread fit was up to 40× slower)."""
    before = torch.get_num_threads()
    if step_work < _SMALL_STEP and before > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class MLPMap(AlignmentMap):
    """One-hidden-layer GELU network from source to target anchors.

    Args:
        hidden_dim: width of the hidden layer.
        seed: seeds initialisation, the held-out split and shuffling.
        transport_mode: ``"direct"``, ``"difference"`` or ``"jacobian"`` (module docstring).
        max_epochs: upper bound on passes over the training anchors.
        lr: Adam learning rate. weight_decay: Adam's L2 penalty.
        batch_size: minibatch size (None: full batch; slower to converge).
        holdout_fraction: anchors held out for early stopping (0 disables it).
        patience: epochs without held-out improvement before stopping.

    Learned: ``w1_ [h, ds]``, ``b1_``, ``w2_ [dt, h]``, ``b2_``, ``source_scale_``,
    ``target_scale_``, ``epochs_``, ``best_holdout_loss_``.
    """

    kind = "mlp"

    def __init__(
        self,
        hidden_dim: int = 512,
        seed: int = 0,
        transport_mode: str = "direct",
        *,
        max_epochs: int = 300,
        lr: float = 3e-3,
        weight_decay: float = 0.0,
        batch_size: int | None = 128,
        holdout_fraction: float = 0.1,
        patience: int = 20,
    ) -> None:
        if transport_mode not in TRANSPORT_MODES:
            raise InputError(
                f"unknown transport_mode {transport_mode!r}", hint=f"choose from {TRANSPORT_MODES}"
            )
        if hidden_dim < 1 or max_epochs < 1:
            raise InputError("hidden_dim and max_epochs must be positive")
        if not 0.0 <= holdout_fraction < 1.0:
            raise InputError(f"holdout_fraction must be in [0, 1); got {holdout_fraction}")
        self.hidden_dim = int(hidden_dim)
        self.seed = int(seed)
        self.transport_mode = transport_mode
        self.max_epochs = int(max_epochs)
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.batch_size = batch_size
        self.holdout_fraction = float(holdout_fraction)
        self.patience = int(patience)

    def params(self) -> dict[str, float | int | str]:
        out: dict[str, float | int | str] = {
            "kind": self.kind,
            "hidden_dim": self.hidden_dim,
            "seed": self.seed,
            "transport_mode": self.transport_mode,
            "max_epochs": self.max_epochs,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "batch_size": self.batch_size or 0,
            "holdout_fraction": self.holdout_fraction,
            "patience": self.patience,
        }
        if hasattr(self, "epochs_"):
            out["epochs"] = self.epochs_
        return out

    # ---- fitting -------------------------------------------------------------------------
    def _fit_centred(self, source: Tensor, target: Tensor) -> None:
        g = torch.Generator().manual_seed(self.seed)
        n, ds = source.shape
        dt = target.shape[1]
        self.source_scale_ = max(float(source.pow(2).sum(dim=1).mean().sqrt()), 1e-12)
        self.target_scale_ = max(float(target.pow(2).sum(dim=1).mean().sqrt()), 1e-12)
        x, y = source / self.source_scale_, target / self.target_scale_
        xv: Tensor | None
        yv: Tensor | None
        n_val = round(n * self.holdout_fraction)
        if n_val >= 1 and n - n_val >= 2:
            perm = torch.randperm(n, generator=g)
            xv, yv, x, y = x[perm[:n_val]], y[perm[:n_val]], x[perm[n_val:]], y[perm[n_val:]]
        else:
            xv, yv = None, None

        params = {
            "w1": _uniform((self.hidden_dim, ds), ds, g),
            "b1": _uniform((self.hidden_dim,), ds, g),
            "w2": _uniform((dt, self.hidden_dim), self.hidden_dim, g),
            "b2": torch.zeros(dt),
        }
        for t in params.values():
            t.requires_grad_(True)
        opt = torch.optim.Adam(params.values(), lr=self.lr, weight_decay=self.weight_decay)
        batch = min(self.batch_size or x.shape[0], x.shape[0])
        best_loss, best, stale, epochs = float("inf"), copy.deepcopy(params), 0, 0
        step_work = batch * self.hidden_dim * (ds + dt)
        with torch.enable_grad(), _threads_for(step_work):
            for epoch in range(self.max_epochs):
                order = torch.randperm(x.shape[0], generator=g) if batch < x.shape[0] else None
                for start in range(0, x.shape[0], batch):
                    idx = order[start : start + batch] if order is not None else slice(None)
                    loss = F.mse_loss(_forward(params, x[idx]), y[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                epochs = epoch + 1
                with torch.no_grad():
                    monitor = (
                        F.mse_loss(_forward(params, xv), yv)
                        if xv is not None and yv is not None
                        else F.mse_loss(_forward(params, x), y)
                    )
                if float(monitor) < best_loss - 1e-7:
                    best_loss, stale = float(monitor), 0
                    best = {k: v.detach().clone() for k, v in params.items()}
                else:
                    stale += 1
                    if stale >= self.patience:
                        break
        self.w1_, self.b1_ = best["w1"].detach(), best["b1"].detach()
        self.w2_, self.b2_ = best["w2"].detach(), best["b2"].detach()
        self.epochs_ = epochs
        self.best_holdout_loss_ = best_loss

    def _apply(self, centred: Tensor) -> Tensor:
        params = {"w1": self.w1_, "b1": self.b1_, "w2": self.w2_, "b2": self.b2_}
        with torch.no_grad():
            return self.target_scale_ * _forward(params, centred / self.source_scale_)

    # ---- transport -----------------------------------------------------------------------
    def transport(self, vector: Tensor) -> Tensor:
        """``T(v)`` ("direct"), ``T(+v/2) − T(−v/2)`` around the anchor mean ("difference") or
        ``J_T(μ_s) v`` ("jacobian")."""
        self._check_input(vector, "vector")
        v = vector.float()
        if self.transport_mode == "direct":
            return self._apply(v)
        if self.transport_mode == "jacobian":
            return self.jacobian_vector_product(v)
        return self._apply(0.5 * v) - self._apply(-0.5 * v)

    def jacobian_vector_product(self, vector: Tensor, at: Tensor | None = None) -> Tensor:
        """``J_T(x) v`` at centred source point ``at`` (default 0, the anchor mean).

        ``T(x) = s_t · f(x / s_s)`` so ``J_T(x) v = s_t · J_f(x / s_s)(v / s_s)``; computed by
        automatic differentiation (``torch.autograd.functional.jvp``) of the fitted network, in
        float32.
        ``vector`` ``[ds]`` or ``[N, ds]`` (then ``at`` is one point or ``[N, ds]``).
        """
        self._check_input(vector, "vector")
        params = {"w1": self.w1_, "b1": self.b1_, "w2": self.w2_, "b2": self.b2_}
        v = vector.float()
        point = torch.zeros_like(v) if at is None else at.float().expand_as(v)

        def t(x: Tensor) -> Tensor:
            return self.target_scale_ * _forward(params, x / self.source_scale_)

        # reverse mode twice (the double-backward trick): torch's forward mode would load
        # TorchScript decompositions on first use, which warn on current torch
        with torch.enable_grad():
            _, out = torch.autograd.functional.jvp(t, point, v)
        return out.detach()

    def transport_means(self, safe_mean: Tensor, unsafe_mean: Tensor) -> Tensor:
        """``T(mean safe) − T(mean unsafe)`` on uncentred pooled source means ``[ds]``."""
        return self.transform(safe_mean) - self.transform(unsafe_mean)


def _uniform(shape: tuple[int, ...], fan_in: int, g: torch.Generator) -> Tensor:
    bound = 1.0 / fan_in**0.5  # PyTorch's nn.Linear default range
    return (torch.rand(shape, generator=g) * 2 - 1) * bound


def _forward(params: dict[str, Tensor], x: Tensor) -> Tensor:
    return F.linear(F.gelu(F.linear(x, params["w1"], params["b1"])), params["w2"], params["b2"])
