"""The official M1-M4 learning-curve estimators of Alabdulmohsin, Neyshabur and Zhai 2022 and
their extrapolation benchmark, reimplemented to reproduce the published code's numbers.

Alabdulmohsin, Neyshabur, Zhai, "Revisiting Neural Scaling Laws in Language and Vision",
NeurIPS 2022, arXiv:2209.06640; code and data in google-research/google-research,
``revisiting_neural_scaling_laws/`` (``methods/{base,m1,m2,m3,m4}.py`` and the Colab notebook).

These are the paper's *estimators* (their own fitting procedures, used here as baselines), not
the functional forms, which :mod:`slaws.laws.learning_curves` defines for slaws's own fitter::

    M1: e_x = beta x^c                      one least-squares fit of log y on [1, log x]
    M2: e_x = e_inf + beta x^c              alternate least squares for (beta, c) with e_inf
    M3: e_x = beta (1/x + gamma)^c, c >= 0  alternate least squares with a search over gamma
    M4: (e_x - e_inf) / (e_0 - e_x)^alpha = beta x^c
        alternate non-negative least squares for (log beta, -c, alpha) with (e_inf, e_0)

M2 and M4 repeat, up to 10,000 times: the least-squares step, then for the first 100 rounds
1,000 steps of projected gradient descent with learning rate 1e-8 on e_inf (and e_0), and after
that 100 damped Newton steps (rate 0.1, diagonal Hessian) on the same; they stop once beta moves
by less than 1e-10 after round 101. M3 alternates least squares with picking gamma among the
values that fit one point exactly, and stops on the same change in beta. Projection keeps
0 <= e_inf <= min(y) - 1e-3 and e_0 >= max(y) + 1e-3 (and e_0 <= up_bound + 1e-3 when set).

Protocol (the Colab): a curve is keyed by (domain, model, task) for IC, (domain, model) for NMT
and LM, (domain, task) for BB; the fit points are ``{x: y}`` of the rows with ``Training == 1``
(so repeated x collapse, as LM repeats every row four times) and the test points are all the
``Training == 0`` rows, repeats included. The error is (log yhat - log y)^2 per test row; the
reported RMSE is sqrt(mean) and its +- is sqrt(mean + std / sqrt(n)) - sqrt(mean) (numpy's
population std, n raw test rows). A method wins a curve when its RMSE truncated to three decimals
(NaN counting as 1) is the smallest; ties share the win. M4's settings depend on the domain:
e_0 starts at 1 (1.001 for BB) with up_bound 1 for IC and BB and none for NMT and LM.

Quirks kept on purpose, because the published numbers depend on them:

* M4's design matrix holds log(e_0 - y) for the *initial* e_0 and is never rebuilt, so the
  least-squares step and the (e_inf, e_0) step do not minimise the same objective.
* The rounds are not converged when they stop: 11 of the 184 M2/M4 fits reach round 10,000
  with beta still drifting along a flat valley, and where they end depends on the exact path
  (on BB ('ling', '1-shot') M2's e_inf is 0.72 at round 1,000, 0.30 at 10,000 and 0.05 at
  20,000). So every round is replayed, never replaced by a solver of the fixed point. (The round
  at which beta first moves by less than 1e-10 is decided by rounding noise, so round counts
  can differ from the original's by a few percent; the status and the results do not.)
* M4's prediction solves its implicit equation on a 10,000-point grid over [0, e_0 - e_inf],
  so predictions are quantised to (e_0 - e_inf) / 9,999; |alpha| < 1e-5 counts as alpha = 0.
* M3 raises in the original when the fitted slope is <= 0 (1 / c with c = 0); here that fit
  is "failed".

Speed: the replay costs up to 10^6 inner steps per fit, each a sum of logarithms over the fit
points. Within a round (beta, c, alpha) are fixed, and every sum the steps need (gradient and
diagonal Hessian in e_inf and e_0) is a function of the shifts d and f of e_inf and e_0 from a
centre; expanding log(u - d), log(v + f), 1/(u - d) and 1/(v + f) in powers of d/u and f/v
(u = y - e_inf, v = e_0 - y at the centre) turns each sum into a polynomial in (d, f) whose
coefficients combine moments of the fit points. A step then costs a few hundred flops, and the
moments are recomputed only when |d| or |f| exceeds _RADIUS times the smallest u or v, which
keeps the truncation error below 1e-14 relative; between recentrings a new round only
recombines them with its (beta, c, alpha). The updates themselves (rates, projection, guards)
are applied exactly as in the original, in float64 under a scoped ``jax.enable_x64(True)``; with
_RADIUS = 0 every step is recentred and the replay is exact, 50-100 times slower. The 368 fits
of :func:`table` take about 8 s on one core, 2.5 s of which compile the two replays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jax import lax

__all__ = ["METHODS", "Curve", "Fit", "curves", "fit", "score", "table", "win_rates"]

METHODS = ("M1", "M2", "M3", "M4")

_ERR_MARGIN = 1e-3  # base.ERR_MARGIN
_EPS = 1e-5  # m4.EPS: Newton-step guard and the alpha = 0 test in predict
_MAX_ITERATIONS = 10_000
_GRAD_ITERS = 100
_STOP = 1e-10
_GD_LR, _GD_STEPS = 1e-8, 1_000
_NEWTON_LR, _NEWTON_STEPS = 0.1, 100
_PREDICT_GRID = 10_000

# M4's constructor arguments in the Colab, per domain: (initial e_0, up_bound).
_M4_SETTINGS = {"IC": (1.0, 1.0), "BB": (1.001, 1.0), "NMT": (1.0, None), "LM": (1.0, None)}

_PAD = 128  # fit points are padded to a multiple of this
_ORDER = 8  # degree of the moment expansion in d and f
_RADIUS = 0.02  # largest |d| / min(u) and |f| / min(v) before recentring: error ~ 0.02^9

_COLUMNS = [
    "domain", "model", "task", "method", "n_train", "n_test", "extrap_rmse_log", "extrap_se",
    "beta", "c", "err_inf", "gamma", "alpha", "err_0",
]  # fmt: skip
_DEFAULTS = {"beta": 1.0, "c": -0.5, "err_inf": 0.0, "gamma": 0.0, "alpha": 0.0, "err_0": 1.0}


# ----------------------------------------------------------------------------------------------
# Curves


@dataclass(frozen=True, eq=False)  # identity equality: the fields hold arrays
class Curve:
    """One learning curve: deduplicated, x-sorted fit points and the raw test rows.

    >>> import numpy as np
    >>> from slaws import revisiting
    >>> curve = revisiting.Curve("LM", "toy", "val_loss", x_fit=np.array([1e6, 2e6, 4e6]),
    ...                          y_fit=np.array([0.9, 0.8, 0.72]), x_test=np.array([8e6, 16e6]),
    ...                          y_test=np.array([0.66, 0.61]))
    >>> curve.name, len(curve.x_fit), len(curve.x_test)
    ('LM/toy/val_loss', 3, 2)
    """

    domain: str
    model: str
    task: str
    x_fit: np.ndarray = field(repr=False)
    y_fit: np.ndarray = field(repr=False)
    x_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.model}/{self.task}"


def curves(lang: pd.DataFrame | None = None, vision: pd.DataFrame | None = None) -> list[Curve]:
    """The benchmark's 92 curves, sorted by (domain, model, task) like the reference table.

    ``lang`` and ``vision`` are the raw CSVs (``None`` reads the registered dataset
    ``revisiting-scaling``, with ``Model`` as strings so that LM sizes keep their spelling).

    >>> from collections import Counter
    >>> from slaws import revisiting
    >>> all_curves = revisiting.curves()
    >>> len(all_curves), sorted(Counter(cv.domain for cv in all_curves).items())
    (92, [('BB', 10), ('IC', 72), ('LM', 5), ('NMT', 5)])
    >>> lm = next(cv for cv in all_curves if cv.domain == "LM")
    >>> lm.name, len(lm.x_fit), len(lm.x_test)
    ('LM/1.07e+09/val_loss', 11, 40)
    """
    from slaws import datasets

    if lang is None:
        lang = datasets.read("revisiting-scaling", dtype={"Model": str})
    if vision is None:
        vision = datasets.read("revisiting-scaling", "vision", dtype={"Model": str})
    df = pd.concat([vision, lang], ignore_index=True)
    df["Model"] = df["Model"].astype(str)
    df["Task"] = df["Task"].astype(str)
    keys = {"IC": ["Model", "Task"], "NMT": ["Model"], "LM": ["Model"], "BB": ["Task"]}
    out = []
    for domain, rows in df.groupby("Domain", sort=True):
        for _, group in rows.groupby(keys[domain], sort=True):
            train = group[group["Training"] == 1]
            # {x: y} in the Colab: the last row of a repeated x wins, then base.M sorts by x.
            train = train.drop_duplicates("Seen Examples", keep="last").sort_values("Seen Examples")
            test = group[group["Training"] == 0]
            out.append(
                Curve(
                    domain=str(domain),
                    model=",".join(sorted(group["Model"].unique())),
                    task=",".join(sorted(group["Task"].unique())),
                    x_fit=train["Seen Examples"].to_numpy(np.float64),
                    y_fit=train["Loss"].to_numpy(np.float64),
                    x_test=test["Seen Examples"].to_numpy(np.float64),
                    y_test=test["Loss"].to_numpy(np.float64),
                )
            )
    out.sort(key=lambda cv: (cv.domain, cv.model, cv.task))
    return out


_read_curves = curves  # table's argument is also called curves


# ----------------------------------------------------------------------------------------------
# Fits


@dataclass(frozen=True)
class Fit:
    """A fitted estimator: ``params`` has beta, c, err_inf, gamma, alpha and err_0 (unused ones
    hold the original's defaults); ``status`` is "converged", "max_iterations" or "failed".

    >>> from slaws import revisiting
    >>> m1 = revisiting.fit("M1", [1.0, 10.0, 100.0], [1.0, 0.5, 0.25], "LM")  # y = x^-log10(2)
    >>> m1.status, round(m1.params["beta"], 4), round(m1.params["c"], 4)
    ('converged', 1.0, -0.301)
    >>> [round(float(y), 4) for y in m1.predict([1000.0, 10000.0])]
    [0.125, 0.0625]
    """

    method: str
    params: dict[str, float]
    status: str

    def predict(self, x) -> np.ndarray:
        """The original's ``predict_loss`` at each x (NaN everywhere for a failed fit)."""
        x = np.asarray(x, dtype=np.float64)
        if self.status == "failed":
            return np.full(x.shape, np.nan)
        p = self.params
        with np.errstate(all="ignore"):
            if self.method == "M3":
                return p["beta"] * (1.0 / x + p["gamma"]) ** p["c"]
            f = p["beta"] * x ** p["c"]
            if self.method != "M4" or abs(p["alpha"]) < _EPS:
                return f + p["err_inf"]
            return _m4_grid_solve(f, p["err_0"] - p["err_inf"], p["alpha"]) + p["err_inf"]


def _m4_grid_solve(f: np.ndarray, b: float, alpha: float) -> np.ndarray:
    """argmin over w in linspace(0, b, 10_000) of |w - f (b - w)^alpha|, for each f.

    The residual increases with w (for f > 0, alpha > 0), so its absolute value is smallest at
    one of the two grid points around its sign change: a vectorised bisection finds them
    instead of scanning the 10,000 points per x; the first of two equal values wins, as in
    np.argmin.
    """
    shape = f.shape
    f = f.ravel()
    if not (b > 0 and np.isfinite(b) and np.isfinite(alpha)):
        return np.full(shape, np.nan)
    w = np.linspace(0.0, b, _PREDICT_GRID)
    resid = lambda k: w[k] - f * (b - w[k]) ** alpha
    lo = np.zeros(f.shape, dtype=np.int64)  # resid(lo) < 0 unless lo = 0
    hi = np.full(f.shape, _PREDICT_GRID - 1)  # resid(hi) >= 0 unless hi = last
    for _ in range(int(math.ceil(math.log2(_PREDICT_GRID)))):
        mid = (lo + hi) // 2
        neg = resid(mid) < 0
        lo = np.where(neg, mid, lo)
        hi = np.where(neg, hi, mid)
    first = np.abs(resid(lo)) <= np.abs(resid(hi))
    out = w[np.where(first, lo, hi)]
    return np.where(np.isfinite(f) & (f > 0), out, np.nan).reshape(shape)


def fit(method: str, x, y, domain: str) -> Fit:
    """Fit the official estimator ``method`` to the points (x, y) with the Colab's settings for
    ``domain`` (IC, NMT, LM or BB). Repeated x collapse to the last y, as in ``{x: y}``.

    Never raises for bad data: non-positive or non-finite values, fewer than three distinct x,
    or anything the original would choke on give status "failed" (predictions NaN).

    >>> from slaws import revisiting
    >>> curve = next(cv for cv in revisiting.curves() if cv.domain == "NMT")
    >>> m4 = revisiting.fit("M4", curve.x_fit, curve.y_fit, curve.domain)
    >>> m4.status, round(m4.params["err_inf"], 3), round(m4.params["alpha"], 3)
    ('converged', 0.279, 0.725)
    >>> rmse, _ = revisiting.score(curve, m4.predict(curve.x_test))
    >>> f"{curve.name}: extrapolation RMSE (log) {rmse:.4f}"
    'NMT/28 Enc, 6 Dec/log_perplexity: extrapolation RMSE (log) 0.0181'
    >>> revisiting.fit("M4", [1.0, 2.0], [0.5, 0.4], "NMT").status  # too few points
    'failed'
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    if domain not in _M4_SETTINGS:
        raise ValueError(f"unknown domain {domain!r}; expected one of {tuple(_M4_SETTINGS)}")
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    failed = Fit(method, dict(_DEFAULTS), "failed")
    if x.shape != y.shape:
        return failed
    points = dict(zip(x.tolist(), y.tolist(), strict=True))
    xs = np.array(sorted(points))
    ys = np.array([points[v] for v in xs])
    if len(xs) < 3 or not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))):
        return failed
    if np.any(xs <= 0) or np.any(ys <= 0):
        return failed
    with np.errstate(all="ignore"):
        if method == "M1":
            result = _fit_m1(xs, ys)
        elif method == "M3":
            result = _fit_m3(xs, ys)
        else:
            result = _fit_iterative(method, xs, ys, domain)
    params, status = result
    if status != "failed" and not all(np.isfinite(v) for v in params.values()):
        status = "failed"
    if status == "failed":
        return failed
    return Fit(method, {k: float(v) for k, v in params.items()}, status)


def _fit_m1(x, y):
    log_beta, c = _line(np.log(x), np.log(y))
    return {**_DEFAULTS, "beta": np.exp(log_beta), "c": c}, "converged"


def _fit_m3(x, y):
    beta, c, gamma = 1.0, -0.5, 0.0
    log_y = np.log(y)

    def objective(gamma):  # base._get_objt, for one gamma or a column of them
        return 0.5 * np.sqrt(np.sum((log_y - np.log(beta) - c * np.log(1 / x + gamma)) ** 2, -1))

    old_beta = beta
    for _ in range(_MAX_ITERATIONS):
        log_beta, c = _line(np.log(1 / x + gamma), log_y)
        beta = np.exp(log_beta)
        if not c > 0:  # the original sets c = max(0, slope), then divides by c
            return None, "failed"
        candidates = (y / beta) ** (1 / c) - 1 / x
        candidates = candidates[candidates >= 0]
        if candidates.size:
            # The original scans the candidates in order and keeps a strictly better one: the
            # first smallest objective wins if it beats the current gamma's.
            losses = objective(candidates[:, None])
            best = int(np.argmin(np.where(np.isnan(losses), np.inf, losses)))
            if losses[best] < objective(gamma):
                gamma = candidates[best]
        gap, old_beta = beta - old_beta, beta
        if abs(gap) < _STOP:
            return {**_DEFAULTS, "beta": beta, "c": c, "gamma": gamma}, "converged"
    return {**_DEFAULTS, "beta": beta, "c": c, "gamma": gamma}, "max_iterations"


def _line(t, z):
    """Least-squares (intercept, slope) of z on t, as ``LinearRegression`` on [1, t]."""
    t_mean, z_mean = t.mean(), z.mean()
    slope = np.dot(t - t_mean, z - z_mean) / np.dot(t - t_mean, t - t_mean)
    return z_mean - slope * t_mean, slope


def _fit_iterative(method, x, y, domain):
    m4 = method == "M4"
    min_err, max_err = y.min() - _ERR_MARGIN, y.max() + _ERR_MARGIN
    err_0, up_bound = _M4_SETTINGS[domain] if m4 else (1.0, None)
    up = np.inf if up_bound is None else up_bound + _ERR_MARGIN
    if m4 and not np.all(err_0 > y):  # log(e_0 - y) in the design matrix
        return None, "failed"
    n = len(x)
    size = -(-n // _PAD) * _PAD  # one compilation per method for all curves up to _PAD points
    pad = size - n
    log_x = np.log(x)
    if m4:
        design = np.stack([np.ones(n), -log_x, np.log(err_0 - y)], 1)
    else:
        design = np.stack([np.ones(n), log_x], 1)
    solve = _subset_solvers(design) if m4 else np.linalg.pinv(design)[None]
    # Padding repeats the first point with zero weight, so logs stay finite and sums ignore it.
    weights = np.r_[np.full(n, 1.0 / n), np.zeros(pad)]
    y_pad = np.r_[y, np.full(pad, y[0])]
    log_x_pad = np.r_[log_x, np.full(pad, log_x[0])]
    design_pad = np.r_[design, np.zeros((pad, design.shape[1]))]
    solve_pad = np.concatenate([solve, np.zeros(solve.shape[:2] + (pad,))], axis=2)
    with jax.enable_x64(True):
        k, beta, c, alpha, e_inf, e_0, done = (
            np.asarray(v)
            for v in _replay(
                m4,
                _ORDER,
                _RADIUS,
                log_x_pad,
                y_pad,
                weights,
                design_pad,
                solve_pad,
                np.array([min_err, max_err, up, min_err, err_0]),
            )
        )
    params = {**_DEFAULTS, "beta": beta, "c": c, "err_inf": e_inf, "alpha": alpha}
    params["err_0"] = e_0 if m4 else max(1.0, max_err)
    if not np.isfinite(beta):
        return None, "failed"
    return params, "converged" if done else "max_iterations"


def _subset_solvers(design):
    """Least-squares operators for the 7 non-empty column subsets of the (n, 3) design, as an
    (8, 3, n) stack (the last is the empty subset, all zeros). Non-negative least squares with
    3 unknowns is the feasible subset solution with the smallest residual, which is how
    ``LinearRegression(positive=True)``'s NNLS is replaced here."""
    n = design.shape[0]
    out = np.zeros((8, 3, n))
    for s in range(1, 8):
        cols = [j for j in range(3) if s >> j & 1]
        out[s - 1, cols] = np.linalg.pinv(design[:, cols])
    return out


# ----------------------------------------------------------------------------------------------
# The M2/M4 replay (jax, float64)


def _series_constants(order):
    """Static coefficients of the expansions: H_p = sum_{m<=p} 1/m (from log(1-d/u) / (u-d)),
    G_p = sum_{m<=p} (p-m+1)/m (from log(1-d/u) / (u-d)^2), 1/p and (-1)^p."""
    p = np.arange(order + 1)
    inv = np.r_[0.0, 1.0 / p[1:]]
    harmonic = np.cumsum(inv)
    g = np.array([sum((k - m + 1) / m for m in range(1, k + 1)) for k in p])
    return p.astype(float), inv, harmonic, g, (-1.0) ** p


@partial(jax.jit, static_argnums=(0, 1, 2))
def _replay(m4, order, radius, log_x, y, w, design, solve, bounds):
    """All rounds of M2 (``m4`` false) or M4; returns (rounds, beta, c, alpha, e_inf, e_0,
    stopped). ``bounds`` = (min_err, max_err, up, initial e_inf, initial e_0).

    The sums over points that the steps need, with u = y - e_inf, v = e_0 - y and
    r = log u - alpha log v - log beta - c log x, are

        A = mean(r / u)  B = mean(r / v)  C = mean((1 - r) / u^2)  D = mean((alpha + r) / v^2)

    (gradients -A and -alpha B, curvatures C and alpha D). After shifts d of e_inf and f of e_0
    from a centre, each is a polynomial in (d, f) whose coefficients combine the moments
    S_u[a] = mean(u^-a), T_u[a] = mean(r u^-a), likewise S_v, T_v, and K[a, b] = mean(u^-a v^-b)
    at the centre. The moments that do not involve r stay valid while the centre stays; those
    that do are linear in (1, alpha, log beta, c), so a round only recombines them.
    """
    min_err, max_err, up, e_inf0, e_00 = bounds
    real = w > 0
    p, inv_p, harmonic, g_p, sign = (jnp.asarray(a) for a in _series_constants(order))
    mu_q = sign * inv_p  # (-1)^q / q: the f-series of -log(1 + f/v), times alpha

    def inverse_powers(u):  # u^-k for k = 0 .. order + 2, as (points, order + 3)
        return jnp.cumprod(jnp.tile((1.0 / u)[:, None], order + 3).at[:, 0].set(1.0), axis=1)

    def centre(e_inf, e_0):
        """Moments at the centre (e_inf, e_0): per side, rows mean(z u^-a) for z = 1, log u,
        log x (and log v), and the cross moments K."""
        u = y - e_inf
        weights = [w, w * jnp.log(u), w * log_x]
        u_min = jnp.min(jnp.where(real, u, jnp.inf))
        if not m4:
            return e_inf, e_0, u_min, jnp.inf, jnp.stack(weights) @ inverse_powers(u)
        v = e_0 - y
        weights.append(w * jnp.log(v))
        u_pow, v_pow = inverse_powers(u), inverse_powers(v)
        sides = jnp.stack(weights) @ jnp.stack([u_pow, v_pow], 1).reshape(y.size, -1)
        cross = (w[:, None] * u_pow).T @ v_pow
        v_min = jnp.min(jnp.where(real, v, jnp.inf))
        return e_inf, e_0, u_min, v_min, (sides, cross)

    def inside(base, e_inf, e_0):
        c_inf, c_0, u_min, v_min, _ = base
        return (jnp.abs(e_inf - c_inf) <= radius * u_min) & (jnp.abs(e_0 - c_0) <= radius * v_min)

    def assemble(base, log_beta, c, alpha):
        """The coefficient matrices [j, q] of d^j f^q: (A, C) for M2, (A, B, C, D) for M4."""
        if not m4:
            s, log_u, lx = base[4]
            t = log_u - log_beta * s - c * lx
            a = t[1 : order + 2] - harmonic * s[1 : order + 2]
            cc = (p + 1) * (s[2:] - t[2:]) + g_p * s[2:]
            return jnp.stack([a, cc])[:, :, None]
        sides, k = base[4]
        sides = sides.reshape(4, 2, order + 3)
        s_u, s_v = sides[0]
        t_u, t_v = sides[1] - log_beta * sides[0] - c * sides[2] - alpha * sides[3]
        mu = alpha * mu_q
        ell = -inv_p[:, None]  # -1/j: the d-series of log(1 - d/u)
        top = order + 1
        # cross terms (a d-series times an f-series, averaged), then the single-variable ones
        a = (mu * k[1 : top + 1, :top]).at[:, 0].set(t_u[1 : top + 1] - harmonic * s_u[1 : top + 1])
        b = ell * sign * k[:top, 1 : top + 1]
        b = b.at[0].set(sign * (t_v[1 : top + 1] + alpha * harmonic * s_v[1 : top + 1]))
        cc = -mu * (p[:, None] + 1) * k[2:, :top]
        cc = cc.at[:, 0].set((p + 1) * (s_u[2:] - t_u[2:]) + g_p * s_u[2:])
        d = ell * (p + 1) * sign * k[:top, 2:]
        d = d.at[0].set(sign * ((p + 1) * (alpha * s_v[2:] + t_v[2:]) + alpha * g_p * s_v[2:]))
        return jnp.stack([a, b, cc, d])

    def evaluate(coefs, d, f, count):
        """The first ``count`` polynomials at (d, f), by Horner in f then d."""
        coefs = coefs[:count]
        acc = coefs[:, :, -1]
        for q in range(coefs.shape[2] - 2, -1, -1):
            acc = acc * f + coefs[:, :, q]
        s = acc[:, order]
        for j in range(order - 1, -1, -1):
            s = s * d + acc[:, j]
        return s

    def project(e_inf, e_0):
        e_inf = jnp.minimum(jnp.maximum(e_inf, 0.0), min_err)
        e_0 = jnp.minimum(jnp.maximum(e_0, max_err), up)
        return e_inf, e_0

    def gd_step(coefs, d, f, e_inf, e_0, alpha):
        vals = evaluate(coefs, d, f, 2 if m4 else 1)
        e_inf = e_inf - _GD_LR * -vals[0]
        if m4:
            e_0 = e_0 - _GD_LR * (-alpha * vals[1])
        return project(e_inf, e_0)

    def newton_step(coefs, d, f, e_inf, e_0, alpha):
        vals = evaluate(coefs, d, f, 4 if m4 else 2)
        if not m4:
            return project(e_inf - _NEWTON_LR * -vals[0] / vals[1], e_0)
        grad_inf, grad_0, h_inf, h_0 = -vals[0], -alpha * vals[1], vals[2], alpha * vals[3]
        # m4._update_errs_hessian skips a coordinate whose curvature is below EPS
        e_inf = jnp.where(jnp.abs(h_inf) > _EPS, e_inf - _NEWTON_LR * grad_inf / h_inf, e_inf)
        e_0 = jnp.where(jnp.abs(h_0) > _EPS, e_0 - _NEWTON_LR * grad_0 / h_0, e_0)
        return project(e_inf, e_0)

    def inner(step, steps, e_inf, e_0, base, log_beta, c, alpha):
        def segment(carry):
            e_inf, e_0, left, base = carry
            base = lax.cond(inside(base, e_inf, e_0), lambda: base, lambda: centre(e_inf, e_0))
            coefs = assemble(base, log_beta, c, alpha)

            def going(carry):
                e_inf, e_0, left, fresh = carry
                return (left > 0) & (fresh | inside(base, e_inf, e_0))

            def advance(carry):
                e_inf, e_0, left, _ = carry
                e_inf, e_0 = step(coefs, e_inf - base[0], e_0 - base[1], e_inf, e_0, alpha)
                return e_inf, e_0, left - 1, False

            e_inf, e_0, left, _ = lax.while_loop(going, advance, (e_inf, e_0, left, True))
            return e_inf, e_0, left, base

        e_inf, e_0, _, base = lax.while_loop(
            lambda carry: carry[2] > 0, segment, (e_inf, e_0, steps, base)
        )
        return e_inf, e_0, base

    def least_squares(e_inf):
        labels = jnp.where(real, jnp.log(y - e_inf), 0.0)
        coefs = solve @ labels  # (subsets, unknowns)
        if not m4:
            log_beta, c = coefs[0]
            return log_beta, c, jnp.zeros(())
        resid = jnp.sum((labels - coefs @ design.T) ** 2, axis=1)
        resid = jnp.where(jnp.all(coefs >= 0, axis=1), resid, jnp.inf)
        log_beta, minus_c, alpha = coefs[jnp.argmin(resid)]
        return log_beta, -minus_c, alpha

    def round_(carry):
        k, _, _, _, e_inf, e_0, old_beta, _, base = carry
        log_beta, c, alpha = least_squares(e_inf)
        beta = jnp.exp(log_beta)
        args = (e_inf, e_0, base, log_beta, c, alpha)
        e_inf, e_0, base = lax.cond(
            k < _GRAD_ITERS,
            lambda: inner(gd_step, _GD_STEPS, *args),
            lambda: inner(newton_step, _NEWTON_STEPS, *args),
        )
        stop = (jnp.abs(beta - old_beta) < _STOP) & (k > _GRAD_ITERS + 1)
        lost = ~jnp.isfinite(beta) | ~jnp.isfinite(e_inf) | ~jnp.isfinite(e_0)
        return k + 1, beta, c, alpha, e_inf, e_0, beta, stop | lost, base

    def going(carry):
        return (carry[0] < _MAX_ITERATIONS) & ~carry[7]

    one = jnp.ones(())
    start = (jnp.zeros((), int), one, -0.5 * one, 0.0 * one, e_inf0, e_00, one, False)
    k, beta, c, alpha, e_inf, e_0, _, stopped, _ = lax.while_loop(
        going, round_, (*start, centre(e_inf0, e_00))
    )
    return k, beta, c, alpha, e_inf, e_0, stopped & jnp.isfinite(beta)


# ----------------------------------------------------------------------------------------------
# Evaluation


def score(curve: Curve, predicted: np.ndarray) -> tuple[float, float]:
    """(RMSE of log predictions, its +-) over the curve's raw test rows, as the Colab's
    ``get_error``: sqrt(mean e) and sqrt(mean e + std e / sqrt n) - sqrt(mean e).

    >>> import numpy as np
    >>> from slaws import revisiting
    >>> curve = revisiting.Curve("LM", "toy", "val_loss", x_fit=np.array([1e6, 2e6, 4e6]),
    ...                          y_fit=np.array([0.9, 0.8, 0.72]), x_test=np.array([8e6, 16e6]),
    ...                          y_test=np.array([0.66, 0.61]))
    >>> rmse, plus_minus = revisiting.score(curve, curve.y_test * np.exp([0.1, -0.1]))
    >>> round(rmse, 4), round(plus_minus, 4)
    (0.1, 0.0)
    """
    with np.errstate(all="ignore"):
        error = (np.log(np.asarray(predicted, dtype=np.float64)) - np.log(curve.y_test)) ** 2
        mean = np.mean(error)
        plus_minus = np.sqrt(mean + np.std(error) / len(error) ** 0.5) - np.sqrt(mean)
    return float(np.sqrt(mean)), float(plus_minus)


def table(curves=None, methods=METHODS) -> pd.DataFrame:
    """Every method on every curve: the columns and row order of
    ``reference_official_m1_m4.csv`` (``curves=None`` uses :func:`curves`).

    >>> from slaws import revisiting
    >>> lm = [cv for cv in revisiting.curves() if cv.domain == "LM"][:2]
    >>> rows = revisiting.table(lm, methods=("M1", "M3"))
    >>> for row in rows.itertuples():
    ...     print(row.model, row.method, row.n_train, row.n_test, f"{row.extrap_rmse_log:.4f}")
    1.07e+09 M1 11 40 0.0171
    1.07e+09 M3 11 40 0.0045
    1.34e+08 M1 12 48 0.0143
    1.34e+08 M3 12 48 0.0006
    """
    curve_list = _read_curves() if curves is None else list(curves)
    rows = []
    for cv in curve_list:
        for method in methods:
            result = fit(method, cv.x_fit, cv.y_fit, cv.domain)
            rmse, plus_minus = score(cv, result.predict(cv.x_test))
            rows.append(
                {
                    "domain": cv.domain,
                    "model": cv.model,
                    "task": cv.task,
                    "method": method,
                    "n_train": len(cv.x_fit),
                    "n_test": len(cv.x_test),
                    "extrap_rmse_log": rmse,
                    "extrap_se": plus_minus,
                    **result.params,
                }
            )
    return pd.DataFrame(rows, columns=_COLUMNS)


def win_rates(table: pd.DataFrame) -> pd.DataFrame:
    """Per domain and over all curves: the number of curves, mean and median RMSE per method and
    the Colab's win rate (RMSE truncated to 3 decimals, NaN as 1, ties split), with the columns
    of ``reference_official_m1_m4_summary.csv``.

    >>> from slaws import revisiting
    >>> nmt = [cv for cv in revisiting.curves() if cv.domain == "NMT"]
    >>> summary = revisiting.win_rates(revisiting.table(nmt, methods=("M1", "M3")))
    >>> summary[["domain", "n_curves", "win_M1", "win_M3"]].values.tolist()
    [['NMT', 5, 0.0, 1.0], ['ALL', 5, 0.0, 1.0]]
    >>> round(float(summary.loc[0, "median_rmse_M3"]), 4)
    0.0337
    """
    methods = list(dict.fromkeys(table["method"]))
    wide = table.set_index(["domain", "model", "task", "method"])["extrap_rmse_log"]
    wide = wide.unstack("method")[methods]
    e = wide.to_numpy(np.float64)
    truncated = np.trunc(np.where(np.isnan(e), 1.0, e) * 1_000) / 1_000  # int(e * 1000) / 1000
    best = truncated == truncated.min(axis=1, keepdims=True)
    wins = pd.DataFrame(best / best.sum(axis=1, keepdims=True), index=wide.index, columns=methods)
    rows = []
    groups = [
        (d, wide.index.get_level_values(0) == d)
        for d in sorted(set(wide.index.get_level_values(0)))
    ]
    groups.append(("ALL", np.ones(len(wide), dtype=bool)))
    for domain, mask in groups:
        row = {"domain": domain, "n_curves": int(mask.sum())}
        row.update({f"mean_rmse_{m}": wide[m][mask].mean() for m in methods})
        row.update({f"median_rmse_{m}": wide[m][mask].median() for m in methods})
        row.update({f"win_{m}": wins[m][mask].mean() for m in methods})
        rows.append(row)
    return pd.DataFrame(rows)
