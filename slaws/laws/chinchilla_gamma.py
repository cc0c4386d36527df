"""Supervised law of Busbridge et al. 2025: L = E + (A/N^alpha + B/D^beta)^gamma.

"Distillation Scaling Laws", arXiv:2502.08606, Eq. 1 (App. F.1, Eq. 40). gamma = 1 recovers
Chinchilla. Evaluated as log L = LSE(log E, gamma * LSE(log A - alpha log N, log B - beta log D)).
"""

import jax.numpy as jnp

from slaws.law import Law, Param, grid, log_grid, lse


def log_loss(p, x):
    """log L of the supervised law at parameters ``p`` and inputs ``x`` (``N``, ``D``).

    >>> from slaws.laws import chinchilla_gamma
    >>> from slaws.presets import get_preset
    >>> p = get_preset("busbridge2025-supervised")["params"]
    >>> round(float(chinchilla_gamma.log_loss(p, {"N": 70e9, "D": 1.4e12})), 4)
    0.552
    """
    return lse(
        jnp.log(p["E"]),
        p["gamma"]
        * lse(
            jnp.log(p["A"]) - p["alpha"] * jnp.log(x["N"]),
            jnp.log(p["B"]) - p["beta"] * jnp.log(x["D"]),
        ),
    )


def loss(p, x):
    """The same law on the natural scale (see chinchilla.loss).

    >>> from slaws.laws import chinchilla, chinchilla_gamma
    >>> from slaws.presets import get_preset
    >>> p = get_preset("busbridge2025-supervised")["params"]
    >>> x = {"N": 70e9, "D": 1.4e12}
    >>> round(float(chinchilla_gamma.loss(p, x)), 4)
    1.7367
    >>> p1 = {**p, "gamma": 1.0}  # gamma = 1 is Chinchilla
    >>> round(float(chinchilla_gamma.loss(p1, x)), 4) == round(float(chinchilla.loss(p1, x)), 4)
    True
    """
    reducible = jnp.exp(jnp.log(p["A"]) - p["alpha"] * jnp.log(x["N"])) + jnp.exp(
        jnp.log(p["B"]) - p["beta"] * jnp.log(x["D"])
    )
    return p["E"] + jnp.exp(p["gamma"] * jnp.log(reducible))


PARAMS = (
    Param("E", log=True, prior=("LogNormal", 0.3, 0.5), doc="irreducible loss"),
    Param("A", log=True, prior=("LogNormal", 8.0, 3.0), doc="model-size scale"),
    Param("B", log=True, prior=("LogNormal", 9.0, 3.0), doc="data scale"),
    Param("alpha", 0.0, 3.0, prior=("Uniform", 0.0, 3.0), doc="model-size exponent"),
    Param("beta", 0.0, 3.0, prior=("Uniform", 0.0, 3.0), doc="data exponent"),
    Param("gamma", 0.0, 3.0, prior=("Uniform", 0.0, 3.0), doc="outer exponent"),
)

# Busbridge et al. 2025 App. F.1: 9,600 starts.
GRID = {
    "E": log_grid(-1.0, 1.5, 0.5),
    "A": log_grid(0.0, 20.0, 5.0),
    "B": log_grid(0.0, 20.0, 5.0),
    "alpha": grid(0.0, 1.5, 0.5),
    "beta": grid(0.0, 1.5, 0.5),
    "gamma": grid(0.0, 1.5, 0.5),
}

LAW = Law(
    name="chinchilla_gamma",
    log_loss=log_loss,
    params=PARAMS,
    inputs=("N", "D"),
    citation="Busbridge et al. 2025, Distillation Scaling Laws, arXiv:2502.08606, Eq. 1",
    doc=__doc__,
    init_grid=GRID,
    natural=loss,
)
LAWS = (LAW,)
