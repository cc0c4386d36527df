"""One-dimensional learning-curve forms M1-M4 of Alabdulmohsin, Neyshabur and Zhai 2022
("Revisiting Neural Scaling Laws in Language and Vision", arXiv:2209.06640, Section 3):

    M1: e_x = beta x^c
    M2: e_x = e_inf + beta x^c
    M3: e_x = beta (1/x + gamma)^c                   (so e_inf = beta gamma^c)
    M4: (e_x - e_inf) / (e_0 - e_x)^alpha = beta x^(-c)

The input is the column ``x`` (examples or tokens seen); the target is the error or loss. M4
defines e_x implicitly: it is the unique root of an increasing function of w = e_x - e_inf in
(0, e_0 - e_inf), found by safeguarded Newton iterations on t = logit(w / (e_0 - e_inf)), where
the slope lies between min(1, alpha) and max(1, alpha). Gradients come from the implicit function
theorem (one Newton step taken outside stop_gradient), not from differentiating the iterations.

>>> import jax.numpy as jnp
>>> from slaws.laws.learning_curves import LAWS, M2
>>> [law.name for law in LAWS]
['m1', 'm2', 'm3', 'm4']
>>> p = {"eps_inf": 0.1, "beta": 5.0, "c": -0.5}
>>> [round(float(v), 3) for v in M2.loss(p, {"x": jnp.array([1.0, 100.0, 1e4])})]
[5.1, 0.6, 0.15]
"""

import jax
import jax.numpy as jnp
import numpy as np

from slaws.law import Law, Param, grid, log_grid, lse

_CITATION = (
    "Alabdulmohsin, Neyshabur and Zhai 2022, Revisiting Neural Scaling Laws in Language and "
    "Vision, arXiv:2209.06640"
)
_BETA = Param("beta", log=True, prior=("LogNormal", 0.0, 5.0), doc="scale")
_EPS_INF = Param("eps_inf", log=True, prior=("LogNormal", -2.0, 2.0), doc="error at infinite x")


def _m1(p, x):
    return jnp.log(p["beta"]) + p["c"] * jnp.log(x["x"])


def _m2(p, x):
    return lse(jnp.log(p["eps_inf"]), jnp.log(p["beta"]) + p["c"] * jnp.log(x["x"]))


def _m3(p, x):
    return jnp.log(p["beta"]) + p["c"] * lse(-jnp.log(x["x"]), jnp.log(p["gamma"]))


def _m4_residual(t, log_span, alpha, log_rhs):
    """log w - alpha log(span - w) - log(beta x^-c), with w = span * sigmoid(t); increasing in t."""
    return log_span + jax.nn.log_sigmoid(t) - alpha * (log_span + jax.nn.log_sigmoid(-t)) - log_rhs


def _m4_root(log_span, alpha, log_rhs, iterations=60):
    slope_lo = jnp.maximum(jnp.minimum(1.0, alpha), 1e-6)
    g0 = _m4_residual(0.0, log_span, alpha, log_rhs)
    radius = jnp.abs(g0) / slope_lo + 1.0
    lo, hi = -radius, radius
    t = jnp.zeros_like(g0)

    def body(_, state):
        t, lo, hi = state
        g = _m4_residual(t, log_span, alpha, log_rhs)
        lo, hi = jnp.where(g < 0, t, lo), jnp.where(g < 0, hi, t)
        slope = jax.nn.sigmoid(-t) + alpha * jax.nn.sigmoid(t)
        newton = t - g / slope
        inside = (newton > lo) & (newton < hi)
        return jnp.where(inside, newton, 0.5 * (lo + hi)), lo, hi

    t, _, _ = jax.lax.fori_loop(0, iterations, body, (t, lo, hi))
    return t


def _m4(p, x):
    log_x = jnp.log(x["x"])
    span = p["eps_0"] - p["eps_inf"]
    # Infeasible parameters (e_0 <= e_inf) give NaN, which optimisers treat as a rejected step.
    log_span = jnp.where(span > 0, jnp.log(jnp.where(span > 0, span, 1.0)), jnp.nan)
    alpha = p["alpha"]
    log_rhs = jnp.log(p["beta"]) - p["c"] * log_x
    t_star = jax.lax.stop_gradient(_m4_root(*jax.lax.stop_gradient((log_span, alpha, log_rhs))))
    g = _m4_residual(t_star, log_span, alpha, log_rhs)
    slope = jax.lax.stop_gradient(jax.nn.sigmoid(-t_star) + alpha * jax.nn.sigmoid(t_star))
    t = t_star - g / slope
    return lse(jnp.log(p["eps_inf"]), log_span + jax.nn.log_sigmoid(t))


def _grid_m1(frame):
    return {"beta": log_grid(-10.0, 20.0, 5.0), "c": grid(-1.0, 0.0, 0.25)}


def _grid_m2(frame):
    y = np.asarray(frame["loss"])
    return {"eps_inf": (y.min() * np.array([0.01, 0.5, 0.9])).tolist()} | _grid_m1(frame)


def _grid_m3(frame):
    return {
        "beta": log_grid(-5.0, 10.0, 5.0),
        "gamma": log_grid(-20.0, 0.0, 5.0),
        "c": grid(0.0, 1.0, 0.25),
    }


def _grid_m4(frame):
    y = np.asarray(frame["loss"])
    return {
        "beta": log_grid(-10.0, 20.0, 5.0),
        "c": [0.2, 0.5, 1.0],
        "alpha": [0.5, 1.0, 2.0],
        "eps_inf": (y.min() * np.array([0.01, 0.5, 0.9])).tolist(),
        "eps_0": (y.max() * np.array([1.01, 1.5, 3.0])).tolist(),
    }


def _law(name, fn, params, init_grid, doc):
    return Law(
        name=name,
        log_loss=fn,
        params=params,
        inputs=("x",),
        citation=_CITATION,
        doc=doc,
        init_grid=init_grid,
    )


# Bounded parameters take a uniform prior over their bounds (the sampler then respects them).
_C_M1 = Param("c", -5.0, 5.0, prior=("Uniform", -5.0, 5.0), doc="exponent")
M1 = _law("m1", _m1, (_BETA, _C_M1), _grid_m1, "e_x = beta x^c")
M2 = _law(
    "m2",
    _m2,
    (_EPS_INF, _BETA, Param("c", -5.0, 0.0, prior=("Uniform", -5.0, 0.0), doc="exponent")),
    _grid_m2,
    "e_x = e_inf + beta x^c",
)
M3 = _law(
    "m3",
    _m3,
    (
        _BETA,
        Param("gamma", log=True, prior=("LogNormal", -10.0, 8.0), doc="offset"),
        Param("c", 0.0, 5.0, prior=("Uniform", 0.0, 5.0), doc="exponent"),
    ),
    _grid_m3,
    "e_x = beta (1/x + gamma)^c",
)
M4 = _law(
    "m4",
    _m4,
    (
        _BETA,
        Param("c", 0.0, 5.0, prior=("Uniform", 0.0, 5.0), doc="exponent"),
        Param("alpha", 1e-3, 10.0, prior=("Uniform", 1e-3, 10.0), doc="saturation exponent"),
        _EPS_INF,
        Param("eps_0", log=True, prior=("LogNormal", 0.0, 1.0), doc="error at x = 0"),
    ),
    _grid_m4,
    "(e_x - e_inf) / (e_0 - e_x)^alpha = beta x^(-c)",
)
LAWS = (M1, M2, M3, M4)
