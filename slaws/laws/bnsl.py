"""Broken neural scaling law (Caballero et al. 2023, "Broken Neural Scaling Laws", arXiv:2210.14891,
Eq. 1) with n breaks:

    y = a + b x^(-c0) prod_i (1 + (x / d_i)^(1/f_i))^(-c_i f_i)

evaluated as log y = LSE(log a, log b - c0 log x - sum_i c_i f_i softplus((log x - log d_i) / f_i)).
The input is a single column ``x`` (data size, model size, steps or compute). ``bnsl`` has one
break, ``bnsl2`` two; ``make_bnsl(n)`` builds any number.
"""

import jax
import jax.numpy as jnp
import numpy as np

from slaws.law import Law, Param, lse


def make_bnsl(n_breaks: int, name: str | None = None) -> Law:
    """A broken neural scaling law with ``n_breaks`` breaks, named ``name`` or ``bnsl<n>``.

    Its parameters are ``a``, ``b``, ``c0`` and, for each break i, ``c<i>``, ``d<i>``, ``f<i>``.

    >>> import jax.numpy as jnp
    >>> from slaws.laws.bnsl import make_bnsl
    >>> from slaws.presets import get_preset
    >>> make_bnsl(3).param_names
    ('a', 'b', 'c0', 'c1', 'd1', 'f1', 'c2', 'd2', 'f2', 'c3', 'd3', 'f3')
    >>> p = get_preset("caballero2023-simulation")["params"]  # one break, at x = 613
    >>> [round(float(v), 3) for v in make_bnsl(1).loss(p, {"x": jnp.array([1e2, 1e3, 1e4])})]
    [2.181, 0.511, 0.414]
    """

    def log_loss(p, x):
        log_x = jnp.log(x["x"])
        log_tail = jnp.log(p["b"]) - p["c0"] * log_x
        for i in range(1, n_breaks + 1):
            c, d, f = p[f"c{i}"], p[f"d{i}"], p[f"f{i}"]
            log_tail = log_tail - c * f * jax.nn.softplus((log_x - jnp.log(d)) / f)
        return lse(jnp.log(p["a"]), log_tail)

    params = [
        Param("a", log=True, prior=("LogNormal", -1.0, 2.0), doc="limit as x grows"),
        Param("b", log=True, prior=("LogNormal", 0.0, 5.0), doc="scale of the first segment"),
        Param("c0", -3.0, 3.0, prior=("Normal", 0.3, 0.5), doc="slope of the first segment"),
    ]
    for i in range(1, n_breaks + 1):
        params += [
            Param(f"c{i}", -20.0, 20.0, prior=("Normal", 0.5, 2.0), doc=f"slope change {i}"),
            Param(f"d{i}", log=True, prior=("LogNormal", 10.0, 5.0), doc=f"break location {i}"),
            Param(f"f{i}", 1e-3, 10.0, log=True, prior=("LogNormal", -1.0, 1.0), doc="sharpness"),
        ]

    def init_grid(frame):
        x, y = np.asarray(frame["x"]), np.asarray(frame["loss"])
        breaks = np.exp(np.quantile(np.log(x), [0.25, 0.5, 0.75])).tolist()
        out = {
            "a": (y.min() * np.array([0.01, 0.5, 0.9])).tolist(),
            "b": (np.ptp(y) + y.min()) * np.exp([-2.0, 2.0, 6.0]),
            "c0": [0.0, 0.25, 0.5],
        }
        for i in range(1, n_breaks + 1):
            out |= {f"c{i}": [0.5, 2.0, 8.0], f"d{i}": breaks, f"f{i}": [0.05, 0.3, 1.0]}
        return out

    return Law(
        name=name or f"bnsl{n_breaks}",
        log_loss=log_loss,
        params=tuple(params),
        inputs=("x",),
        citation="Caballero et al. 2023, Broken Neural Scaling Laws, arXiv:2210.14891, Eq. 1",
        doc=__doc__,
        init_grid=init_grid,
    )


LAWS = (make_bnsl(1, "bnsl"), make_bnsl(2, "bnsl2"))
