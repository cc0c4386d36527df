"""FLOP models: forward FLOPs per token F(N) of a model with N non-embedding parameters.

Training costs 3 F(N) per token (forward, and a backward pass of twice the forward), so
``F(N) = 2N`` gives Kaplan's and Chinchilla's C = 6ND. Busbridge et al. 2025 (arXiv:2502.08606,
Eq. 69) add attention and the embedding at fixed aspect ratio:

    F(N) = 2N (1 + sigma1 n_ctx / N^(1/3) + sigma2 n_vocab / N^(2/3)),
    sigma1 = (rho omega^2)^(-1/3),  sigma2 = (rho / omega)^(1/3),

with rho = d_model / n_layers = 128, omega = 12 (gated FFN of ratio 8/3, multi-head attention),
n_ctx = 4096 and n_vocab = 32768, which reproduces the "2N + sigma" column of their Table 13.

A FLOP model is any pure JAX function ``log_forward(log_n) -> log F`` (log space, so budgets of
1e26 and sizes of 1e15 stay finite in float32); :func:`get_flops` turns a name into one, and a
user may pass their own. Distillation's cost (Busbridge Eq. 9) is :func:`distillation_cost`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

FlopModel = Callable  # log_forward(log_n) -> log F(N)


def six_nd(log_n):
    """F(N) = 2N: training C = 6ND (Kaplan et al. 2020, Hoffmann et al. 2022).

    >>> import math
    >>> from slaws.flops import six_nd
    >>> f"{math.exp(six_nd(math.log(70e9))):.3g}"  # forward FLOPs per token of a 70B model
    '1.4e+11'
    """
    return math.log(2.0) + log_n


def busbridge(
    rho: float = 128.0, omega: float = 12.0, n_ctx: float = 4096.0, n_vocab: float = 32768.0
) -> FlopModel:
    """Busbridge et al. 2025's F(N) with attention and vocabulary terms (Eq. 69).

    F(N) / 2N, the overhead over ``6ND``, shrinks as models grow:

    >>> import jax.numpy as jnp
    >>> from slaws.flops import busbridge
    >>> log_forward = busbridge()  # the defaults: rho=128, omega=12, n_ctx=4096, n_vocab=32768
    >>> n = jnp.array([1e8, 1e9, 1e10])
    >>> [round(float(v), 3) for v in jnp.exp(log_forward(jnp.log(n))) / (2 * n)]
    [1.669, 1.227, 1.088]
    """
    log_context = math.log((rho * omega**2) ** (-1 / 3) * n_ctx)
    log_vocab = math.log((rho / omega) ** (1 / 3) * n_vocab)

    def log_forward(log_n):
        extra = jnp.logaddexp(log_context - log_n / 3, log_vocab - 2 * log_n / 3)
        return math.log(2.0) + log_n + jax.nn.softplus(extra)

    log_forward.__doc__ = (
        f"Busbridge F(N): rho={rho:g}, omega={omega:g}, n_ctx={n_ctx:g}, n_vocab={n_vocab:g}"
    )
    return log_forward


FLOPS = {"6ND": six_nd, "busbridge": busbridge()}


def get_flops(flops: str | FlopModel) -> FlopModel:
    """A FLOP model by name (``6ND``, ``busbridge``) or a user's ``log_forward`` function.

    >>> from slaws import flops
    >>> flops.get_flops("6ND") is flops.six_nd
    True
    >>> my_model = lambda log_n: flops.six_nd(log_n) + 0.1  # 10.5% more FLOPs than 2N
    >>> flops.get_flops(my_model) is my_model
    True
    """
    if callable(flops):
        return flops
    if flops not in FLOPS:
        raise ValueError(f"unknown FLOP model {flops!r} (known: {', '.join(FLOPS)})")
    return FLOPS[flops]


def forward(flops: str | FlopModel, n):
    """Forward FLOPs per token of models of ``n`` non-embedding parameters.

    >>> import jax.numpy as jnp
    >>> from slaws.flops import forward
    >>> [f"{float(f):.3g}" for f in forward("busbridge", jnp.array([1e9, 1e10]))]
    ['2.45e+09', '2.18e+10']
    """
    return jnp.exp(get_flops(flops)(jnp.log(n)))


def log_size_for(flops: str | FlopModel, log_f, steps: int = 8):
    """The log N whose log F(N) is ``log_f``: Newton steps from log(F / 2) (F is increasing and
    nearly linear in log-log, so a few steps reach float precision).

    >>> import jax.numpy as jnp
    >>> from slaws.flops import forward, log_size_for
    >>> log_f = jnp.log(forward("busbridge", 1e9))
    >>> f"{float(jnp.exp(log_size_for('busbridge', log_f))):.4g}"  # back to N = 1e9
    '1e+09'
    """
    log_forward = get_flops(flops)
    slope = jax.grad(lambda u: jnp.sum(log_forward(u)))

    def step(u, _):
        return u - (log_forward(u) - log_f) / slope(u), None

    u, _ = jax.lax.scan(step, log_f - math.log(2.0), None, length=steps)
    return u


def distillation_cost(flops, n_s, d_s, n_t, d_t, teacher_inference, teacher_pretraining):
    """Busbridge Eq. 9: 3 F(N_S) D_S + F(N_T) (delta_lgt D_S + delta_pre 3 D_T).

    ``teacher_inference`` (delta_lgt) and ``teacher_pretraining`` (delta_pre) are 1 to count the
    teacher's logits and its own training, 0 to leave them out. A 1B student on 20B tokens from a
    7B teacher trained on 140B tokens:

    >>> from slaws.flops import distillation_cost
    >>> f"{float(distillation_cost('6ND', 1e9, 20e9, 7e9, 140e9, 1.0, 0.0)):.3g}"
    '4e+20'
    >>> f"{float(distillation_cost('6ND', 1e9, 20e9, 7e9, 140e9, 1.0, 1.0)):.3g}"
    '6.28e+21'
    """
    f_s, f_t = forward(flops, n_s), forward(flops, n_t)
    return 3 * f_s * d_s + f_t * (teacher_inference * d_s + teacher_pretraining * 3 * d_t)
