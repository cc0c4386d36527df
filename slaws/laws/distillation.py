"""Distillation law of Busbridge et al. 2025 ("Distillation Scaling Laws", arXiv:2502.08606).

Student cross-entropy (Eq. 8 = Eq. 46):

    L_S = L_T + L_T^(-c0) (1 + (L_T / (Ltilde_S d1))^(1/f1))^(-c1 f1)
                  * (A'/N_S^alpha' + B'/D_S^beta')^gamma'

with Ltilde_S = chinchilla_gamma(N_S, D_S) under the supervised coefficients (E, A, B, alpha, beta,
gamma) and L_T given as a column or computed as chinchilla_gamma(N_T, D_T). A' and B' are constants
of their own. Evaluated in the log-space form of Eq. 49 (LSE and softplus), finite everywhere.

Inputs: ``N`` and ``D`` are the student's N_S and D_S; ``L_T``, or ``N_T`` and ``D_T``.
The supervised coefficients are held fixed at Busbridge et al.'s Table 6 by default, as in the
paper, which fits the 9 distillation coefficients with the supervised law already fitted.
"""

import jax
import jax.numpy as jnp

from slaws.law import Law, Param, grid, log_grid, lse
from slaws.laws import chinchilla_gamma
from slaws.presets import PRESETS


def log_loss(p, x):
    """log L_S of a student (``N``, ``D``) taught by a teacher of loss ``L_T`` (or of size ``N_T``
    trained on ``D_T`` tokens).

    >>> from slaws.laws import distillation
    >>> from slaws.presets import get_preset
    >>> p = get_preset("busbridge2025")["params"]
    >>> x = {"N": 1e9, "D": 20e9, "L_T": 2.0}
    >>> round(float(distillation.log_loss(p, x)), 4)
    0.8228
    """
    supervised = {k: p[k] for k in ("E", "A", "B", "alpha", "beta", "gamma")}
    if "L_T" in x:
        log_teacher = jnp.log(x["L_T"])
    else:
        log_teacher = chinchilla_gamma.log_loss(supervised, {"N": x["N_T"], "D": x["D_T"]})
    log_student_supervised = chinchilla_gamma.log_loss(supervised, x)
    student_term = p["gamma_prime"] * lse(
        jnp.log(p["A_prime"]) - p["alpha_prime"] * jnp.log(x["N"]),
        jnp.log(p["B_prime"]) - p["beta_prime"] * jnp.log(x["D"]),
    )
    gap = log_teacher - log_student_supervised - jnp.log(p["d1"])
    log_break = -p["c1"] * p["f1"] * jax.nn.softplus(gap / p["f1"])
    return lse(log_teacher, -p["c0"] * log_teacher + log_break + student_term)


def loss(p, x):
    """The same law on the natural scale, twice as fast on grids; the break keeps its softplus,
    since (1 + r)^(-c1 f1) with r = (L_T / (Ltilde_S d1))^(1/f1) overflows r for small f1.

    A 1B student on 20B tokens, distilled from a 7B teacher trained on 140B tokens:

    >>> from slaws.laws import chinchilla_gamma, distillation
    >>> from slaws.presets import get_preset
    >>> p = get_preset("busbridge2025")["params"]
    >>> teacher = chinchilla_gamma.loss(p, {"N": 7e9, "D": 140e9})
    >>> student = distillation.loss(p, {"N": 1e9, "D": 20e9, "N_T": 7e9, "D_T": 140e9})
    >>> round(float(teacher), 3), round(float(student), 3)
    (2.019, 2.279)
    """
    supervised = {k: p[k] for k in ("E", "A", "B", "alpha", "beta", "gamma")}
    if "L_T" in x:
        teacher = x["L_T"]
    else:
        teacher = chinchilla_gamma.loss(supervised, {"N": x["N_T"], "D": x["D_T"]})
    student_supervised = chinchilla_gamma.loss(supervised, x)
    reducible = jnp.exp(jnp.log(p["A_prime"]) - p["alpha_prime"] * jnp.log(x["N"])) + jnp.exp(
        jnp.log(p["B_prime"]) - p["beta_prime"] * jnp.log(x["D"])
    )
    gap = jnp.log(teacher) - jnp.log(student_supervised) - jnp.log(p["d1"])
    log_break = -p["c1"] * p["f1"] * jax.nn.softplus(gap / p["f1"])
    return teacher + jnp.exp(
        log_break - p["c0"] * jnp.log(teacher) + p["gamma_prime"] * jnp.log(reducible)
    )


# Held fixed by default, as in the paper: Table 6's supervised coefficients.
SUPERVISED = PRESETS["busbridge2025-supervised"]["params"]

PARAMS = (
    Param("A_prime", log=True, prior=("LogNormal", 7.0, 3.0), doc="student model-size scale A'"),
    Param("B_prime", log=True, prior=("LogNormal", 9.0, 3.0), doc="student data scale B'"),
    Param("alpha_prime", 0.0, 3.0, prior=("Uniform", 0.0, 3.0), doc="student size exponent"),
    Param("beta_prime", 0.0, 3.0, prior=("Uniform", 0.0, 3.0), doc="student data exponent"),
    Param("gamma_prime", 0.0, 3.0, prior=("Uniform", 0.0, 3.0), doc="outer exponent gamma'"),
    Param("c0", 0.0, 10.0, prior=("Uniform", 0.0, 10.0), doc="teacher-loss prefactor exponent"),
    Param("c1", log=True, prior=("LogNormal", 3.0, 3.0), doc="break strength"),
    Param("f1", 1e-3, 10.0, log=True, prior=("LogNormal", -1.5, 1.5), doc="break sharpness"),
    Param("d1", log=True, prior=("LogNormal", 0.0, 0.5), doc="break location (L_T / Ltilde_S)"),
    *(
        Param(p.name, p.lower, p.upper, p.log, p.prior, "supervised " + p.doc)
        for p in chinchilla_gamma.PARAMS
    ),
)

# Busbridge et al. 2025 App. F.2: 216,000 starts.
GRID = {
    "A_prime": log_grid(0.0, 20.0, 5.0),
    "B_prime": log_grid(0.0, 20.0, 5.0),
    "alpha_prime": grid(0.0, 1.0, 0.5),
    "beta_prime": grid(0.0, 1.0, 0.5),
    "gamma_prime": grid(0.0, 1.0, 0.5),
    "c0": grid(0.0, 1.5, 0.5),
    "c1": grid(0.0, 1.5, 0.5),
    "f1": grid(0.0, 1.5, 0.5),
    "d1": log_grid(-1.0, 1.0, 0.5),
}

LAW = Law(
    name="distillation",
    log_loss=log_loss,
    params=PARAMS,
    inputs=("N", "D", ("L_T", ("N_T", "D_T"))),
    citation="Busbridge et al. 2025, Distillation Scaling Laws, arXiv:2502.08606, Eq. 8",
    doc=__doc__,
    init_grid=GRID,
    fixed=SUPERVISED,
    natural=loss,
)
LAWS = (LAW,)
