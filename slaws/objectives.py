"""Fitting objectives: a loss on residuals, its curvature for Gauss-Newton/IRLS steps, and any
extra parameters it carries (the free scale of a likelihood).

Residuals are ``log L_pred - log L_obs`` in log space (the published recipes) or
``L_pred - L_obs`` in raw space. Each objective gives ``value(r, s)`` and ``weights(r, s)``, a
per-residual curvature with ``value <= quadratic model`` (the iteratively-reweighted least squares
majoriser of Huber), so the solver's steps are descent steps even where Huber is linear.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax.numpy as jnp


def huber(r, delta):
    """0.5 r^2 for |r| <= delta, delta (|r| - delta/2) beyond.

    >>> import jax.numpy as jnp
    >>> from slaws.objectives import huber
    >>> [round(float(v), 4) for v in huber(jnp.array([0.5, -2.0]), 1.0)]
    [0.125, 1.5]
    """
    a = jnp.abs(r)
    return jnp.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


#: Curvature given to points beyond Huber's core, as a fraction of IRLS's delta/|r|.
OUTER_CURVATURE = 0.1


def _huber_weight(r, delta):
    """Gauss-Newton weight of Huber: 1 in the core, 0.1 delta/|r| beyond.

    Huber's true curvature beyond the core is 0; IRLS's psi(r)/r = delta/|r| majorises it and
    makes every step short, so with delta = 1e-3 (most points beyond the core) the solver
    converged only linearly: bootstrap refits from the optimum took ~70 steps. A tenth of it keeps
    the model positive definite and takes ~20; the solver's acceptance test keeps every step a
    descent step either way."""
    a = jnp.maximum(jnp.abs(r), 1e-300)
    return jnp.where(a <= delta, 1.0, OUTER_CURVATURE * delta / a)


@dataclass(frozen=True)
class Objective:
    """``kind`` is one of ``huber``, ``squared_log``, ``squared`` or ``huber_likelihood``.

    ``reduction`` sums (Besiroglu et al. 2024, Busbridge et al. 2025) or averages (Hoffmann et al.
    2022 as read by Epoch) over points. ``huber_likelihood`` is Epoch's Huber-shaped density with a
    free scale sigma: its value is the negative log-likelihood and it carries ``log_sigma``.

    >>> import jax.numpy as jnp
    >>> from slaws import Objective
    >>> objective = Objective("huber", delta=1e-3)
    >>> objective.describe()
    'huber(delta=0.001, sum)'
    >>> r = objective.residuals(jnp.log(jnp.array([2.0, 3.0])), jnp.log(jnp.array([2.0, 3.3])))
    >>> f"{float(objective.value(r, objective.init_extra(r))):.4g}"
    '9.481e-05'
    >>> Objective("huber_likelihood").extra_names
    ('log_sigma',)
    """

    kind: str = "huber"
    delta: float = 1e-3
    reduction: str = "sum"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown objective {self.kind!r} (known: {', '.join(KINDS)})")
        if self.reduction not in ("sum", "mean"):
            raise ValueError(f"reduction must be 'sum' or 'mean', not {self.reduction!r}")
        if self.kind in ("huber", "huber_likelihood") and not self.delta > 0:
            raise ValueError(f"Huber delta must be positive, not {self.delta!r}")

    @property
    def log_space(self) -> bool:
        return self.kind != "squared"

    @property
    def extra_names(self) -> tuple[str, ...]:
        return ("log_sigma",) if self.kind == "huber_likelihood" else ()

    def _reduce(self, values, w):
        """Sum or mean over points; ``w`` weights points (bootstrap counts), None for all ones."""
        if w is None:
            return jnp.sum(values) if self.reduction == "sum" else jnp.mean(values)
        total = jnp.sum(w * values)
        return total if self.reduction == "sum" else total / jnp.sum(w)

    def residuals(self, log_pred, log_obs):
        if self.log_space:
            return log_pred - log_obs
        return jnp.exp(log_pred) - jnp.exp(log_obs)

    def value(self, r, s, w=None):
        if self.kind == "huber":
            return self._reduce(huber(r, self.delta), w)
        if self.kind == "huber_likelihood":
            log_sigma = s[0]
            nll = huber(r * jnp.exp(-log_sigma), self.delta) + log_sigma + self._log_norm()
            return self._reduce(nll, w)
        return self._reduce(0.5 * r * r, w)

    def weights(self, r, s, w=None):
        """Curvature of value in r per point: the Gauss-Newton / IRLS weights."""
        if self.kind == "huber":
            curvature = _huber_weight(r, self.delta)
        elif self.kind == "huber_likelihood":
            inv = jnp.exp(-s[0])
            curvature = inv * inv * _huber_weight(r * inv, self.delta)
        else:
            curvature = jnp.ones_like(r)
        if w is not None:
            curvature = w * curvature
        if self.reduction == "mean":
            curvature = curvature / (r.shape[-1] if w is None else jnp.sum(w))
        return curvature

    def weighted(self, w) -> _Weighted:
        """This objective with per-point weights ``w`` (e.g. bootstrap resampling counts)."""
        return _Weighted(self, w)

    def init_extra(self, r, w=None):
        """Start for the extra parameters given residuals at the start of a fit (``w`` weights
        points as in :meth:`value`)."""
        if self.kind == "huber_likelihood":
            median = jnp.median if w is None else (lambda x: _weighted_median(x, w))
            spread = median(jnp.abs(r - median(r))) + 1e-12
            return jnp.log(spread)[None]
        return jnp.zeros((0,), r.dtype)

    def _log_norm(self):
        d = self.delta
        z = math.sqrt(2 * math.pi) * math.erf(d / math.sqrt(2)) + 2 * math.exp(-0.5 * d * d) / d
        return math.log(z)

    def describe(self) -> str:
        if self.kind in ("huber", "huber_likelihood"):
            return f"{self.kind}(delta={self.delta:g}, {self.reduction})"
        return f"{self.kind}({self.reduction})"


KINDS = ("huber", "squared_log", "squared", "huber_likelihood")


@dataclass(frozen=True)
class _Weighted:
    """An objective whose points carry weights; the solver sees the same interface."""

    objective: Objective
    w: object

    def value(self, r, s):
        return self.objective.value(r, s, self.w)

    def weights(self, r, s):
        return self.objective.weights(r, s, self.w)

    def init_extra(self, r):
        return self.objective.init_extra(r, self.w)


def _weighted_median(x, w):
    """The median of ``x`` with each value counted ``w`` times: the mean of the lower and upper
    weighted medians, so whole-number weights give ``jnp.median`` of the repeated values."""
    order = jnp.argsort(x)
    x, cumulative = x[order], jnp.cumsum(w[order])
    half = 0.5 * cumulative[-1]
    lower = x[jnp.searchsorted(cumulative, half, side="left")]
    upper = x[jnp.searchsorted(cumulative, half, side="right")]
    return 0.5 * (lower + upper)
