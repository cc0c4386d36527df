"""Chinchilla: L = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022, arXiv:2203.15556, Eq. 2).

Evaluated as log L = LSE(log A - alpha log N, log B - beta log D, log E), the form of the paper's
Appendix D.2 and of Besiroglu et al. 2024 (arXiv:2404.10102).
"""

import jax.numpy as jnp

from slaws.law import Law, Param, grid, log_grid, lse


def log_loss(p, x):
    """log L of the Chinchilla law at parameters ``p`` and inputs ``x`` (``N``, ``D``).

    >>> from slaws.laws import chinchilla
    >>> from slaws.presets import get_preset
    >>> p = get_preset("hoffmann2022")["params"]
    >>> round(float(chinchilla.log_loss(p, {"N": 70e9, "D": 1.4e12})), 4)  # Chinchilla 70B
    0.661
    """
    return lse(
        jnp.log(p["A"]) - p["alpha"] * jnp.log(x["N"]),
        jnp.log(p["B"]) - p["beta"] * jnp.log(x["D"]),
        jnp.log(p["E"]),
    )


def loss(p, x):
    """The same law on the natural scale: each term is still exp of a log, so no power of N or
    D is ever formed on its own.

    >>> import jax.numpy as jnp
    >>> from slaws.laws import chinchilla
    >>> from slaws.presets import get_preset
    >>> p = get_preset("hoffmann2022")["params"]
    >>> x = {"N": jnp.array([1e9, 70e9]), "D": jnp.array([20e9, 1.4e12])}
    >>> [round(float(v), 3) for v in chinchilla.loss(p, x)]
    [2.58, 1.937]
    """
    return (
        p["E"]
        + jnp.exp(jnp.log(p["A"]) - p["alpha"] * jnp.log(x["N"]))
        + jnp.exp(jnp.log(p["B"]) - p["beta"] * jnp.log(x["D"]))
    )


PARAMS = (
    Param("E", log=True, prior=("LogNormal", 0.5, 0.5), doc="irreducible loss"),
    Param("A", log=True, prior=("LogNormal", 6.0, 2.5), doc="model-size scale"),
    Param("B", log=True, prior=("LogNormal", 7.0, 2.5), doc="data scale"),
    Param("alpha", 0.0, 3.0, prior=("Uniform", 0.0, 3.0), doc="model-size exponent"),
    Param("beta", 0.0, 3.0, prior=("Uniform", 0.0, 3.0), doc="data exponent"),
)

# Hoffmann et al. 2022 App. D.2 grid, as replayed by Epoch AI: a, b in {0,5,...,25},
# e in {-1,...,1}, alpha, beta in {0,0.5,...,2}.
GRID = {
    "E": log_grid(-1.0, 1.0, 0.5),
    "A": log_grid(0.0, 25.0, 5.0),
    "B": log_grid(0.0, 25.0, 5.0),
    "alpha": grid(0.0, 2.0, 0.5),
    "beta": grid(0.0, 2.0, 0.5),
}

LAW = Law(
    name="chinchilla",
    log_loss=log_loss,
    params=PARAMS,
    inputs=("N", "D"),
    citation="Hoffmann et al. 2022, Training Compute-Optimal Large Language Models, "
    "arXiv:2203.15556",
    doc=__doc__,
    init_grid=GRID,
    natural=loss,
)
LAWS = (LAW,)
