"""Other people's fitting procedures, reimplemented in numpy/SciPy (float64) so that a benchmark
can compare them with slaws' own fitter on the same data.

Each is the procedure as its authors (or typical users) ran it, not an improved version: the same
objective, the same start grid, the same optimiser and its defaults. Parameters come back under
slaws' names, so ``slaws.laws`` can predict with them.

``bnsl_caballero``
    Caballero et al. 2023, "Broken Neural Scaling Laws", arXiv:2210.14891, repository
    ethancaballero/broken_neural_scaling_laws (the 4-digit-addition scripts of Figure 4): a
    ``scipy.optimize.brute`` grid search of the mean squared log error with +1,
    mean((log(yhat + 1) - log(y + 1))^2), with b and d1 searched as exponents p of
    1.25^p - 0.9 (real-data script) or 1.25^p - 1 + 1e-8 (noiseless-simulation script, with its
    own grid), then unbounded Levenberg-Marquardt (``curve_fit``) on log(y + 1) from the grid
    optimum. The grid (163,840 points for real data, 448,000 for the simulation) is evaluated
    with numpy arrays instead of brute's Python loop, and gives brute's point: the first
    minimum in the grid's C order.
``gadre_overtrain``
    Gadre et al. 2024, "Language models scale reliably with over-training and on downstream
    tasks", arXiv:2403.08540, repository mlfoundations/scaling (``scaling/laws.py``,
    ``curve_fit_powlaw_ours``): L(N, M) = a N^b + c 6^(b/2) (M N)^b + E with M = D/N tokens per
    parameter, plain least squares on L (``curve_fit``'s default Levenberg-Marquardt, maxfev
    10,000) from each of 128 starts, keeping the smallest sqrt(sum r^2 / (n - 2)).
``curve_fit_chinchilla``
    What most users write, as the ColPret code of Choshen, Zhang, Andreas 2025, "A Hitchhiker's
    Guide to Scaling Law Estimation", arXiv:2410.11840 (IBM/ColPret ``util/fit_utils.py::fit``)
    does: ``curve_fit`` of E + A/N^alpha + B/D^beta on the raw loss, parametrised by
    (log A, log B, log E, alpha, beta) with alpha, beta >= 0 (so SciPy uses TRF), from one start
    (the datablations fit of Muennighoff et al. 2023), retried with dogbox on RuntimeError.
``lbfgsb_chinchilla``
    Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models", arXiv:2203.15556,
    Approach 3 (App. D.2) as replayed with SciPy by Besiroglu et al. 2024, "Chinchilla Scaling:
    A replication attempt", arXiv:2404.10102 (epoch-research/analyzing-chinchilla, notebook
    cell 18): Huber(delta) of log-space residuals of LSE(a - alpha log N, b - beta log D, e),
    summed, minimised by L-BFGS-B from every point of a start grid; the best successful run wins.
``isoflop_parabolas``, ``approach2``
    Hoffmann et al. 2022 Approach 2: a parabola of loss in log N through each IsoFLOP profile,
    its vertex taken as the compute-optimal N; then N_opt ∝ C^a and D_opt ∝ C^b by (weighted)
    least squares in log-log, as Porian et al. 2024, "Resolving Discrepancies in
    Compute-Optimal Scaling of Language Models", arXiv:2406.19146 (formll/
    resolving-scaling-law-discrepancies, ``analysis.power_law_fit``), fit their optima with
    weights 1/std(log N_opt)^2. Porian et al. locate each optimum by Akima interpolation with a
    seed-noise bootstrap instead of a parabola; ``approach2`` reproduces their exponents from
    their optima, ``isoflop_parabolas`` is Hoffmann's way of finding the optima.

A fit that cannot be done (too few or non-finite points, an optimiser error, no start that
succeeds) never raises: it returns status ``failed``, NaN parameters and objective, and warns
with the reason.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import OptimizeWarning, curve_fit, minimize

from slaws import data as _data

__all__ = [
    "BNSL_GRIDS",
    "COARSE_GRID",
    "COLPRET_P0",
    "EPOCH_GRID",
    "GADRE_STARTS",
    "BaselineFit",
    "approach2",
    "bnsl_caballero",
    "bnsl_predict",
    "curve_fit_chinchilla",
    "gadre_overtrain",
    "isoflop_parabolas",
    "lbfgsb_chinchilla",
]

CHINCHILLA_PARAMS = ("E", "A", "B", "alpha", "beta")
BNSL_PARAMS = ("a", "b", "c0", "c1", "d1", "f1")
GADRE_PARAMS = ("a", "c", "b", "E", "A", "B", "alpha", "beta")

# Errors that mean "this data cannot be fitted this way"; anything else is a bug and propagates.
_FIT_ERRORS = (ValueError, RuntimeError, ArithmeticError, np.linalg.LinAlgError)


@dataclass(frozen=True)
class BaselineFit:
    """Outcome of one baseline fit. ``status`` is ``converged`` or ``failed`` (then every
    parameter and the objective are NaN). ``objective`` is the quantity the procedure minimises,
    at the returned parameters; each function's docstring says which.

    >>> from slaws import baselines, synthetic
    >>> fit = baselines.curve_fit_chinchilla(synthetic.chinchilla_like(noise=0))
    >>> fit.method, fit.status, sorted(fit.params)
    ('curve_fit_chinchilla', 'converged', ['A', 'B', 'E', 'alpha', 'beta'])
    >>> fit.objective < 1e-12
    True
    """

    method: str
    params: dict[str, float] = field(hash=False)
    status: str
    objective: float


def _converged(method: str, params: Mapping[str, float], objective: float) -> BaselineFit:
    values = {k: float(v) for k, v in params.items()}
    if not all(map(math.isfinite, values.values())) or not math.isfinite(objective):
        return _failed(method, tuple(values), "the optimum is not finite")
    return BaselineFit(method, values, "converged", float(objective))


def _failed(method: str, names: Sequence[str], reason: str) -> BaselineFit:
    # Benchmarks run many fits unattended: say why, but let the caller carry on.
    warnings.warn(f"{method}: fit failed: {reason}", RuntimeWarning, stacklevel=3)
    return BaselineFit(method, dict.fromkeys(names, math.nan), "failed", math.nan)


def _arrays(*columns, min_points: int) -> list[np.ndarray]:
    """float64 copies of equal-length 1-D columns, all finite and positive."""
    out = [np.asarray(c, dtype=np.float64).ravel() for c in columns]
    if len({len(c) for c in out}) != 1:
        raise ValueError(f"columns have different lengths {[len(c) for c in out]}")
    if len(out[0]) < min_points:
        raise ValueError(f"{len(out[0])} points, at least {min_points} needed")
    if not all(np.all(np.isfinite(c) & (c > 0)) for c in out):
        raise ValueError("inputs must be finite and positive")
    return out


# --- Caballero et al. 2023: BNSL ------------------------------------------------------------

#: ``grid`` of ``bnsl_caballero``: brute's slices over (a, b-exponent, c0, c1, d1-exponent, f1)
#: and the map from exponent p to b and d1, as in each of the two Figure 4 scripts.
BNSL_GRIDS = {
    "real": (
        (
            slice(0.0, 1.0, 0.1),
            slice(0, 40, 2.5),
            slice(0, 1, 0.25),
            slice(0, 1, 0.25),
            slice(0, 40, 2.5),
            slice(0, 1, 0.25),
        ),
        lambda p: 1.25**p - 0.9,
    ),
    "simulation": (
        (
            slice(0.0, 2.5, 0.1),
            slice(0, 5, 0.25),
            slice(0, 0.2, 0.05),
            slice(0, 8, 0.5),
            slice(0, 35, 2.5),
            slice(0, 0.2, 0.05),
        ),
        lambda p: 1.25**p - 1 + 1e-8,
    ),
}


def _bnsl(x, a, b, c0, c1, d1, f1):
    # The scripts' expression, term for term: the grid search relies on computing the same floats.
    return a + b * x ** (-c0) * (1 + (x / d1) ** (1 / f1)) ** (-c1 * f1)


def bnsl_predict(params: Mapping[str, float], x) -> np.ndarray:
    """BNSL with one break, y = a + b x^-c0 (1 + (x/d1)^(1/f1))^(-c1 f1), in Caballero's form.

    >>> from slaws import baselines
    >>> params = {"a": 0.41, "b": 2.28, "c0": 0.055, "c1": 5.66, "d1": 612.6, "f1": 0.059}
    >>> [round(float(y), 4) for y in baselines.bnsl_predict(params, [100, 1000, 10000])]
    [2.1798, 0.5073, 0.41]
    """
    with np.errstate(all="ignore"):
        # numpy scalars: a fit that ends at f1 = 0 divides by zero as the script's arrays do.
        return _bnsl(np.asarray(x, dtype=np.float64), *(np.float64(params[k]) for k in BNSL_PARAMS))


def _bnsl_log1p(x, *p):
    return np.log(_bnsl(x, *p) + 1)


def _msle(x, log_y1, *p):
    """The scripts' objective, averaged over x on the last axis; parameters broadcast."""
    return np.mean((_bnsl_log1p(x, *p) - log_y1) ** 2, axis=-1)


def _msle_at(axes, flat, x, log_y1):
    """The objective at the grid points with flat (C-order) indices ``flat``."""
    index = np.unravel_index(flat, tuple(map(len, axes)))
    params = [v[i][:, None] for v, i in zip(axes, index, strict=True)]
    step = max(1, 2**20 // len(x))  # bounds memory when many points survive the screen
    return np.concatenate(
        [_msle(x, log_y1, *(p[k : k + step] for p in params)) for k in range(0, len(flat), step)]
    )


#: x points the grid search screens every grid point with (see ``_bnsl_brute``).
SCREEN_POINTS = 40


def _bnsl_brute(x, y, slices, to_scale) -> np.ndarray:
    """The point ``scipy.optimize.brute(obj, slices, finish=None)`` returns, as arrays.

    Every point is screened on every k-th x: that partial sum of squares over all n is a lower
    bound of the objective, so only points whose bound is below a value some point attains can
    be the minimum, and only those (a few thousand of 448,000 for the simulation grid) are
    evaluated on all x. Their first minimum in C order is brute's (its argmin over the grid).
    """
    grid = np.mgrid[slices]
    axes = [grid[k][(0,) * k + (slice(None),) + (0,) * (5 - k)] for k in range(6)]
    # One np.float64 at a time, as the script maps each grid point.
    axes[1] = np.array([to_scale(p) for p in axes[1]])
    axes[4] = np.array([to_scale(p) for p in axes[4]])
    log_y1 = np.log(y + 1)
    with np.errstate(all="ignore"):
        stride = max(1, len(x) // SCREEN_POINTS)
        x_s, log_s = x[::stride], log_y1[::stride]
        mesh = [v.reshape((-1,) + (1,) * (6 - k)) for k, v in enumerate(axes[1:], start=1)]
        screen = np.stack([_msle(x_s, log_s, a, *mesh) for a in axes[0]]).ravel()
        lower = screen * (len(x_s) / len(x))
        attained = _msle_at(axes, np.argsort(lower)[:64], x, log_y1).min()
        # The slack covers rounding: a bound and a value may differ by an ulp, never by 1e-9.
        candidates = np.flatnonzero(lower <= attained * (1 + 1e-9))
        best = candidates[np.argmin(_msle_at(axes, candidates, x, log_y1))]
    index = np.unravel_index(best, tuple(map(len, axes)))
    return np.array([v[i] for v, i in zip(axes, index, strict=True)])


def bnsl_caballero(x, y, grid: str = "real") -> BaselineFit:
    """Caballero et al. 2023's BNSL fit (one break): grid search, then Levenberg-Marquardt.

    ``grid`` is ``"real"`` (the real-data script: 163,840 points, b, d1 = 1.25^p - 0.9) or
    ``"simulation"`` (the noiseless-simulation script: 448,000 points, b, d1 = 1.25^p - 1 +
    1e-8); see ``BNSL_GRIDS``. ``objective`` is the MSLE(+1) on the fitted points.

    On the 14 fit points of 4-digit addition this gives RMSLE 0.000598 on them and 0.0109 on the
    3 held-out points; on the noiseless simulation fitted on x <= 405 (grid ``"simulation"``),
    extrapolation RMSLE 0.0052 up to x = 4095.

    >>> import numpy as np
    >>> from slaws import baselines, datasets
    >>> raw = datasets.read("bnsl-4digit")  # train_dataset_size, test_cross_entropy, split
    >>> x, y = raw["train_dataset_size"], raw["test_cross_entropy"]
    >>> fitted = raw["split"] == "fit"
    >>> fit = baselines.bnsl_caballero(x[fitted], y[fitted])
    >>> predicted = baselines.bnsl_predict(fit.params, x[~fitted])
    >>> rmsle = np.sqrt(np.mean(np.log(predicted / y[~fitted]) ** 2))
    >>> fit.status, round(fit.params["d1"], 1), f"extrapolation RMSLE {rmsle:.4f}"
    ('converged', 612.6, 'extrapolation RMSLE 0.0109')
    """
    method = "bnsl_caballero"
    try:
        slices, to_scale = BNSL_GRIDS[grid]
    except KeyError:
        raise ValueError(f"grid must be one of {sorted(BNSL_GRIDS)}, not {grid!r}") from None
    try:
        x, y = _arrays(x, y, min_points=len(BNSL_PARAMS))
        p0 = _bnsl_brute(x, y, slices, to_scale)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", OptimizeWarning)
            popt, _ = curve_fit(_bnsl_log1p, x, np.log(y + 1), p0=p0, maxfev=100_000_000)
    except _FIT_ERRORS as exc:
        return _failed(method, BNSL_PARAMS, str(exc))
    with np.errstate(all="ignore"):
        msle = _msle(x, np.log(y + 1), *popt)
    return _converged(method, dict(zip(BNSL_PARAMS, popt, strict=True)), msle)


# --- Gadre et al. 2024: over-training law ---------------------------------------------------


def _gadre_law(x, a, c, b, E):
    n, m = x
    return a * np.power(n, b) + c * np.power(6, b / 2) * np.power(m * n, b) + E


#: Starts of ``gadre_overtrain``, (a0, c0, b0, E0), looped over in this order.
GADRE_STARTS = ([1e2, 3e2, 1e3, 3e3], [1e2, 3e2, 1e3, 3e3], [-0.1, -0.3], [0.0, 1.0, 2.0, 10.0])


def gadre_overtrain(N, M, y) -> BaselineFit:
    """Gadre et al. 2024's loss fit: L = a N^b + c 6^(b/2) (M N)^b + E, M = tokens/parameter.

    128 starts a0, c0 in {1e2, 3e2, 1e3, 3e3}, b0 in {-0.1, -0.3}, E0 in {0, 1, 2, 10}, each
    ``curve_fit`` (Levenberg-Marquardt, maxfev 10,000); the first start with the smallest
    sqrt(sum r^2 / (n - 2)) wins, and that value is ``objective``. A start that raises is
    skipped (the repository's loop would stop there).

    ``params`` has the native (a, c, b, E) and the same law as slaws' ``chinchilla``: with
    D = M N, c 6^(b/2) (M N)^b = B / D^beta, so A = a, alpha = beta = -b, B = c 6^(b/2).

    >>> from slaws import baselines, synthetic
    >>> frame = synthetic.chinchilla_like(noise=0.01, seed=0)  # Hoffmann's alpha 0.34, beta 0.28
    >>> N, D = frame["N"], frame["D"]
    >>> fit = baselines.gadre_overtrain(N, D / N, frame["loss"])
    >>> fit.status, round(fit.params["alpha"], 2), round(fit.params["E"], 2)
    ('converged', 0.29, 1.67)
    """
    method = "gadre_overtrain"
    try:
        n, m, y = _arrays(N, M, y, min_points=4)
    except ValueError as exc:
        return _failed(method, GADRE_PARAMS, str(exc))
    best, best_residual, error = None, math.inf, "no start converged"
    for p0 in itertools.product(*GADRE_STARTS):
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore", OptimizeWarning)
                popt, _ = curve_fit(_gadre_law, (n, m), y, p0=list(p0), maxfev=10000)
        except _FIT_ERRORS as exc:
            error = str(exc)
            continue
        with np.errstate(all="ignore"):
            residual = math.sqrt(np.sum((y - _gadre_law((n, m), *popt)) ** 2) / (len(y) - 2))
        if residual < best_residual:
            best, best_residual = popt, residual
    if best is None:
        return _failed(method, GADRE_PARAMS, error)
    a, c, b, E = best
    params = dict(a=a, c=c, b=b, E=E, A=a, B=c * 6 ** (b / 2), alpha=-b, beta=-b)
    return _converged(method, params, best_residual)


# --- ColPret: curve_fit on raw loss ---------------------------------------------------------

#: ColPret's start (a, b, e, alpha, beta) = (log A, log B, log E, alpha, beta): the parametric
#: fit of Muennighoff et al. 2023 (datablations README).
COLPRET_P0 = (6.255414, 7.3049974, 0.6254804, 0.3526596, 0.3526596)


def _chinchilla_raw(x, a, b, e, alpha, beta):
    n, d = x
    return np.exp(e) + np.exp(a) / n**alpha + np.exp(b) / d**beta


def _chinchilla_params(a, b, e, alpha, beta) -> dict[str, float]:
    with np.errstate(over="ignore"):  # an overflow is a non-finite optimum, reported as such
        return dict(E=np.exp(e), A=np.exp(a), B=np.exp(b), alpha=alpha, beta=beta)


def _chinchilla_data(frame) -> list[np.ndarray]:
    """N, D and loss of ``frame``, checked by ``slaws.data.load``; one point per parameter at
    least, or the fit is underdetermined (TRF would still report success)."""
    frame = _data.load(frame, required=("N", "D", "loss"))
    if len(frame) < len(CHINCHILLA_PARAMS):
        raise ValueError(f"{len(frame)} points, at least {len(CHINCHILLA_PARAMS)} needed")
    return [frame[k].to_numpy(np.float64) for k in ("N", "D", "loss")]


def curve_fit_chinchilla(frame, p0: Sequence[float] = COLPRET_P0) -> BaselineFit:
    """ColPret's Chinchilla fit: least squares on the raw loss, one start, TRF then dogbox.

    ``frame``: anything ``slaws.data.load`` takes, with columns N, D and loss. ``p0`` is
    (log A, log B, log E, alpha, beta). ``objective`` is the sum of squared raw-loss residuals.

    On Epoch's 240 Chinchilla points it gives E=1.883, A=568, B=7582, alpha=0.358, beta=0.428:
    squares of raw residuals weigh high losses and outliers more than Huber on logs does.

    On noiseless data from Hoffmann et al.'s fit it recovers the parameters:

    >>> from slaws import baselines, synthetic
    >>> fit = baselines.curve_fit_chinchilla(synthetic.chinchilla_like(noise=0))
    >>> fit.status, {k: round(v, 3) for k, v in fit.params.items()}
    ('converged', {'E': 1.69, 'A': 406.4, 'B': 410.7, 'alpha': 0.34, 'beta': 0.28})
    """
    method = "curve_fit_chinchilla"
    bounds = ([-np.inf, -np.inf, -np.inf, 0, 0], [np.inf] * 5)
    try:
        n, d, loss = _chinchilla_data(frame)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", OptimizeWarning)
            try:
                popt, _ = curve_fit(_chinchilla_raw, (n, d), loss, p0=p0, bounds=bounds)
            except RuntimeError:
                # ColPret's fallback when TRF runs out of evaluations.
                popt, _ = curve_fit(
                    _chinchilla_raw, (n, d), loss, p0=p0, bounds=bounds, method="dogbox", x_scale=p0
                )
            sse = np.sum((_chinchilla_raw((n, d), *popt) - loss) ** 2)
    except _FIT_ERRORS as exc:
        return _failed(method, CHINCHILLA_PARAMS, str(exc))
    return _converged(method, _chinchilla_params(*popt), sse)


# --- Hoffmann et al. 2022 / Besiroglu et al. 2024: Huber + L-BFGS-B -------------------------

#: Hoffmann et al. 2022 App. D.2's start grid as Epoch replayed it, over
#: (a, b, e, alpha, beta) = (log A, log B, log E, alpha, beta): 6 x 6 x 5 x 5 x 5 = 4,500.
EPOCH_GRID = (
    np.arange(0.0, 30.0, 5.0),
    np.arange(0.0, 30.0, 5.0),
    np.arange(-1.0, 1.5, 0.5),
    np.arange(0.0, 2.5, 0.5),
    np.arange(0.0, 2.5, 0.5),
)
#: A 108-start subset of ``EPOCH_GRID`` for quick runs: a, b in {0, 10, 20}, e in {-1, 0, 1},
#: alpha, beta in {0.5, 1}. On Epoch's 240 Chinchilla points 21 of its starts reach the optimum
#: of the full grid.
COARSE_GRID = (
    np.array([0.0, 10.0, 20.0]),
    np.array([0.0, 10.0, 20.0]),
    np.array([-1.0, 0.0, 1.0]),
    np.array([0.5, 1.0]),
    np.array([0.5, 1.0]),
)


def _huber_lse(log_n, log_d, log_loss, delta):
    """Summed Huber of LSE(a - alpha log N, b - beta log D, e) - log L, and its gradient."""

    def value_and_grad(p):
        a, b, e, alpha, beta = p
        terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
        top = terms.max(axis=0)
        w = np.exp(terms - top)
        total = w.sum(axis=0)
        r = top + np.log(total) - log_loss
        w /= total  # d r / d term: the softmax weights
        small = np.abs(r) <= delta
        value = np.sum(np.where(small, 0.5 * r * r, delta * (np.abs(r) - 0.5 * delta)))
        psi = np.clip(r, -delta, delta)
        g_n, g_d = psi * w[0], psi * w[1]
        grad = [g_n.sum(), g_d.sum(), (psi * w[2]).sum(), -(g_n @ log_n), -(g_d @ log_d)]
        return value, np.array(grad)

    return value_and_grad


def lbfgsb_chinchilla(
    frame,
    grid: str | Sequence = "epoch",
    delta: float = 1e-3,
    jac: bool = True,
    options: Mapping | None = None,
) -> BaselineFit:
    """Hoffmann's Approach 3 with SciPy, as Epoch replicated it: Huber on log residuals, summed;
    L-BFGS-B (no bounds) from every start; the lowest objective among runs that report success
    wins, and is ``objective``.

    ``frame``: anything ``slaws.data.load`` takes, with N, D (or C) and loss; Epoch drops the 5
    highest losses first (``slaws.recipes.drop_highest_loss``), which is left to the caller.
    ``grid``: ``"epoch"`` (``EPOCH_GRID``, 4,500 starts), ``"coarse"`` (``COARSE_GRID``, 108) or
    starts (a, b, e, alpha, beta) = (log A, log B, log E, alpha, beta), one a row.
    ``jac``: give L-BFGS-B the analytic gradient; ``False`` uses its finite differences.
    ``options``: passed to ``scipy.optimize.minimize`` (default: SciPy's, as Epoch ran it).

    On Epoch's 240 points the full grid gives objective 0.0010182740 with A=477.83, B=2143.4,
    E=1.81722, alpha=0.347311, beta=0.367172 (Epoch: 477.84, 2143.86, 1.8172, 0.34731,
    0.36718; the objective is flat along B); the coarse grid reaches the same optimum.

    Pitfall: L-BFGS-B stops when an iteration improves the objective by less than ftol times
    max(|f|, 1), and a summed Huber with delta 1e-3 is ~1e-3, so the default ftol (2.2e-9) is
    in effect 1e3 times looser than it reads. From one start at Hoffmann's published values,
    (6.0073404, 6.0179186, 0.5267228, 0.33917084, 0.2849083), it stops at 0.0011633, with or
    without ``jac``; ``options={"ftol": 1e-15}`` gets there. Only a grid hides this.

    Speed: pinned to one core or with OPENBLAS_NUM_THREADS=1, the 4,500 starts take ~50 s
    (~11 ms a start; ~300 s without ``jac``, which reaches the same optimum). SciPy's L-BFGS-B
    calls OpenBLAS on small matrices at every iteration, and where OpenBLAS's threads compete
    for busy cores each iteration costs about ten times more.

    One start, on noiseless data from Hoffmann et al.'s fit: SciPy's default tolerances stop
    far from the optimum, tight ones reach it.

    >>> from slaws import baselines, synthetic
    >>> frame = synthetic.chinchilla_like(noise=0)
    >>> start = [[10.0, 10.0, 0.0, 0.5, 0.5]]  # (log A, log B, log E, alpha, beta)
    >>> loose = baselines.lbfgsb_chinchilla(frame, grid=start)
    >>> tolerances = {"ftol": 1e-15, "gtol": 1e-12}
    >>> tight = baselines.lbfgsb_chinchilla(frame, grid=start, options=tolerances)
    >>> loose.objective > 1e-5, tight.objective < 1e-12
    (True, True)
    >>> {k: round(v, 3) for k, v in tight.params.items()}
    {'E': 1.69, 'A': 406.4, 'B': 410.7, 'alpha': 0.34, 'beta': 0.28}
    """
    method = "lbfgsb_chinchilla"
    if isinstance(grid, str):
        named = {"epoch": EPOCH_GRID, "coarse": COARSE_GRID}
        if grid not in named:
            raise ValueError(f"grid must be 'epoch', 'coarse' or an array, not {grid!r}")
        starts = np.array(list(itertools.product(*named[grid])))
    else:
        starts = np.atleast_2d(np.asarray(grid, dtype=np.float64))
    try:
        n, d, loss = _chinchilla_data(frame)
        objective = _huber_lse(np.log(n), np.log(d), np.log(loss), delta)
        fun = objective if jac else (lambda p: objective(p)[0])
        best = None
        with np.errstate(all="ignore"):
            for start in starts:
                res = minimize(fun, start, jac=jac or None, method="L-BFGS-B", options=options)
                if res.success and np.isfinite(res.fun) and (best is None or res.fun < best.fun):
                    best = res
    except _FIT_ERRORS as exc:
        return _failed(method, CHINCHILLA_PARAMS, str(exc))
    if best is None:
        return _failed(method, CHINCHILLA_PARAMS, f"none of {len(starts)} starts succeeded")
    return _converged(method, _chinchilla_params(*best.x), best.fun)


# --- Hoffmann et al. 2022 Approach 2 --------------------------------------------------------


def isoflop_parabolas(frame) -> pd.DataFrame:
    """Hoffmann's Approach 2, step 1: the vertex of a parabola of loss in log N per budget C.

    ``frame``: anything ``slaws.data.load`` takes, with N, C and loss (D, if absent, is
    C / (6 N)). Returns one row per budget: C, N_opt, D_opt, loss_opt, points (rows at that
    budget) and status: ``ok``; ``too_few_points`` (fewer than 3 distinct N); ``not_convex``
    (the parabola does not open upward, so it has no minimum); ``outside`` (the vertex lies
    beyond the sampled N, an extrapolation). Only ``ok`` rows have values. D_opt is read off the
    budget's own log D against log N line, so any FLOP convention of the data is kept.
    Input that ``slaws.data.load`` rejects raises its ``DataError``.

    >>> from slaws import baselines, synthetic
    >>> frame = synthetic.chinchilla_like(noise=0)
    >>> frame["C"] = (6 * frame["N"] * frame["D"]).round(-16)  # one budget per IsoFLOP profile
    >>> optima = baselines.isoflop_parabolas(frame)
    >>> optima["status"].tolist(), optima["points"].tolist()
    (['ok', 'ok', 'ok', 'ok', 'ok', 'ok'], [12, 12, 12, 12, 12, 12])
    >>> f"{optima['N_opt'].iloc[0]:.3g}"
    '1.82e+08'
    """
    frame = _data.load(frame, required=("N", "C", "loss"))
    rows = []
    for c, group in frame.groupby("C", sort=True):
        log_n, loss = np.log(group["N"].to_numpy()), group["loss"].to_numpy()
        row = dict(C=c, N_opt=np.nan, D_opt=np.nan, loss_opt=np.nan, points=len(group))
        if len(np.unique(log_n)) < 3:
            rows.append(row | {"status": "too_few_points"})
            continue
        curve = np.polyfit(log_n, loss, 2)
        if not curve[0] > 0:
            rows.append(row | {"status": "not_convex"})
            continue
        vertex = -curve[1] / (2 * curve[0])
        if not log_n.min() <= vertex <= log_n.max():
            rows.append(row | {"status": "outside"})
            continue
        log_d = np.polyval(np.polyfit(log_n, np.log(group["D"].to_numpy()), 1), vertex)
        row |= dict(N_opt=np.exp(vertex), D_opt=np.exp(log_d), loss_opt=np.polyval(curve, vertex))
        rows.append(row | {"status": "ok"})
    columns = ["C", "N_opt", "D_opt", "loss_opt", "points", "status"]
    return pd.DataFrame(rows, columns=columns)


def approach2(frame: pd.DataFrame, weights=None, d_weights=None) -> dict:
    """Hoffmann's Approach 2, step 2: N_opt = n_coef C^a and D_opt = d_coef C^b by least squares
    of log N_opt (log D_opt) on log C, each point weighted by ``weights`` (``d_weights``, which
    defaults to ``weights``), as sklearn's ``sample_weight`` in Porian et al.'s fits.

    ``frame`` has columns C, N_opt and D_opt, e.g. ``isoflop_parabolas``' output, whose rows
    with a status other than ``ok`` are left out, as are rows with NaN. Weights are a column
    name or one value per row of ``frame``. Returns a, b, n_coef, d_coef, budgets (points
    used) and status (``converged``, or ``failed`` with NaN values when fewer than 2 budgets
    remain).

    >>> import pandas as pd
    >>> from slaws import baselines
    >>> C = pd.Series([1e19, 1e20, 1e21])
    >>> optima = pd.DataFrame({"C": C, "N_opt": 0.1 * C**0.5, "D_opt": C / (0.6 * C**0.5)})
    >>> fit = baselines.approach2(optima)
    >>> round(fit["a"], 4), round(fit["b"], 4), round(fit["n_coef"], 4), fit["status"]
    (0.5, 0.5, 0.1, 'converged')
    """

    def column(w):
        if w is None:
            return np.ones(len(frame))
        return np.asarray(frame[w] if isinstance(w, str) else w, dtype=np.float64)

    def log(name):
        with np.errstate(all="ignore"):
            return np.log(frame[name].to_numpy(np.float64))

    log_c, log_n, log_d = log("C"), log("N_opt"), log("D_opt")
    w_n, w_d = column(weights), column(weights if d_weights is None else d_weights)
    keep = np.isfinite(log_c) & np.isfinite(log_n) & np.isfinite(log_d)
    keep &= np.isfinite(w_n) & np.isfinite(w_d) & (w_n > 0) & (w_d > 0)
    if "status" in frame:
        keep &= (frame["status"] == "ok").to_numpy()
    budgets = int(keep.sum())
    if len(np.unique(log_c[keep])) < 2:
        warnings.warn(f"approach2: {budgets} usable budget(s), 2 needed", RuntimeWarning, 2)
        nan = math.nan
        return dict(a=nan, b=nan, n_coef=nan, d_coef=nan, budgets=budgets, status="failed")
    # polyfit's weights multiply residuals, sample weights their squares.
    a, log_n_coef = np.polyfit(log_c[keep], log_n[keep], 1, w=np.sqrt(w_n[keep]))
    b, log_d_coef = np.polyfit(log_c[keep], log_d[keep], 1, w=np.sqrt(w_d[keep]))
    return dict(
        a=float(a),
        b=float(b),
        n_coef=math.exp(log_n_coef),
        d_coef=math.exp(log_d_coef),
        budgets=budgets,
        status="converged",
    )
