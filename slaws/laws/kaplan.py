"""Kaplan et al. 2020: L = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D.

"Scaling Laws for Neural Language Models", arXiv:2001.08361, Eq. 1.5. Evaluated as
log L = alpha_D * LSE((alpha_N/alpha_D)(log N_c - log N), log D_c - log D).
"""

import jax.numpy as jnp

from slaws.law import Law, Param, grid, log_grid, lse


def log_loss(p, x):
    """log L of Kaplan et al.'s law at parameters ``p`` and inputs ``x`` (``N``, ``D``).

    >>> import math
    >>> from slaws.laws import kaplan
    >>> from slaws.presets import get_preset
    >>> p = get_preset("kaplan2020")["params"]
    >>> round(math.exp(float(kaplan.log_loss(p, {"N": 1e9, "D": 20e9}))), 3)
    2.435
    """
    return p["alpha_D"] * lse(
        (p["alpha_N"] / p["alpha_D"]) * (jnp.log(p["N_c"]) - jnp.log(x["N"])),
        jnp.log(p["D_c"]) - jnp.log(x["D"]),
    )


PARAMS = (
    Param("N_c", log=True, prior=("LogNormal", 30.0, 5.0), doc="critical model size"),
    Param("D_c", log=True, prior=("LogNormal", 30.0, 5.0), doc="critical data size"),
    Param("alpha_N", 1e-3, 2.0, prior=("Uniform", 0.0, 2.0), doc="model-size exponent"),
    Param("alpha_D", 1e-3, 2.0, prior=("Uniform", 0.0, 2.0), doc="data exponent"),
)

GRID = {
    "N_c": log_grid(10.0, 40.0, 5.0),
    "D_c": log_grid(10.0, 40.0, 5.0),
    "alpha_N": grid(0.05, 0.45, 0.1),
    "alpha_D": grid(0.05, 0.45, 0.1),
}

LAW = Law(
    name="kaplan",
    log_loss=log_loss,
    params=PARAMS,
    inputs=("N", "D"),
    citation="Kaplan et al. 2020, Scaling Laws for Neural Language Models, arXiv:2001.08361, "
    "Eq. 1.5",
    doc=__doc__,
    init_grid=GRID,
)
LAWS = (LAW,)
