"""Compute-optimal allocation by gradients (optax L-BFGS), for every posterior draw at once.

Supervised: minimise L(N, D) subject to 3 F(N) D = C (F from :mod:`slaws.flops`; ``6ND`` gives
C = 6ND) for any registered law. Distillation (Busbridge et al. 2025, arXiv:2502.08606, §5): for a
student of N_S parameters and a budget C, minimise the student's loss L_S(N_S, D_S, L_T(N_T, D_T))
over (D_S, N_T, D_T) subject to Eq. 9,

    C = 3 F(N_S) D_S + F(N_T) (delta_lgt D_S + delta_pre 3 D_T),

with every variable in ``bounds`` (the paper's [1e6, 1e17]), in the scenarios of its Table 2.

Each problem is solved on an unconstrained parameterisation that meets the budget and the bounds
exactly: one coordinate maps by a sigmoid onto the feasible range of log N_T (the sizes whose
cheapest allocation fits in C and whose dearest can spend it), the other onto the feasible share
of C spent on teacher pretraining (or, when pretraining is free, onto log D_T's range); D_S takes
the rest of the budget. A grid over both coordinates picks the start, then L-BFGS (optax, zoom
line search) runs until the gradient, less its components pushing past a bound, is small or the
loss stalls (``STEPS`` at most); the whole set vmaps over draws x budgets x students x
scenarios. Variables that end within 0.1% of a bound are reported as at that bound (the paper
finds D_T* at 1e17 for teacher inference). Failures are data: each row has a ``status`` (``ok``,
``infeasible`` or ``not_converged``, with the share of draws in brackets when not all).

Everything runs in float64 inside ``jax.enable_x64(True)``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from slaws.flops import get_flops, log_size_for
from slaws.law import Law, get_law

SCENARIOS = {  # Busbridge Table 2: (delta_lgt, delta_pre)
    "best-case": (0.0, 0.0),
    "teacher-inference": (1.0, 0.0),
    "teacher-pretraining": (0.0, 1.0),
    "teacher-pretraining-inference": (1.0, 1.0),
}
BOUNDS = (1e6, 1e17)
GRID = 24  # starts per coordinate screened before L-BFGS
STEPS = 50  # L-BFGS steps at most
AT_BOUND = 1e-3  # |log x - log bound| below this: at the bound
# Converged: the gradient of log loss in the unconstrained (logit) coordinates is below this, so
# a unit step there would change the loss by about 1e-5 relative.
GRAD_TOL = 1e-5
# Gradient norms at which L-BFGS stops early: a supervised optimum to ~1e-12 in log loss (N to
# 1e-9 relative), a distillation optimum to ~1e-8 (its variables at a bound approach it slowly
# through a sigmoid, and under vmap every problem waits for the slowest).
STOP_SUPERVISED, STOP_DISTILL = 1e-12, 1e-8
# Zoom steps per iteration at most: under vmap each one costs every problem an evaluation.
LINESEARCH = 6
QUANTILES = (0.05, 0.5, 0.95)
_LOG3 = math.log(3.0)


def _lbfgs(f, v0, steps, stop):
    """Up to ``steps`` of optax L-BFGS on ``f`` from ``v0``, stopping once the gradient norm
    (:func:`_kkt_norm`) is below ``stop`` or, after one restart with a fresh memory, two steps in
    a row lower ``f`` by no more than rounding (a coordinate saturating at a bound can spoil the
    curvature pairs); returns the lowest point seen and the gradient norm there (a converged
    L-BFGS can still step far along a flat ridge, so the best iterate is kept, not the last).
    Under vmap every problem runs until the slowest stops, so stopping at a stall matters."""
    import jax
    import jax.numpy as jnp
    import optax

    solver = optax.lbfgs(
        linesearch=optax.scale_by_zoom_linesearch(LINESEARCH, initial_guess_strategy="one")
    )
    value_and_grad = optax.value_and_grad_from_state(f)

    def running(carry):
        _, _, _, _, k, norm, stalls, restarted = carry
        return (k < steps) & (norm > stop) & ~((stalls >= 2) & restarted)

    def step(carry):
        v, state, best, best_value, k, _, stalls, restarted = carry
        value, grad = value_and_grad(v, state=state)
        stalls = jnp.where(best_value - value > 1e-14 * jnp.abs(value), 0, stalls + 1)
        better = value <= best_value  # ties: the later iterate, nearer the optimum
        best, best_value = jnp.where(better, v, best), jnp.where(better, value, best_value)
        updates, state = solver.update(grad, state, v, value=value, grad=grad, value_fn=f)
        norm = jnp.where(jnp.isfinite(value), _kkt_norm(v, grad), 0.0)  # NaN: stop
        restart = (stalls >= 2) & ~restarted
        v = jnp.where(restart, best, optax.apply_updates(v, updates))
        fresh = solver.init(best)
        state = jax.tree.map(lambda a, b: jnp.where(restart, a, b), fresh, state)
        stalls = jnp.where(restart, 0, stalls)
        return v, state, best, best_value, k + 1, norm, stalls, restarted | restart

    inf = jnp.asarray(jnp.inf, v0.dtype)
    carry = (v0, solver.init(v0), v0, inf, 0, inf, 0, jnp.asarray(False))
    v, _, best, best_value, *_ = jax.lax.while_loop(running, step, carry)
    best = jnp.where(f(v) <= best_value, v, best)
    return best, _kkt_norm(best, jax.grad(f)(best))


def _kkt_norm(v, grad):
    """The gradient's norm without the components that push a coordinate past its bound (every
    coordinate here maps onto its range by a sigmoid; within 1e-6 of either end, well inside
    ``AT_BOUND`` for ranges up to 1e3 e-folds, it is at the bound, and there optimality asks only
    that the gradient point outward)."""
    import jax
    import jax.numpy as jnp

    s = jax.nn.sigmoid(v)
    outward = ((s > 1 - 1e-6) & (grad < 0)) | ((s < 1e-6) & (grad > 0))
    return jnp.linalg.norm(jnp.where(outward, 0.0, grad))


def _screen(f, grid):
    """The grid point (rows of ``grid``) with the lowest finite ``f``."""
    import jax
    import jax.numpy as jnp

    grid = jnp.asarray(grid)
    values = jax.vmap(f)(grid)
    return grid[jnp.argmin(jnp.where(jnp.isfinite(values), values, jnp.inf))]


def _squash(v, lo, hi):
    import jax

    return lo + (hi - lo) * jax.nn.sigmoid(v)


def _logit_grid(n):
    u = (np.arange(n) + 0.5) / n
    return np.log(u) - np.log1p(-u)


def _at_bound(log_x, bounds):
    lo, hi = (math.log(b) for b in bounds)
    return (np.abs(log_x - lo) < AT_BOUND) | (np.abs(log_x - hi) < AT_BOUND)


# --- supervised --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _supervised_program(law, log_forward, bounds):
    """Compiled ``solve(params, log_c, inputs)`` over problems (a draw and a budget each) -> dict
    of log N, log D, log L, feasible, gradient norm; cached per law, FLOP model and bounds."""
    import jax
    import jax.numpy as jnp

    lo, hi = (math.log(b) for b in bounds)
    grid = _logit_grid(4 * GRID)[:, None]

    def solve(p, log_c, inputs):
        # D = C / (3 F(N)) inside [lo, hi] bounds log F(N), hence log N.
        n_lo = jnp.maximum(lo, log_size_for(log_forward, log_c - _LOG3 - hi))
        n_hi = jnp.minimum(hi, log_size_for(log_forward, log_c - _LOG3 - lo))

        def split(v):
            log_n = _squash(v[0], n_lo, n_hi)
            return log_n, log_c - _LOG3 - log_forward(log_n)

        def objective(v):
            log_n, log_d = split(v)
            return law.log_loss(p, {"N": jnp.exp(log_n), "D": jnp.exp(log_d), **inputs})

        v, grad_norm = _lbfgs(objective, _screen(objective, grid), STEPS, STOP_SUPERVISED)
        log_n, log_d = split(v)
        return {
            "log_N": log_n,
            "log_D": log_d,
            "log_loss": objective(v),
            "feasible": n_lo < n_hi,
            "grad_norm": grad_norm,
        }

    return jax.jit(jax.vmap(solve, (0, 0, None)))


def compute_optimal(
    law: str | Law,
    params,
    compute: Sequence[float],
    *,
    flops="6ND",
    inputs: Mapping[str, float] | None = None,
    bounds: tuple[float, float] = BOUNDS,
    quantiles: Sequence[float] = QUANTILES,
    sample: int = 0,
    seed: int = 0,
) -> pd.DataFrame:
    """Compute-optimal N and D of ``law`` at each budget in ``compute`` (FLOPs).

    ``params`` is a mapping of parameter values (scalars, or arrays of posterior draws), a preset
    name, a posterior ``DataTree`` or a path to one (see :func:`parameter_draws`). ``flops`` is a
    FLOP model name or ``log_forward`` function; ``inputs`` holds fixed extra inputs (``U``, the
    unique tokens of the data-constrained law). One row per budget: ``N``, ``D``, ``loss``,
    ``tokens_per_param``, with ``_q05``/``_q95`` columns (and the median as the value) when the
    parameters are draws, ``at_bound`` (variables within 0.1% of a bound) and ``status``.
    ``sample`` > 0 draws that many parameter sets from a preset's published intervals (an
    approximation, see :func:`parameter_draws`), seeded by ``seed``.

    >>> from slaws import allocation
    >>> table = allocation.compute_optimal("chinchilla", "epoch2024", [1e22, 1e24])
    >>> [f"{n:.3g}" for n in table["N"]], [f"{d:.3g}" for d in table["D"]]
    (['9.05e+09', '9.59e+10'], ['1.84e+11', '1.74e+12'])
    >>> table["tokens_per_param"].round(1).tolist(), table["status"].tolist()
    ([20.4, 18.1], ['ok', 'ok'])
    >>> band = allocation.compute_optimal("chinchilla", "epoch2024", [1e24], sample=50, seed=0)
    >>> bool(band["N_q05"][0] < band["N"][0] < band["N_q95"][0])
    True
    """
    out = optimal_draws(
        law, params, compute, flops=flops, inputs=inputs, bounds=bounds, sample=sample, seed=seed
    )
    compute = _positive(compute, "compute budget")
    values = {
        "N": np.exp(out["log_N"]),
        "D": np.exp(out["log_D"]),
        "loss": np.exp(out["log_loss"]),
        "tokens_per_param": np.exp(out["log_D"] - out["log_N"]),
    }
    frame = pd.DataFrame({"compute": compute} | _summaries(values, quantiles))
    flags = {"N": _at_bound(out["log_N"], bounds), "D": _at_bound(out["log_D"], bounds)}
    frame["at_bound"] = _bound_labels(flags)
    frame["status"] = _row_status(_status(out["feasible"], out["grad_norm"]))
    return frame


def optimal_draws(
    law: str | Law,
    params,
    compute: Sequence[float],
    *,
    flops="6ND",
    inputs: Mapping[str, float] | None = None,
    bounds: tuple[float, float] = BOUNDS,
    sample: int = 0,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """The compute-optimal allocation of every draw at every budget, before any summary: arrays
    shaped (draws, budgets) of ``log_N``, ``log_D``, ``log_loss`` (NaN where infeasible),
    ``feasible`` and ``grad_norm`` (converged where <= ``GRAD_TOL``). Arguments as for
    :func:`compute_optimal`, whose compiled solver it shares.

    >>> import numpy as np
    >>> from slaws import allocation
    >>> out = allocation.optimal_draws("chinchilla", "epoch2024", [1e24], sample=50, seed=0)
    >>> out["log_N"].shape, bool(out["feasible"].all())
    ((50, 1), True)
    >>> f"{np.exp(np.median(out['log_N'])):.3g}"  # compute_optimal's median N
    '1.02e+11'
    """
    import jax

    law = get_law(law)
    draws = parameter_draws(params, law, sample=sample, seed=seed)
    log_forward = get_flops(flops)
    compute = _positive(compute, "compute budget")
    inputs = {k: np.float64(v) for k, v in (inputs or {}).items()}
    with jax.enable_x64(True):
        solve = _supervised_program(law, log_forward, tuple(bounds))
        out = _per_draw(solve, draws, (np.log(compute),), inputs)
    return _blank_infeasible(out, ("log_N", "log_D", "log_loss"))


# --- distillation ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _distill_program(log_forward, bounds):
    """Compiled :func:`distill_solver` over problems, cached per FLOP model and bounds."""
    import jax

    return jax.jit(jax.vmap(distill_solver(log_forward, bounds)))


@functools.lru_cache(maxsize=8)
def _teacher_program(log_forward):
    import jax

    return jax.jit(jax.vmap(_teacher_for_loss(log_forward)))


def distill_solver(log_forward, bounds=BOUNDS):
    """``solve(params, log_ns, log_c, delta_lgt, delta_pre)``: one distillation problem, a pure
    function (vmap it) -> dict of the optimum's logs, ``feasible`` and the gradient norm.

    ``params`` are the distillation law's, ``log_ns`` and ``log_c`` the logs of the student's
    size and the budget, ``delta_lgt`` and ``delta_pre`` a scenario's (:data:`SCENARIOS`).
    ``jax.jit(jax.vmap(solve))`` solves many problems at once (as :func:`distill` does); here
    only the output is traced:

    >>> import jax
    >>> import math
    >>> from slaws import allocation, flops, get_law
    >>> solve = allocation.distill_solver(flops.get_flops("busbridge"))
    >>> draws = allocation.parameter_draws("busbridge2025", get_law("distillation"))
    >>> params = {name: value[0] for name, value in draws.items()}
    >>> out = jax.eval_shape(solve, params, math.log(1e9), math.log(1e22), 1.0, 0.0)
    >>> sorted(out)  # doctest: +NORMALIZE_WHITESPACE
    ['feasible', 'grad_norm', 'log_D_S', 'log_D_T', 'log_N_T', 'log_student_loss',
     'log_teacher_loss']
    """
    import jax.numpy as jnp

    from slaws.laws import distillation

    lo, hi = (math.log(b) for b in bounds)
    g = _logit_grid(GRID)
    grid = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)

    def solve(p, log_ns, log_c, delta_lgt, delta_pre):
        log_fs = log_forward(log_ns)
        price = delta_lgt + 3 * delta_pre  # teacher FLOPs per F(N_T) per token, all uses
        c, fs = jnp.exp(log_c), jnp.exp(log_fs)
        # Feasible N_T: 1e6 tokens of everything fit in C, and 1e17 of everything can spend it.
        costed = price > 0

        def teacher_size(tokens):  # log N_T whose F(N_T) * price * tokens + 3 F_S tokens = C
            spare = c / math.exp(tokens) - 3 * fs
            log_ft = jnp.log(jnp.maximum(spare, 1e-300)) - jnp.log(jnp.where(costed, price, 1.0))
            return jnp.where(spare > 0, log_size_for(log_forward, log_ft), -jnp.inf)

        nt_lo = jnp.where(costed, jnp.maximum(lo, teacher_size(hi)), lo)
        nt_hi = jnp.where(costed, jnp.minimum(hi, teacher_size(lo)), hi)
        student_tokens = log_c - _LOG3 - log_fs  # when the teacher costs nothing
        feasible = jnp.where(
            costed,
            (nt_lo < nt_hi) & (c > math.exp(lo) * 3 * fs),
            (student_tokens >= lo) & (student_tokens <= hi),
        )

        def allocation(v):
            log_nt = _squash(v[0], nt_lo, nt_hi)
            ft = jnp.exp(log_forward(log_nt))
            student_price = 3 * fs + delta_lgt * ft
            teacher_price = 3 * delta_pre * ft
            # Share of C on teacher pretraining, inside what keeps D_S and D_T in bounds.
            share_lo = jnp.maximum(math.exp(lo) * teacher_price, c - math.exp(hi) * student_price)
            share_hi = jnp.minimum(math.exp(hi) * teacher_price, c - math.exp(lo) * student_price)
            share = _squash(v[1], share_lo, share_hi) / c
            pretrained = delta_pre > 0
            log_ds = jnp.log1p(-jnp.where(pretrained, share, 0.0)) + log_c - jnp.log(student_price)
            log_dt = jnp.where(
                pretrained,
                jnp.log(jnp.maximum(share, 1e-300))
                + log_c
                - jnp.log(jnp.where(pretrained, teacher_price, 1.0)),
                _squash(v[1], lo, hi),
            )
            return log_ds, log_nt, log_dt

        def objective(v):
            log_ds, log_nt, log_dt = allocation(v)
            x = {"N": jnp.exp(log_ns), "D": jnp.exp(log_ds)}
            return distillation.log_loss(p, x | {"N_T": jnp.exp(log_nt), "D_T": jnp.exp(log_dt)})

        v, grad_norm = _lbfgs(objective, _screen(objective, grid), STEPS, STOP_DISTILL)
        log_ds, log_nt, log_dt = allocation(v)
        supervised = {k: p[k] for k in ("E", "A", "B", "alpha", "beta", "gamma")}
        log_lt = distillation.chinchilla_gamma.log_loss(
            supervised, {"N": jnp.exp(log_nt), "D": jnp.exp(log_dt)}
        )
        return {
            "log_D_S": log_ds,
            "log_N_T": log_nt,
            "log_D_T": log_dt,
            "log_student_loss": objective(v),
            "log_teacher_loss": log_lt,
            "feasible": feasible,
            "grad_norm": grad_norm,
        }

    return solve


def _teacher_for_loss(log_forward):
    """``solve(params, log_lt)``: the supervised compute-optimal teacher reaching loss L_T, i.e.
    the (N_T, D_T) minimising F(N_T) D_T on L(N_T, D_T) = L_T (the paper's display for the best
    case). On that curve D_T is explicit: B / D^beta = (L_T - E)^(1/gamma) - A / N^alpha."""
    import jax
    import jax.numpy as jnp

    grid = _logit_grid(4 * GRID)[:, None]

    def solve(p, log_lt):
        log_excess = jnp.log(jnp.maximum(jnp.exp(log_lt) - p["E"], 1e-300)) / p["gamma"]
        log_n_min = (jnp.log(p["A"]) - log_excess) / p["alpha"]  # where D_T would be infinite

        def curve(v):
            log_nt = log_n_min + jax.nn.softplus(v[0] + 3.0) * 8.0
            data_term = jnp.log(-jnp.expm1(jnp.log(p["A"]) - p["alpha"] * log_nt - log_excess))
            log_dt = (jnp.log(p["B"]) - log_excess - data_term) / p["beta"]
            return log_nt, log_dt

        def objective(v):
            log_nt, log_dt = curve(v)
            return (log_forward(log_nt) + log_dt) / 10.0

        v, _ = _lbfgs(objective, _screen(objective, grid), STEPS, STOP_SUPERVISED)
        return curve(v)

    return solve


def distill(
    params="busbridge2025",
    students: Sequence[float] = (1e9,),
    compute: Sequence[float] = (1e22,),
    *,
    scenarios: str | Sequence[str] = "all",
    flops="busbridge",
    bounds: tuple[float, float] = BOUNDS,
    quantiles: Sequence[float] = QUANTILES,
    sample: int = 0,
    seed: int = 0,
) -> pd.DataFrame:
    """Compute-optimal distillation for every student size x budget x scenario (and draw).

    ``scenarios`` is ``all`` or names from ``supervised`` and :data:`SCENARIOS`; ``supervised``
    is the baseline of the same N_S trained on D = C / (3 F(N_S)). ``params`` are the distillation
    law's (with its supervised coefficients), as for :func:`compute_optimal`. Rows hold
    ``student_loss``, ``teacher_loss``, ``N_T``, ``D_T``, ``D_S`` and the shares of C spent on
    student training, teacher inference and teacher pretraining, each the median over draws with
    ``_q05``/``_q95`` columns when there are draws; ``at_bound`` lists variables at a bound (share
    of draws in brackets when not all). In ``best-case`` only L_T* is determined (the teacher
    costs nothing); its N_T and D_T are the supervised compute-optimal teacher reaching L_T*.
    ``sample`` and ``seed`` are as in :func:`compute_optimal`.

    A 1B student with 1e22 FLOPs, trained alone or distilled from a teacher whose logits cost
    compute (its pretraining is free):

    >>> from slaws import allocation
    >>> scenarios = ["supervised", "teacher-inference"]
    >>> table = allocation.distill("busbridge2025", [1e9], [1e22], scenarios=scenarios)
    >>> table["scenario"].tolist(), table["status"].tolist()
    (['supervised', 'teacher-inference'], ['ok', 'ok'])
    >>> table["student_loss"].round(2).tolist()
    [2.13, 2.14]
    >>> row = table.iloc[1]  # the teacher is trained on as many tokens as the bounds allow
    >>> f"{row['N_T']:.2g}", f"{row['D_T']:.0e}", row["at_bound"]
    ('1.7e+09', '1e+17', 'D_T')
    >>> round(float(row["frac_student"]), 2)  # the rest of C goes to the teacher's logits
    0.65
    """
    import jax
    import jax.numpy as jnp

    law = get_law("distillation")
    draws = parameter_draws(params, law, sample=sample, seed=seed)
    if scenarios == "all":
        names = ["supervised", *SCENARIOS]
    else:
        names = [scenarios] if isinstance(scenarios, str) else list(scenarios)
    unknown = [s for s in names if s != "supervised" and s not in SCENARIOS]
    if unknown:
        known = ", ".join(["all", "supervised", *SCENARIOS])
        raise ValueError(f"unknown scenario {unknown[0]!r} (known: {known})")
    log_forward = get_flops(flops)
    students = _positive(students, "student size")
    compute = _positive(compute, "compute budget")
    costed = [s for s in names if s != "supervised"]
    cases = [(s, n, c) for s in costed for n in students for c in compute]
    rows = []
    with jax.enable_x64(True):
        if cases:
            deltas = np.array([SCENARIOS[s] for s, _, _ in cases])
            log_ns = np.log([n for _, n, _ in cases])
            log_c = np.log([c for _, _, c in cases])
            solve = _distill_program(log_forward, tuple(bounds))
            out = _per_draw(solve, draws, (log_ns, log_c, deltas[:, 0], deltas[:, 1]))
            best = np.array([s == "best-case" for s, _, _ in cases])
            if best.any():
                teacher = _teacher_program(log_forward)
                losses = out["log_teacher_loss"][:, best]
                per_problem = (
                    {k: np.repeat(v, best.sum()) for k, v in draws.items()},
                    losses.ravel(),
                )
                log_nt, log_dt = (v.reshape(losses.shape) for v in _solve(teacher, per_problem))
                out["log_N_T"][:, best], out["log_D_T"][:, best] = log_nt, log_dt
            log_ft = np.asarray(log_forward(jnp.asarray(out["log_N_T"])))
            log_fs = np.asarray(log_forward(jnp.asarray(log_ns)))
            rows.append(_distill_rows(cases, out, deltas, log_fs, log_ft, log_c, bounds, quantiles))
        if "supervised" in names:
            rows.append(_supervised_rows(draws, students, compute, log_forward, bounds, quantiles))
    frame = pd.concat(rows, ignore_index=True)
    rank = frame["scenario"].map({s: i for i, s in enumerate(names)})
    order = np.lexsort((rank, frame["compute"], frame["student_params"]))
    return frame.iloc[order].reset_index(drop=True)


def _distill_rows(cases, out, deltas, log_fs, log_ft, log_c, bounds, quantiles):
    logs = ("log_D_S", "log_N_T", "log_D_T", "log_student_loss", "log_teacher_loss")
    out = _blank_infeasible(out, logs)
    log_ft = np.where(out["feasible"], log_ft, np.nan)
    values = {
        "student_loss": np.exp(out["log_student_loss"]),
        "teacher_loss": np.exp(out["log_teacher_loss"]),
        "N_T": np.exp(out["log_N_T"]),
        "D_T": np.exp(out["log_D_T"]),
        "D_S": np.exp(out["log_D_S"]),
        "frac_student": np.exp(_LOG3 + log_fs + out["log_D_S"] - log_c),
        "frac_teacher_inference": deltas[:, 0] * np.exp(log_ft + out["log_D_S"] - log_c),
        "frac_teacher_pretraining": deltas[:, 1] * np.exp(_LOG3 + log_ft + out["log_D_T"] - log_c),
    }
    best = np.array([s == "best-case" for s, _, _ in cases])
    for key in ("frac_teacher_inference", "frac_teacher_pretraining"):
        values[key] = np.where(best, 0.0, values[key])
    frame = pd.DataFrame(
        {
            "scenario": [s for s, _, _ in cases],
            "student_params": [n for _, n, _ in cases],
            "compute": [c for _, _, c in cases],
        }
        | _summaries(values, quantiles)
    )
    flags = {
        "D_S": _at_bound(out["log_D_S"], bounds),
        "N_T": _at_bound(out["log_N_T"], bounds) & ~best,
        "D_T": _at_bound(out["log_D_T"], bounds) & ~best,
    }
    frame["at_bound"] = _bound_labels(flags)
    frame["status"] = _row_status(_status(out["feasible"], out["grad_norm"]))
    return frame


def _supervised_rows(draws, students, compute, log_forward, bounds, quantiles):
    import jax
    import jax.numpy as jnp

    from slaws.laws import chinchilla_gamma

    n_s, c = (a.ravel() for a in np.meshgrid(students, compute, indexing="ij"))
    log_ns, log_c = np.log(n_s), np.log(c)
    log_d = log_c - _LOG3 - np.asarray(log_forward(jnp.asarray(log_ns)))
    feasible = (log_d >= math.log(bounds[0])) & (log_d <= math.log(bounds[1]))
    log_d = np.where(feasible, log_d, np.nan)
    supervised = {k: draws[k] for k in ("E", "A", "B", "alpha", "beta", "gamma")}
    loss = jax.vmap(
        lambda p: chinchilla_gamma.log_loss(p, {"N": np.exp(log_ns), "D": np.exp(log_d)})
    )(supervised)
    values = {
        "student_loss": np.exp(np.asarray(loss)),
        "D_S": np.broadcast_to(np.exp(log_d), loss.shape),
        "frac_student": np.ones(loss.shape),
        "frac_teacher_inference": np.zeros(loss.shape),
        "frac_teacher_pretraining": np.zeros(loss.shape),
    }
    frame = pd.DataFrame(
        {"scenario": "supervised", "student_params": n_s, "compute": c}
        | _summaries(values, quantiles)
    )
    frame["at_bound"] = ""
    frame["status"] = np.where(feasible, "ok", "infeasible")
    return frame


def fixed_teacher(
    params="busbridge2025",
    students: Sequence[float] = (1e9,),
    compute: Sequence[float] = (1e22,),
    *,
    teacher_loss: float | None = None,
    teacher_params: float | None = None,
    teacher_tokens: float | None = None,
    teacher_inference: float = 1.0,
    flops="busbridge",
    sample: int = 0,
    seed: int = 0,
) -> pd.DataFrame:
    """A given teacher and a budget: the student trains on D_S = C / (3 F(N_S) + delta_lgt
    F(N_T)) tokens (Busbridge Eq. 27). The teacher is ``teacher_params`` N_T and
    ``teacher_tokens`` D_T (its loss from the supervised law), or its ``teacher_loss`` L_T; the
    logits' cost ``teacher_inference`` (delta_lgt) needs N_T.

    >>> from slaws import allocation
    >>> table = allocation.fixed_teacher(
    ...     "busbridge2025", [1e9], [1e22], teacher_params=7e9, teacher_tokens=1e12
    ... )
    >>> round(float(table["student_loss"][0]), 3), round(float(table["teacher_loss"][0]), 3)
    (2.16, 1.914)
    >>> f"{table['D_S'][0]:.3g}"  # student tokens left once the teacher's logits are paid for
    '4.39e+11'
    """
    import jax
    import jax.numpy as jnp

    from slaws.laws import chinchilla_gamma, distillation

    if (teacher_loss is None) == (teacher_tokens is None):
        raise ValueError("give the teacher's loss, or its parameters and tokens")
    if teacher_params is None and (teacher_tokens is not None or teacher_inference):
        raise ValueError("the teacher's tokens and its inference cost need teacher_params")
    draws = parameter_draws(params, get_law("distillation"), sample=sample, seed=seed)
    log_forward = get_flops(flops)
    n_s, c = (a.ravel() for a in np.meshgrid(students, compute, indexing="ij"))
    with jax.enable_x64(True):
        fs = np.exp(np.asarray(log_forward(jnp.log(n_s))))
        ft = (
            0.0 if teacher_params is None else float(jnp.exp(log_forward(math.log(teacher_params))))
        )
        if teacher_loss is None:
            supervised = {k: draws[k] for k in ("E", "A", "B", "alpha", "beta", "gamma")}
            teacher = {"N": teacher_params, "D": teacher_tokens}
            log_lt = jax.vmap(lambda p: chinchilla_gamma.log_loss(p, teacher))(supervised)
            lt = np.exp(np.asarray(log_lt))
        else:
            lt = np.full(len(draws["A_prime"]), float(teacher_loss))
        d_s = c / (3 * fs + teacher_inference * ft)

        def one(p, l_t):
            return distillation.log_loss(p, {"N": n_s, "D": d_s, "L_T": l_t})

        ls = np.exp(np.asarray(jax.vmap(one)(draws, lt)))
    values = {
        "student_loss": ls,
        "teacher_loss": np.broadcast_to(lt[:, None], ls.shape),
        "D_S": np.broadcast_to(d_s, ls.shape),
    }
    return pd.DataFrame({"student_params": n_s, "compute": c} | _summaries(values, QUANTILES))


def _blank_infeasible(out, keys):
    """NaN where a problem has no feasible allocation (its numbers would mean nothing)."""
    return out | {k: np.where(out["feasible"], out[k], np.nan) for k in keys}


PROBLEMS_PER_CALL = 16384  # draws x problems solved per compiled call (bounds memory)


def _per_draw(program, draws, cases: tuple, *shared):
    """``program`` (vmapped over problems) for every draw x case: the draws' parameters repeated
    over the cases, the cases' arrays tiled over the draws; outputs shaped (draws, cases)."""
    n, m = len(next(iter(draws.values()))), len(cases[0])
    per_problem = ({k: np.repeat(v, m) for k, v in draws.items()}, *(np.tile(a, n) for a in cases))
    out = _solve(program, per_problem, *shared)
    return {k: v.reshape(n, m) for k, v in out.items()}


def _solve(program, per_problem: tuple, *shared):
    """``program(*per_problem, *shared)`` in chunks of a few fixed sizes (powers of two from 64 to
    ``PROBLEMS_PER_CALL``, the last chunk padded), so memory stays bounded and calls of similar
    sizes share one compilation (and the persistent cache). Returns numpy arrays."""
    import jax

    flat, tree = jax.tree.flatten(per_problem)
    n = len(flat[0])
    size = min(PROBLEMS_PER_CALL, max(64, 1 << (n - 1).bit_length()))
    outs = []
    for lo in range(0, n, size):
        rows = np.minimum(np.arange(lo, lo + size), n - 1)
        out = program(*jax.tree.unflatten(tree, [np.asarray(v)[rows] for v in flat]), *shared)
        outs.append([np.asarray(v)[: min(size, n - lo)] for v in jax.tree.leaves(out)])
    joined = [np.concatenate(v) for v in zip(*outs, strict=True)]
    return jax.tree.unflatten(jax.tree.structure(out), joined)


# --- parameters, summaries ---------------------------------------------------------------------


def _positive(values, what) -> np.ndarray:
    """``values`` as a 1-d float array, or a one-line ValueError naming the first that is not a
    finite number above 0."""
    values = np.atleast_1d(np.asarray(values, float))
    bad = np.flatnonzero(~(np.isfinite(values) & (values > 0)))
    if bad.size:
        raise ValueError(f"{what} {values[bad[0]]:g} (entry {bad[0]}) is not a finite number > 0")
    return values


def parameter_draws(source, law: Law, *, sample: int = 0, seed: int = 0) -> dict:
    """Parameters of ``law`` as arrays with a leading draw axis.

    ``source``: a mapping (scalars or equal-length arrays), a preset name (one draw, or with
    ``sample`` > 0 that many draws from independent normals (log-normals for log-scale
    parameters) matched to the preset's published intervals: an approximation, since the papers
    give marginal intervals, not a joint posterior), a posterior ``DataTree`` from
    :mod:`slaws.bayes` or a path to one saved as netCDF (its fixed parameters included).

    >>> from slaws import allocation, get_law
    >>> law = get_law("chinchilla")
    >>> allocation.parameter_draws("epoch2024", law)["alpha"].tolist()
    [0.3478]
    >>> draws = allocation.parameter_draws("epoch2024", law, sample=1000, seed=0)
    >>> draws["alpha"].shape, bool(0.33 < draws["alpha"].mean() < 0.36)
    ((1000,), True)
    >>> values = {"E": 1.8, "A": [400.0, 500.0], "B": 2000.0, "alpha": 0.35, "beta": 0.37}
    >>> allocation.parameter_draws(values, law)["E"].tolist()  # scalars broadcast over draws
    [1.8, 1.8]
    """
    import json
    import os

    from slaws.presets import PRESETS, get_preset

    if isinstance(source, str | os.PathLike) and str(source) not in PRESETS:
        if not os.path.exists(source):
            raise ValueError(
                f"{str(source)!r} is neither a preset (known: {', '.join(sorted(PRESETS))}) "
                "nor a posterior file"
            )
        from slaws import bayes

        source = bayes.load(source)  # a bad file is one ValueError line naming it
    if sample and not isinstance(source, str):
        raise ValueError("sample draws from a preset's published intervals; give a preset name")
    if isinstance(source, str):
        preset = get_preset(source)
        if preset["law"] != law.name:
            raise ValueError(f"preset {source!r} is for law {preset['law']!r}, not {law.name!r}")
        values = _sample_intervals(preset, law, sample, seed) if sample else preset["params"]
    elif "slaws" in getattr(source, "attrs", {}):  # a posterior DataTree (itself a Mapping)
        from slaws.bayes import _posterior_law, _require_single

        info = json.loads(source.attrs["slaws"])
        _require_single(info)
        _posterior_law(info, law)
        posterior = source["posterior"]
        values = {k: posterior[k].values.reshape(-1) for k in law.param_names if k in posterior}
        values |= info.get("fixed") or {}
    else:
        values = dict(source)
    missing = [k for k in law.param_names if k not in values]
    if missing:
        raise ValueError(f"parameters of law {law.name!r} missing: {', '.join(missing)}")
    arrays = {k: np.atleast_1d(np.asarray(values[k], float)) for k in law.param_names}
    n = max(len(v) for v in arrays.values())
    return {k: np.broadcast_to(v, (n,)).copy() for k, v in arrays.items()}


def _sample_intervals(preset, law, n, seed):
    """Independent draws matched to a preset's published intervals (normal, or log-normal for
    log-scale parameters); degenerate intervals stay at the value."""
    from scipy.stats import norm

    if "interval" not in preset:
        raise ValueError(f"preset {preset['name']!r} publishes no intervals to sample from")
    z = norm.ppf(0.5 + preset.get("interval_level", 0.9) / 2)
    rng = np.random.default_rng(seed)
    out = {}
    for p in law.params:
        value = preset["params"][p.name]
        low, high = preset["interval"].get(p.name, (value, value))
        if low == high:
            out[p.name] = np.full(n, value)
        elif p.log:
            centre, sd = math.log(value), (math.log(high) - math.log(low)) / (2 * z)
            out[p.name] = np.exp(centre + sd * rng.standard_normal(n))
        else:
            out[p.name] = value + (high - low) / (2 * z) * rng.standard_normal(n)
    return out


def _summaries(values, quantiles):
    """Median of each (draws, rows) array as its column, with ``_qNN`` columns when draws > 1."""
    out = {}
    for name, v in values.items():
        v = np.asarray(v)
        if v.ndim == 1 or v.shape[0] == 1:
            out[name] = v.reshape(-1, v.shape[-1])[0]
            continue
        out[name] = np.median(v, 0)
        for q in quantiles:
            if q != 0.5:
                out[f"{name}_q{round(100 * q):02d}"] = np.quantile(v, q, axis=0)
    return out


def _bound_labels(flags):
    """Per row: the variables at a bound (``{name: (draws, rows) bool}``), with the share of
    draws in brackets when not all, e.g. ``"D_T"`` or ``"N_T(12%)"``."""
    rows = next(iter(flags.values())).shape[1]
    return [
        ",".join(
            name if share == 1 else f"{name}({_share(share)})"
            for name, flag in flags.items()
            if (share := flag[:, i].mean()) > 0
        )
        for i in range(rows)
    ]


def _status(feasible, grad_norm):
    return np.where(~feasible, "infeasible", np.where(grad_norm <= GRAD_TOL, "ok", "not_converged"))


def _share(x: float) -> str:
    """A share of draws for a label: never rounded to 0% or 100%."""
    return "<0.1%" if x < 0.001 else ">99.9%" if x > 0.999 else f"{x:.1%}"


def _row_status(status):
    """Per row (column of ``status``, one entry per draw): ``infeasible`` (which never depends on
    the draw), ``ok``, or ``not_converged`` with the share of draws in brackets when not all."""
    labels = []
    for column in status.T:
        share = (column == "not_converged").mean()
        if (column == "infeasible").any():
            labels.append("infeasible")
        elif share == 0:
            labels.append("ok")
        else:
            labels.append("not_converged" if share == 1 else f"not_converged({_share(share)})")
    return labels
