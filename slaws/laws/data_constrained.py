"""Data-constrained law of Muennighoff et al. 2023 ("Scaling Data-Constrained Language Models",
arXiv:2305.16264, Eq. 5), as implemented in huggingface/datablations.

    L = E + A / N'^alpha + B / D'^beta
    D' = U_D + U_D R*_D (1 - exp(-R_D / R*_D)),   R_D = D / U_D - 1
    N' = U_N + U_N R*_N (1 - exp(-R_N / R*_N)),   R_N = N / U_N - 1,
    U_N = min(N, N_opt(U_D)),  N_opt(D) = (D G)^(beta/alpha) G,
    G = (alpha A / (beta B))^(1/(alpha+beta))

Repeated data is worth less than fresh data (R*_D sets the decay) and parameters beyond what the
unique data can feed decay likewise (R*_N). ``U`` is the number of unique tokens; without a ``U``
column every token is unique (U = D). Evaluated in log space with log1p/expm1.
"""

import jax.numpy as jnp

from slaws.law import Law, Param, grid, log_grid, lse


def _log_effective(log_unique, repeats, r_star):
    """log(U + U R* (1 - exp(-R/R*)))."""
    return log_unique + jnp.log1p(-r_star * jnp.expm1(-repeats / r_star))


def log_loss(p, x):
    """log L of the data-constrained law at ``p`` and inputs ``x`` (``N``, ``D``, optional ``U``).

    A 1B model trained on 100B tokens: fresh data, then 4 and 20 epochs over fewer unique tokens.

    >>> import math
    >>> from slaws.laws import data_constrained
    >>> from slaws.presets import get_preset
    >>> p = get_preset("muennighoff2023")["params"]
    >>> for u in (100e9, 25e9, 5e9):
    ...     x = {"N": 1e9, "D": 100e9, "U": u}
    ...     print(round(math.exp(float(data_constrained.log_loss(p, x))), 3))
    2.415
    2.42
    2.478
    """
    log_n, log_d = jnp.log(x["N"]), jnp.log(x["D"])
    # Unique tokens seen: U, or all of D when a run trains on fewer tokens than there are.
    log_u = jnp.minimum(jnp.log(x["U"]), log_d) if "U" in x else log_d
    alpha, beta = p["alpha"], p["beta"]
    log_a, log_b = jnp.log(p["A"]), jnp.log(p["B"])
    log_g = (jnp.log(alpha) + log_a - jnp.log(beta) - log_b) / (alpha + beta)
    log_un = jnp.minimum(log_n, (beta / alpha) * (log_u + log_g) + log_g)
    repeats_n = jnp.expm1(log_n - log_un)
    repeats_d = jnp.expm1(jnp.maximum(log_d - log_u, 0.0))
    log_n_eff = _log_effective(log_un, repeats_n, p["R_N_star"])
    log_d_eff = _log_effective(log_u, repeats_d, p["R_D_star"])
    return lse(log_a - alpha * log_n_eff, log_b - beta * log_d_eff, jnp.log(p["E"]))


PARAMS = (
    Param("E", log=True, prior=("LogNormal", 0.5, 0.5), doc="irreducible loss"),
    Param("A", log=True, prior=("LogNormal", 6.0, 2.5), doc="model-size scale"),
    Param("B", log=True, prior=("LogNormal", 7.0, 2.5), doc="data scale"),
    Param("alpha", 1e-3, 3.0, prior=("Uniform", 0.0, 3.0), doc="model-size exponent"),
    Param("beta", 1e-3, 3.0, prior=("Uniform", 0.0, 3.0), doc="data exponent"),
    Param("R_D_star", log=True, prior=("LogNormal", 2.7, 1.0), doc="repeated-data half-life"),
    Param("R_N_star", log=True, prior=("LogNormal", 1.7, 1.0), doc="excess-parameter half-life"),
)

GRID = {
    "E": log_grid(-1.0, 1.0, 1.0),
    "A": log_grid(0.0, 20.0, 5.0),
    "B": log_grid(0.0, 20.0, 5.0),
    "alpha": grid(0.2, 0.6, 0.2),
    "beta": grid(0.2, 0.6, 0.2),
    "R_D_star": [5.0, 15.0, 50.0],
    "R_N_star": [2.0, 5.0, 20.0],
}

LAW = Law(
    name="data_constrained",
    log_loss=log_loss,
    params=PARAMS,
    inputs=("N", "D"),
    optional_inputs=("U",),
    citation="Muennighoff et al. 2023, Scaling Data-Constrained Language Models, "
    "arXiv:2305.16264, Eq. 5",
    doc=__doc__,
    init_grid=GRID,
)
LAWS = (LAW,)
