"""Multi-start point fits: every start of a grid optimised together under ``jit`` and ``vmap``.

How the grid is used (``fit`` docstring has the details): when starts x points is small enough
for one batch (the 4,500-start Chinchilla grid on 240 points is) every start is optimised to
convergence. Larger grids (Busbridge's 216,000-start distillation grid) are screened: the objective
is evaluated at every start, the best batch-full is optimised for a few steps, and the best of those
are optimised to convergence. ``FitResult.starts`` records what happened to each optimised start.

Fits run in float64 inside ``jax.enable_x64(True)``; the global setting is left as it was.
"""

from __future__ import annotations

import functools
import itertools
import math
import time
import warnings
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from slaws import data as _data
from slaws.law import Law, Param, get_law
from slaws.objectives import Objective
from slaws.presets import get_preset
from slaws.recipes import Recipe, get_recipe

#: starts x points handled in one batch; larger grids are first screened by their start value.
BATCH_POINTS = 2**22
#: steps every surviving start takes before the best are run to convergence.
SCREEN_STEPS = 10
#: distinct starts run to convergence.
FINAL_STARTS = 64
#: starts per compiled Levenberg-Marquardt call; one shape serves every stage.
CHUNK = 64
MAX_STEPS = 1000


class FitWarning(UserWarning):
    """The data may not identify the fitted parameters: too few points, a parameter at a bound,
    a flat direction, or strongly correlated exponents (each a one-line message, also in
    ``FitResult.warnings``)."""


class FitError(ValueError):
    """Options that cannot be fitted as given (conflicts, unknown names)."""


@dataclass
class FitResult:
    """Outcome of a fit. ``status`` is ``converged``, ``max_steps`` (the best start ran out of
    steps; its value is still the best found) or ``failed`` (no start gave a finite objective).
    ``input_ranges``: each input's (min, max) over the fitted rows, where the law interpolates.
    ``warnings``: why the data may not identify the parameters (see :func:`fit`); also raised as
    :class:`FitWarning`.

    >>> import slaws
    >>> from slaws import synthetic
    >>> frame = synthetic.chinchilla_like(n_models=8, n_budgets=5, noise=0.005)
    >>> result = slaws.fit("chinchilla", frame, grid={"A": [300.0, 1000.0], "B": [300.0, 1000.0]})
    >>> result.status, result.n_points, result.n_starts, result.free
    ('converged', 40, 4, ('E', 'A', 'B', 'alpha', 'beta'))
    >>> round(float(result.predict({"N": [70e9], "D": [1.4e12]})[0]), 3)
    1.959
    >>> sorted(result.to_dict()["params"])
    ['A', 'B', 'E', 'alpha', 'beta']
    """

    law: str
    params: dict[str, float]
    objective: float
    status: str
    n_points: int
    n_starts: int
    seconds: float
    objective_name: str
    method: str = "multistart"
    recipe: str | None = None
    free: tuple[str, ...] = ()
    fixed: dict[str, float] = field(default_factory=dict)
    extra: dict[str, float] = field(default_factory=dict)
    starts: pd.DataFrame | None = None
    input_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """The JSON contract of ``slaws fit --json``."""
        return {
            "law": self.law,
            "method": self.method,
            "recipe": self.recipe,
            "params": {k: float(v) for k, v in self.params.items()},
            "objective": float(self.objective),
            "n_points": self.n_points,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "objective_name": self.objective_name,
            "n_starts": self.n_starts,
            "free": list(self.free),
            "fixed": {k: float(v) for k, v in self.fixed.items()},
            "extra": {k: float(v) for k, v in self.extra.items()},
            "input_ranges": {k: [float(a), float(b)] for k, (a, b) in self.input_ranges.items()},
            "warnings": list(self.warnings),
        }

    def predict(self, inputs: Mapping) -> np.ndarray:
        """Loss predicted at ``inputs`` (columns by canonical name), in float64."""
        import jax

        law = get_law(self.law)
        with jax.enable_x64(True):
            x = {k: np.asarray(v, np.float64) for k, v in inputs.items()}
            return np.asarray(law.jit_loss(self.params, x))


def fit(
    law: str | Law,
    data,
    *,
    recipe: str | Recipe | None = None,
    objective: Objective | str | None = None,
    delta: float | None = None,
    grid: Mapping | None = None,
    fixed: Mapping[str, float] | str | None = None,
    columns: Mapping[str, str] | None = None,
    max_steps: int = MAX_STEPS,
    progress: Callable[[str], None] | None = None,
) -> FitResult:
    """Fit ``law`` to ``data`` from a grid of starts and keep the best.

    Args:
      law: a registered name, ``"module:attribute"`` or a ``Law``.
      data: anything :func:`slaws.data.load` takes (path, DataFrame, dataset name).
      recipe: a published procedure (``hoffmann2022``, ``epoch2024``, ``busbridge2025``), which
        fixes the objective, the data selection, the grid and any fixed parameters.
      objective: an ``Objective`` or its kind (``huber``, ``squared_log``, ``squared``,
        ``huber_likelihood``); default Huber with ``delta`` 1e-3 on log residuals, summed.
      grid: ``{param: values}`` on the natural scale; their Cartesian product is the start set.
      fixed: parameter values held fixed, or a preset name whose values are held fixed.
      max_steps: Levenberg-Marquardt steps per start in the final stage.
      progress: called with one-line messages about long work.

    How the grid is used: (1) if starts x points exceeds ``BATCH_POINTS``, the objective is
    evaluated at every start and the best ``BATCH_POINTS // points`` are kept; (2) every kept start
    takes ``SCREEN_STEPS`` Levenberg-Marquardt steps; (3) the ``FINAL_STARTS`` best distinct points
    are optimised to convergence, and the best of them is returned. On the Epoch and Busbridge
    grids this reaches the same optimum as optimising every start to convergence (tested, and
    compared with SciPy in ``benchmarks/fit_speed.py``) at a fraction of the cost, because almost
    all starts that end in the best basin are already in it after a few steps.

    Identifiability, as careful fitting tools report it: a :class:`FitWarning` (and a line in
    ``result.warnings``) when there are fewer than ``POINTS_PER_PARAM`` points per free
    parameter, when a parameter ends on a bound of its range, when the objective is flat along
    a parameter at the optimum, or when two exponents are correlated beyond ``CORRELATION_MAX``
    there (both from the Gauss-Newton curvature of the objective): the data then cannot tell
    those parameters apart.

    Runs in float64 inside ``jax.enable_x64(True)`` without changing the global setting.

    Noiseless synthetic data from Hoffmann et al.'s law give its parameters back:

    >>> import slaws
    >>> from slaws import synthetic
    >>> frame = synthetic.chinchilla_like(n_models=8, n_budgets=5, noise=0.0)
    >>> result = slaws.fit("chinchilla", frame, grid={"A": [300.0, 1000.0], "B": [300.0, 1000.0]})
    >>> result.status
    'converged'
    >>> {name: round(value, 3) for name, value in result.params.items()}
    {'E': 1.69, 'A': 406.4, 'B': 410.7, 'alpha': 0.34, 'beta': 0.28}
    """
    options = dict(recipe=recipe, objective=objective, delta=delta, grid=grid, fixed=fixed)
    options |= dict(columns=columns, max_steps=max_steps, progress=progress)
    return _fit(law, data, **options)[0]


def _fit(
    law,
    data,
    *,
    recipe=None,
    objective=None,
    delta=None,
    grid=None,
    fixed=None,
    columns=None,
    max_steps=MAX_STEPS,
    progress=None,
    ahead=None,
):
    """``fit``, also returning what a bootstrap needs to refit from the optimum. ``ahead``, if
    given, is called as ``ahead(problem, args, z, extra)`` (``z`` and ``extra`` are zero vectors
    of the optimiser's shapes) once the problem is built, before the starts are optimised."""
    import jax

    t0 = time.perf_counter()
    law = get_law(law)
    say = progress or (lambda msg: None)
    rec = _resolve_recipe(recipe, law, objective, delta, grid)
    obj = rec.objective if rec else _resolve_objective(objective, delta)
    frame = _data.load(data, columns=columns, required=(*law.inputs, "loss"))
    if rec:
        frame = rec.apply_selection(frame)
    held = _resolve_fixed(law, rec, fixed)
    free = tuple(p for p in law.params if p.name not in held)
    _data.require_points(frame, len(free), what=f"law {law.name!r}")
    if rec and rec.grids.get(law.name) is not None:
        grid = rec.grids[law.name]
    starts = _start_grid(law, free, grid, frame)

    with jax.enable_x64(True):
        problem = _problem(law, tuple(p.name for p in free), tuple(held), obj)
        inputs = {k: np.asarray(frame[k], np.float64) for k in law.used_inputs(frame.columns)}
        columns = inputs | {"loss": np.asarray(frame["loss"], np.float64)}
        columns, weight = _data.padded(columns, len(frame))  # zero weight on the padding
        log_obs = np.log(columns.pop("loss"))
        fixed_values = np.asarray([held[k] for k in held], np.float64)
        z0 = np.asarray(problem.to_internal(starts))
        args = (weight.astype(np.float64), fixed_values, columns, log_obs)
        if ahead is not None:
            ahead(problem, args, np.zeros(len(free)), np.zeros(len(obj.extra_names)))
        sol = _optimise(problem, z0, args, len(weight), max_steps, say)
        natural = np.asarray(problem.to_natural(sol["z"]))
        values = np.where(np.isfinite(sol["value"]), sol["value"], np.inf)
        best = int(np.argmin(values))
        curvature = sol["curvature"][best]
    starts_frame = _starts_frame(free, natural, sol)

    fitted = dict(zip((p.name for p in free), natural[best].tolist(), strict=True))
    params = {name: held[name] if name in held else fitted[name] for name in law.param_names}
    status = "failed" if not np.isfinite(values[best]) else _STATUS[int(sol["status"][best])]
    extra = {name: float(sol["extra"][best, i]) for i, name in enumerate(obj.extra_names)}
    if "log_sigma" in extra:
        extra["sigma"] = math.exp(extra["log_sigma"])
    result = FitResult(
        law=law.name,
        params=params,
        objective=float(values[best]),
        status=status,
        n_points=len(frame),
        n_starts=len(starts),
        seconds=time.perf_counter() - t0,
        objective_name=obj.describe(),
        recipe=rec.name if rec else None,
        free=tuple(p.name for p in free),
        fixed=dict(held),
        extra=extra,
        starts=starts_frame,
        input_ranges={k: (float(v.min()), float(v.max())) for k, v in inputs.items()},
    )
    if status != "failed":
        result.warnings = _identifiability(free, natural[best], len(frame), curvature)
        for message in result.warnings:
            warnings.warn(f"law {law.name!r}: {message}", FitWarning, stacklevel=3)
    context = {
        "problem": problem,
        "args": args,
        "z": sol["z"][best],
        "extra": sol["extra"][best],
        "frame": frame,
        "free": free,
    }
    return result, context


def bootstrap(
    law: str | Law, data, *, resamples: int = 4000, seed: int = 0, **fit_options
) -> tuple[FitResult, pd.DataFrame]:
    """Nonparametric bootstrap: refit on ``resamples`` resamples of the rows (drawn with
    replacement from ``jax.random.key(seed)``), all at once under ``vmap``.

    ``fit_options`` are those of :func:`fit` (``recipe``, ``objective``, ``fixed``, ...). Each
    resample is a vector of per-row counts weighting the objective, and each refit starts at the
    full-data optimum (Besiroglu et al. 2024 refit from Hoffmann's values; starting at the optimum
    finds the resample's own optimum in fewer steps). Returns the full-data fit and one row per
    resample with the parameters, the objective and a status.

    >>> from slaws import fitting, synthetic
    >>> frame = synthetic.chinchilla_like(n_models=8, n_budgets=5, noise=0.005)
    >>> grid = {"A": [300.0, 1000.0], "B": [300.0, 1000.0]}
    >>> point, table = fitting.bootstrap("chinchilla", frame, resamples=50, seed=0, grid=grid)
    >>> point.status, table.shape, list(table.columns)
    ('converged', (50, 7), ['E', 'A', 'B', 'alpha', 'beta', 'objective', 'status'])
    >>> bool((table["status"] == "converged").all()), bool(table["alpha"].std() < 0.05)
    (True, True)
    """
    point, table, _ = _bootstrap(law, data, resamples, seed, **fit_options)
    return point, table


def _bootstrap(law, data, resamples, seed, **fit_options):
    """``bootstrap``, also returning the data frame it fitted."""
    import jax

    say = fit_options.get("progress") or (lambda msg: None)
    slots = min(POOL, resamples)
    with ThreadPoolExecutor(1) as pool:
        # The refits need only shapes: they compile on a second thread while the fit runs.
        compiled = []

        def ahead(problem, args, z, extra):
            compiled.append(pool.submit(_compile_refit, problem, args, z, extra, slots))

        point, ctx = _fit(law, data, ahead=ahead, **fit_options)
        for job in compiled:
            job.result()
    n = len(ctx["frame"])
    with jax.enable_x64(True):
        picks = np.asarray(jax.random.randint(jax.random.key(seed), (resamples, n), 0, n))
    counts = np.zeros((resamples, len(ctx["args"][0])))  # the data's padded rows stay at zero
    np.add.at(counts, (np.arange(resamples)[:, None], picks), 1.0)
    sol = _refit_pool(ctx, counts, fit_options.get("max_steps", MAX_STEPS), say)
    with jax.enable_x64(True):
        natural = np.asarray(ctx["problem"].to_natural(sol["z"]))
    table = pd.DataFrame(natural, columns=[p.name for p in ctx["free"]])
    table["objective"] = sol["value"]
    table["status"] = [_STATUS[int(v)] for v in sol["status"]]
    for name, value in point.fixed.items():
        table[name] = value
    return point, table, ctx["frame"]


#: Bootstrap refits: slots optimised together, steps between refills, and the tolerances (looser
#: than a fit's: a refit only needs to be far more precise than the spread of the refits).
POOL, SEGMENT, REFIT_TOLERANCES = 256, 16, (1e-10, 1e-7)


def _compile_refit(problem, args, z, extra, slots):
    import jax

    with jax.enable_x64(True):
        z, extra = np.repeat(z[None], slots, 0), np.repeat(extra[None], slots, 0)
        weights = np.ones((slots, len(args[-1])))
        jax.block_until_ready(problem.refit(z, extra, weights, 0, REFIT_TOLERANCES, *args))


def _refit_pool(ctx, counts, max_steps, say):
    """Refit every weight vector in ``counts`` from the optimum. A fixed pool of slots runs
    ``SEGMENT`` Levenberg-Marquardt steps at a time and each finished slot takes the next
    resample, so no slot idles while the slowest refit of a batch finishes, and one compiled
    shape serves the whole run."""
    import jax

    problem, total = ctx["problem"], len(counts)
    z0, extra0 = np.asarray(ctx["z"]), np.asarray(ctx["extra"])
    out = {
        "z": np.zeros((total, len(z0))),
        "value": np.full(total, np.inf),
        "status": np.full(total, 2),
    }
    slots = min(POOL, total)
    owner = np.arange(slots)  # resample in each slot, -1 once the queue is empty
    z = np.repeat(z0[None], slots, 0)
    extra = np.repeat(extra0[None], slots, 0)
    used = np.zeros(slots, int)
    queue, done = slots, 0
    with jax.enable_x64(True):
        while (owner >= 0).any():
            w = counts[np.maximum(owner, 0)]
            sol = problem.refit(z, extra, w, SEGMENT, REFIT_TOLERANCES, *ctx["args"])
            z, extra, value = np.array(sol.z), np.array(sol.extra), np.asarray(sol.value)
            status, used = np.asarray(sol.status), used + np.asarray(sol.steps)
            finished = (owner >= 0) & ((status != 1) | (used >= max_steps))
            for slot in np.flatnonzero(finished):
                i = owner[slot]
                out["z"][i], out["value"][i] = z[slot], value[slot]
                out["status"][i] = int(status[slot])
                done += 1
                owner[slot], used[slot] = (queue, 0) if queue < total else (-1, 0)
                queue += queue < total
                z[slot], extra[slot] = z0, extra0
            if finished.any() and (done % 1000 < finished.sum() or done == total):
                say(f"bootstrap: {done:,}/{total:,} refits")
    return out


_STATUS = {0: "converged", 1: "max_steps", 2: "failed"}

#: Identifiability warnings: fewer points than this per free parameter, exponents correlated
#: beyond this, a parameter within this share of its range (or of its magnitude) of a bound.
POINTS_PER_PARAM, CORRELATION_MAX, AT_BOUND = 3, 0.99, 1e-4


def _identifiability(free, values, n_points, curvature) -> tuple[str, ...]:
    """Why the data may not identify the parameters at the optimum, one line each."""
    messages = []
    k = len(free)
    if n_points < POINTS_PER_PARAM * k:
        messages.append(
            f"{n_points} points for {k} free parameters (fewer than {POINTS_PER_PARAM} each): "
            "the estimates may be unstable"
        )
    for p, v in zip(free, values, strict=True):
        for side, bound in (("lower", p.lower), ("upper", p.upper)):
            if not math.isfinite(bound):
                continue
            if p.log and bound == 0:  # a log-scale parameter approaches 0 only on a log scale
                near = v <= 1e-9
            else:
                width = p.upper - p.lower
                near = abs(v - bound) <= AT_BOUND * (width if math.isfinite(width) else 1.0)
            if near:
                messages.append(f"{p.name} = {v:.6g} is at its {side} bound {bound:g}")
    # Correlations do not depend on each coordinate's scale, so those of the optimiser's
    # coordinates are those of the natural parameters.
    w, u = np.linalg.eigh(np.where(np.isfinite(curvature), curvature, 0.0))
    curved = w > 1e-14 * max(w.max(), 1e-300)
    for i in np.flatnonzero(~curved):
        flat = free[int(np.argmax(np.abs(u[:, i])))].name
        messages.append(f"the objective is flat along {flat} at the optimum: it is not identified")
    if not curved.any():
        return tuple(messages)
    cov = (u[:, curved] / w[curved]) @ u[:, curved].T  # within the directions the data see
    sd = np.sqrt(np.maximum(np.diag(cov), 1e-300))
    exponents = [i for i, p in enumerate(free) if "exponent" in p.doc]
    for a, i in enumerate(exponents):
        for j in exponents[a + 1 :]:
            r = cov[i, j] / (sd[i] * sd[j])
            if abs(r) > CORRELATION_MAX:
                messages.append(
                    f"exponents {free[i].name} and {free[j].name} are correlated (r = {r:.3f}) "
                    "at the optimum: the data barely tell them apart"
                )
    return tuple(messages)


def _resolve_recipe(recipe, law, objective, delta, grid):
    if recipe is None:
        return None
    rec = recipe if isinstance(recipe, Recipe) else get_recipe(recipe)
    for option, value in (("objective", objective), ("delta", delta), ("grid", grid)):
        if value is not None:
            raise FitError(
                f"conflicting options: recipe {rec.name!r} fixes the {option}; drop the recipe "
                f"or the {option}"
            )
    if law.name not in rec.grids:
        raise FitError(
            f"recipe {rec.name!r} does not cover law {law.name!r} (it covers: "
            f"{', '.join(rec.grids)})"
        )
    return rec


def _resolve_objective(objective, delta):
    if isinstance(objective, Objective):
        if delta is not None:
            raise FitError("conflicting options: give delta inside the Objective, not both")
        return objective
    kind = objective or "huber"
    try:
        return Objective(kind, delta=1e-3 if delta is None else float(delta))
    except ValueError as err:
        raise FitError(str(err)) from None


def _resolve_fixed(law, rec, fixed) -> dict[str, float]:
    held = dict(law.fixed)
    sources = []
    if rec and law.name in rec.fixed:
        sources.append(get_preset(rec.fixed[law.name])["params"])
    if isinstance(fixed, str):
        sources.append(get_preset(fixed)["params"])
    elif fixed:
        unknown = [k for k in fixed if k not in law.param_names]
        if unknown:
            raise FitError(
                f"law {law.name!r} has no parameter {unknown[0]!r} to fix "
                f"(parameters: {', '.join(law.param_names)})"
            )
        sources.append(fixed)
    for source in sources:
        held.update({k: float(v) for k, v in source.items() if k in law.param_names})
    return {k: held[k] for k in law.param_names if k in held}


def _default_start(p: Param) -> float:
    """Centre of the prior, else of the bounds."""
    if p.prior and p.prior[0] == "LogNormal":
        return math.exp(p.prior[1])
    if p.prior and p.prior[0] in ("Normal", "Uniform"):
        return p.prior[1] if p.prior[0] == "Normal" else 0.5 * (p.prior[1] + p.prior[2])
    if math.isfinite(p.lower) and math.isfinite(p.upper):
        return math.sqrt(p.lower * p.upper) if p.log and p.lower > 0 else 0.5 * (p.lower + p.upper)
    return 1.0


def _start_grid(law: Law, free, grid, frame) -> np.ndarray:
    grid = law.init_grid if grid is None else grid
    if callable(grid):
        grid = grid(frame)
    unknown = [k for k in grid if k not in law.param_names]
    if unknown:
        raise FitError(f"grid names {unknown[0]!r}, which law {law.name!r} does not have")
    axes = [np.atleast_1d(np.asarray(grid.get(p.name, [_default_start(p)]), float)) for p in free]
    return np.array(list(itertools.product(*axes)), float).reshape(-1, len(free))


@dataclass(frozen=True)
class _Problem:
    solve: Callable
    evaluate: Callable
    to_internal: Callable  # (starts, n_free) natural -> optimiser coordinates
    to_natural: Callable  # the inverse
    refit: Callable  # one start per per-point weight vector (bootstrap)


@functools.lru_cache(maxsize=64)
def _problem(law: Law, free_names, fixed_names, objective: Objective) -> _Problem:
    """Compiled solve/evaluate for one law, parameter split and objective, reused across fits."""
    import jax

    from slaws.solver import levenberg_marquardt

    free = [law.param(n) for n in free_names]

    def residual_fn(fixed_values, inputs, log_obs):
        def residual(z):
            params = {p.name: p.from_internal(z[i]) for i, p in enumerate(free)}
            params |= {n: fixed_values[i] for i, n in enumerate(fixed_names)}
            return objective.residuals(law.log_loss(params, inputs), log_obs)

        return residual

    # Data arrive padded (slaws.data.padded): ``weight`` is 1 on real points, 0 on padding.
    @jax.jit
    def solve(z0, max_steps, weight, fixed_values, inputs, log_obs):
        residual = residual_fn(fixed_values, inputs, log_obs)
        weighted = objective.weighted(weight)

        def one(z):
            extra = weighted.init_extra(residual(z))
            return levenberg_marquardt(residual, weighted, z, extra, max_steps=max_steps)

        return jax.vmap(one)(z0)

    @jax.jit
    def evaluate(z0, weight, fixed_values, inputs, log_obs):
        residual = residual_fn(fixed_values, inputs, log_obs)
        weighted = objective.weighted(weight)

        def one(z):
            r = residual(z)
            value = weighted.value(r, weighted.init_extra(r))
            return jax.numpy.where(jax.numpy.isfinite(value), value, jax.numpy.inf)

        return jax.vmap(one)(z0)

    # One compiled map each way, rather than a dispatch of small eager ops per parameter.
    @jax.jit
    def to_internal(x):
        return jax.numpy.stack([p.to_internal(x[:, i]) for i, p in enumerate(free)], 1)

    @jax.jit
    def to_natural(z):
        return jax.numpy.stack([p.from_internal(z[:, i]) for i, p in enumerate(free)], 1)

    @jax.jit
    def refit(z, extra, counts, max_steps, tolerances, weight, fixed_values, inputs, log_obs):
        residual = residual_fn(fixed_values, inputs, log_obs)
        counts = counts * weight
        ftol, xtol = tolerances

        def one(z, extra, w):
            weighted = objective.weighted(w)
            return levenberg_marquardt(
                residual, weighted, z, extra, max_steps=max_steps, ftol=ftol, xtol=xtol
            )

        return jax.vmap(one)(z, extra, counts)

    return _Problem(solve, evaluate, to_internal, to_natural, refit)


def _batches(n: int, size: int):
    for lo in range(0, n, size):
        yield lo, min(lo + size, n)


def _pad(z: np.ndarray, size: int) -> np.ndarray:
    """Pad to a multiple of 64 rows (repeating the last) so batch shapes and compilations repeat."""
    target = min(size, -(-len(z) // 64) * 64)
    return np.concatenate([z, np.repeat(z[-1:], target - len(z), 0)]) if target > len(z) else z


def _run(problem, z, steps, args, say, label):
    """Optimise starts ``CHUNK`` at a time, so one compiled shape serves every stage."""
    out = {"z": [], "extra": [], "value": [], "status": [], "steps": [], "curvature": []}
    chunks = list(_batches(len(z), CHUNK))
    for i, (lo, hi) in enumerate(chunks, 1):
        chunk = np.concatenate([z[lo:hi], np.repeat(z[hi - 1 : hi], CHUNK - (hi - lo), 0)])
        sol = problem.solve(chunk, steps, *args)
        for key, value in zip(out, sol, strict=True):
            out[key].append(np.asarray(value)[: hi - lo])
        if len(chunks) > 1 and (i % 25 == 0 or i == len(chunks)):
            say(f"{label}: {hi:,}/{len(z):,} starts")
    return {k: np.concatenate(v) for k, v in out.items()}


def _best_distinct(z, values, k):
    """Indices of the k lowest finite values, skipping starts that sit on the same point."""
    order = np.argsort(np.where(np.isfinite(values), values, np.inf), kind="stable")
    _, first = np.unique(np.round(z[order], 6), axis=0, return_index=True)
    distinct = order[np.sort(first)]
    return distinct[:k]


def _optimise(problem, z0, args, n_points, max_steps, say):
    batch = max(FINAL_STARTS, BATCH_POINTS // n_points)
    n = len(z0)
    if n > batch:
        say(f"screening {n:,} starts on {n_points:,} points")
        values = np.empty(n)
        for lo, hi in _batches(n, batch):
            values[lo:hi] = np.asarray(problem.evaluate(_pad(z0[lo:hi], batch), *args))[: hi - lo]
            if (hi // batch) % 10 == 0 or hi == n:
                say(f"screening: {hi:,}/{n:,} starts evaluated")
        z0 = z0[_best_distinct(z0, values, batch)]
    if len(z0) > FINAL_STARTS:
        say(f"optimising {len(z0):,} starts for {SCREEN_STEPS} steps")
        stage = _run(problem, z0, SCREEN_STEPS, args, say, "optimising")
        z0 = stage["z"][_best_distinct(stage["z"], stage["value"], FINAL_STARTS)]
    say(f"optimising the best {len(z0):,} to convergence")
    return _run(problem, z0, max_steps, args, say, "converging")


def _starts_frame(free, natural, sol) -> pd.DataFrame:
    cols = {p.name: natural[:, i] for i, p in enumerate(free)} | {
        "objective": sol["value"],
        "status": [_STATUS[int(s)] for s in sol["status"]],
        "steps": sol["steps"],
    }
    return pd.DataFrame(cols).sort_values("objective", kind="stable").reset_index(drop=True)
