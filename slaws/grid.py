"""Huge grids: a law x posterior draws over millions of grid points, reduced over the draws.

:func:`evaluate` takes any registered law, point parameters or a posterior (anything
:func:`slaws.allocation.parameter_draws` reads: a preset, a mapping, a DataTree or a fit file) and
labelled axes (:class:`Axis`: log- or linearly spaced ranges, or explicit points; their Cartesian
product is the grid), and returns per grid point the mean, sd and quantiles of the loss over the
draws, the probability that the loss is below given thresholds, and optionally, along one axis, the
per-draw argmin summarised the same way (for example the compute-optimal N on each isoFLOP line:
axes ``C`` and ``N``, with ``D = C / 3F(N)`` derived by the FLOP model).

How it scales. The grid is cut into tiles (rectangles of up to 32,768 points, whose running sums
stay in cache) and the tiles into blocks sized by ``max_memory``. A tile never holds draws x points:
losses are folded into running sums as they are computed. Separable laws (every transcendental term
depends on one axis, as Chinchilla's A/N^alpha) are folded one draw at a time, unrolled eight to a
step, so the terms are computed once per axis and a point costs a few additions; other laws (the
distillation law) as one reduction over a step's draws, so XLA evaluates the law once per point and
draw. Blocks are split over every device of a ``jax.sharding.Mesh`` with ``jax.shard_map`` (no
communication: each device owns whole tiles); under ``jax.distributed`` the mesh spans every
process, all processes compute and process 0 writes. The same call runs on one CPU, eight GPUs or
several hosts.

Statistics. Mean and sd are exact (shifted sums in the grid's dtype; sd with ddof=0). A quantile
is returned as a value whose count of draws at or below it is known exactly and lies within
``quantile_tol`` of the quantile's rank (default 0.002, about half the Monte Carlo error of a 5%
quantile from 4,000 draws; never below 2 / (draws - 1)): it lies between numpy's sample quantiles
of levels q - err and q + err, with err reported per point (``quantile_rank_error``), so the bound
is verified, not assumed. Sorting 4,000 draws at each of 1e6 points is out of reach on a CPU, so:
exact quantiles on a sub-grid (about 8e6 draws x points: 2,048 points at 4,000 draws) give the
quantile standardised by the location and scale of the first eight draws, z = (Q - m8) / s8,
which changes slowly over the grid; the pass over the draws that sums for mean and sd also counts
the draws at or below m8 + s8 * z (interpolated) at every point, and for a law that costs far more
than a comparison (not separable) at two more rungs about a tolerance's worth of draws either side;
points where those guesses miss are gathered and bracketed by further counting passes (see
:func:`_quantiles`). Argmin statistics are exact (per-draw minima are few and sorted).

Output. Without ``out`` the result is an in-memory ``xarray.Dataset`` (``.to_dataframe()`` gives
pandas). With ``out``, finished blocks are written atomically to ``OUT.parts/`` as they complete,
then assembled into one netCDF file (chunked by tile), renamed into place at the end; a run that is
killed resumes from its parts (same arguments; a different run's parts are refused) and recomputes
nothing already written. An existing ``out`` is never replaced without ``force``.

Numerics: float32 by default; ``dtype="float64"`` evaluates inside a scoped ``jax.enable_x64``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

DRAWS_PER_STEP = 8  # draws folded per step of the scan, unrolled: XLA fuses them into one loop
TILE_POINTS = 32768  # points per tile: the running sums of a tile stay in cache
ANCHORS = 8  # draws whose location and scale place the quantile guesses before the pass
LADDER = 4  # thresholds per quantile and bracketing pass, besides the bracket's midpoint
MAX_ROUNDS = 16  # bracketing passes for missed guesses; points still wide are counted and reported
COARSE_VALUES = 2**23  # draws x points of the sub-grid whose exact quantiles seed the guesses
RUNGS = 3  # guesses per quantile in the pass of a non-separable law, where counting is cheap
_MOMENT_STATS = ("mean", "sd")


class GridError(ValueError):
    """Bad axes, statistics or options; the message is one line naming what is wrong."""


# ---------------------------------------------------------------------------------------------
# Axes and statistics
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Axis:
    """One labelled grid axis: an input column of the law (or ``C`` for isoFLOP grids).

    ``log`` records log spacing: argmin along a log axis refines its minimum in log space.

    >>> from slaws.grid import Axis
    >>> axis = Axis.parse("N=1e8:1e12:5:log")  # the same as Axis.logspace("N", 1e8, 1e12, 5)
    >>> axis.name, len(axis), axis.log, [f"{v:g}" for v in axis.values]
    ('N', 5, True, ['1e+08', '1e+09', '1e+10', '1e+11', '1e+12'])
    >>> Axis.parse("C=1e22,1e24").values.tolist(), Axis.parse("U=2e9").values.tolist()
    ([1e+22, 1e+24], [2000000000.0])
    >>> Axis.linspace("x", 1.0, 2.0, 3).values.tolist()
    [1.0, 1.5, 2.0]
    >>> Axis.parse("N=1e8:1e12")
    Traceback (most recent call last):
    ...
    slaws.grid.GridError: axis 'N=1e8:1e12': expected NAME=START:STOP:NUM[:log] or ...
    """

    name: str
    values: np.ndarray
    log: bool = False

    def __post_init__(self):
        values = np.atleast_1d(np.asarray(self.values, dtype=np.float64))
        if values.ndim != 1 or values.size == 0:
            raise GridError(f"axis {self.name}: needs at least one value")
        if not np.all(np.isfinite(values)) or np.any(values <= 0):
            bad = values[~(np.isfinite(values) & (values > 0))][0]
            raise GridError(f"axis {self.name}: values must be finite and positive, got {bad:g}")
        object.__setattr__(self, "values", values)

    @classmethod
    def logspace(cls, name: str, start: float, stop: float, num: int) -> Axis:
        """``num`` log-spaced points from ``start`` to ``stop`` inclusive."""
        _check_range(name, start, stop, num)
        return cls(name, np.geomspace(start, stop, num), log=num > 1)

    @classmethod
    def linspace(cls, name: str, start: float, stop: float, num: int) -> Axis:
        _check_range(name, start, stop, num)
        return cls(name, np.linspace(start, stop, num))

    @classmethod
    def parse(cls, spec: str) -> Axis:
        """``NAME=START:STOP:NUM[:log|:lin]`` or ``NAME=V1,V2,...`` or ``NAME=VALUE``."""
        name, sep, body = spec.partition("=")
        name = name.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise GridError(f"axis {spec!r}: expected NAME=START:STOP:NUM[:log] or NAME=V1,V2,...")
        try:
            if ":" in body:
                parts = body.split(":")
                scale = parts.pop() if parts[-1].strip() in ("log", "lin") else "lin"
                if len(parts) != 3:
                    raise ValueError
                start, stop, num = float(parts[0]), float(parts[1]), float(parts[2])
                if num != int(num):
                    raise ValueError
                make = cls.logspace if scale == "log" else cls.linspace
                return make(name, start, stop, int(num))
            return cls(name, [float(v) for v in body.split(",")])
        except GridError:
            raise
        except ValueError:
            raise GridError(
                f"axis {spec!r}: expected NAME=START:STOP:NUM[:log] or NAME=V1,V2,... with numbers"
            ) from None

    def __len__(self):
        return self.values.size


def _check_range(name, start, stop, num):
    if not (num >= 1 and math.isfinite(start) and math.isfinite(stop) and start > 0 and stop > 0):
        raise GridError(f"axis {name}: needs positive start and stop and at least one point")
    if num > 1 and start == stop:
        raise GridError(f"axis {name}: start equals stop with {num} points")


def quantile_level(stat: str) -> float | None:
    """``q05`` -> 0.05, ``q5`` -> 0.5, ``q975`` -> 0.975 (digits after a decimal point).

    >>> from slaws.grid import quantile_level
    >>> quantile_level("q05"), quantile_level("q5"), quantile_level("q975")
    (0.05, 0.5, 0.975)
    >>> quantile_level("mean") is None
    True
    """
    m = re.fullmatch(r"q(\d+)", stat)
    return float("0." + m.group(1)) if m else None


def parse_stats(stats: str | Sequence[str]) -> tuple[str, ...]:
    """Check statistic names: ``mean``, ``sd``, ``qNN`` (``q05``, ``q50``, ``q975``).

    >>> from slaws.grid import parse_stats
    >>> parse_stats("mean, sd,q05,q95")
    ('mean', 'sd', 'q05', 'q95')
    >>> parse_stats(["mean", "median"])
    Traceback (most recent call last):
    ...
    slaws.grid.GridError: unknown statistic 'median' (known: mean, sd, qNN such as q05, q975)
    """
    names = [s.strip() for s in stats.split(",")] if isinstance(stats, str) else list(stats)
    names = [s for s in names if s]
    if not names:
        raise GridError("no statistics asked for (known: mean, sd, qNN such as q05)")
    for s in names:
        if s not in _MOMENT_STATS and quantile_level(s) is None:
            raise GridError(f"unknown statistic {s!r} (known: mean, sd, qNN such as q05, q975)")
        if quantile_level(s) is not None and not 0 < quantile_level(s) < 1:
            raise GridError(f"statistic {s!r}: quantile level must lie strictly between 0 and 1")
    if len(set(names)) != len(names):
        raise GridError(f"statistics repeated: {','.join(names)}")
    return tuple(names)


def parse_memory(text: str | int | float) -> int:
    """``2GB``, ``512MiB``, ``1e9`` -> bytes.

    >>> from slaws.grid import parse_memory
    >>> parse_memory("2GB"), parse_memory("512MiB"), parse_memory("1e9"), parse_memory(4096)
    (2000000000, 536870912, 1000000000, 4096)
    """
    if isinstance(text, int | float):
        return int(text)
    m = re.fullmatch(r"\s*([0-9.eE+]+)\s*([kKmMgGtT]?)(i?[bB])?\s*", text)
    if not m:
        raise GridError(f"memory {text!r}: expected a size such as 2GB or 512MB")
    scale = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}[m.group(2).lower()]
    if m.group(3) and m.group(3).lower() == "ib":
        scale = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}[m.group(2).lower()]
    try:
        return int(float(m.group(1)) * scale)
    except ValueError:
        raise GridError(f"memory {text!r}: expected a size such as 2GB or 512MB") from None


# ---------------------------------------------------------------------------------------------
# The plan: which inputs the law reads, tiles and blocks
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    axes: tuple[Axis, ...]  # internal order: the argmin axis last
    tile: tuple[int, ...]  # tile shape (internal order)
    counts: tuple[int, ...]  # tiles along each axis
    tiles_per_block: int

    @property
    def n_tiles(self):
        return math.prod(self.counts)

    def tile_index(self, t: int) -> tuple[int, ...]:
        return tuple(int(i) for i in np.unravel_index(t, self.counts))

    def tile_slices(self, t: int) -> tuple[slice, ...]:
        """Internal-order slices of the grid that tile ``t`` covers (cropped at the edges)."""
        return tuple(
            slice(i * s, min((i + 1) * s, len(a)))
            for i, s, a in zip(self.tile_index(t), self.tile, self.axes, strict=True)
        )

    def tile_points(self, tiles: Sequence[int]) -> list[np.ndarray]:
        """Per axis, the grid indices each tile reads, ``(len(tiles), tile size)``, padded at
        the edges by repeating the last index (its results are cropped)."""
        starts = np.array([self.tile_index(t) for t in tiles]).reshape(len(tiles), -1)
        return [
            np.minimum(starts[:, [k]] * size + np.arange(size)[None, :], len(axis) - 1)
            for k, (axis, size) in enumerate(zip(self.axes, self.tile, strict=True))
        ]


def _law_inputs(law, names: Sequence[str]) -> bool:
    """Check that the axes give every input of ``law``; ``C`` with ``N`` stands for ``D``.
    Returns whether ``D`` is derived that way."""
    available = set(names)
    derive_d = "C" in available and "N" in available and "D" not in available
    if derive_d:
        available.add("D")
    missing = []
    for entry in law.inputs:
        alternatives = entry if isinstance(entry, tuple) else (entry,)
        options = [alt if isinstance(alt, tuple) else (alt,) for alt in alternatives]
        if not any(set(o) <= available for o in options):
            missing.append(" or ".join("+".join(o) for o in options))
    if missing:
        raise GridError(
            f"law {law.name!r} needs axes for {', '.join(missing)} "
            f"(axes given: {', '.join(names)}; C with N stands for D)"
        )
    used = set(law.used_inputs(available))
    unused = [n for n in names if n not in used and not (n == "C" and derive_d)]
    if unused:
        raise GridError(f"law {law.name!r} does not read axis {unused[0]!r} (reads {sorted(used)})")
    return derive_d


def _plan(axes, argmin, n_draws, n_stats, n_counts, itemsize, max_memory, n_devices):
    names = [a.name for a in axes]
    order = list(range(len(axes)))
    if argmin is not None:
        k = names.index(argmin)
        order = [i for i in order if i != k] + [k]
    internal = tuple(axes[i] for i in order)
    sizes = [len(a) for a in internal]
    # Bytes per tile point on a device: running sums, counts, one step of draws, temporaries.
    working = itemsize * (DRAWS_PER_STEP + 8 + 2 * n_counts + n_stats)
    # Per point of a block: device result, gathered copy, host part, its file buffer.
    result = 4 * itemsize * max(n_stats + n_counts, 1)
    argmin_len = sizes[-1] if argmin is not None else 1
    # Argmin keeps every draw's minimum for each line of the tile (exact quantiles of it).
    per_line = 4 * itemsize * n_draws * 2 if argmin is not None else 0
    target = min(TILE_POINTS, max(max_memory // 4 // max(n_devices, 1) // working, 1))
    if argmin is not None:
        target = max(target, argmin_len)
    tile = [1] * len(sizes)
    room = target
    for k in reversed(range(len(sizes))):
        tile[k] = min(sizes[k], max(room, 1))
        room //= max(sizes[k], 1)
        if room < 1:
            break
    if argmin is not None:
        tile[-1] = sizes[-1]
    points = math.prod(tile)
    lines = points // argmin_len
    per_tile = points * (working + result) + lines * per_line
    counts = tuple(-(-n // s) for n, s in zip(sizes, tile, strict=True))
    n_tiles = math.prod(counts)
    if per_tile * max(n_devices, 1) > max_memory:
        raise GridError(
            f"max memory {max_memory / 1e6:.3g} MB is too small for one tile per device "
            f"({per_tile * max(n_devices, 1) / 1e6:.3g} MB); raise --max-memory"
        )
    per_block = max(max_memory // 2 // per_tile, n_devices)
    per_block = max(per_block // n_devices * n_devices, n_devices)
    per_block = min(per_block, -(-n_tiles // n_devices) * n_devices)
    return _Plan(internal, tuple(tile), counts, int(per_block))


# ---------------------------------------------------------------------------------------------
# The tile kernel: running sums over draws, quantile brackets, argmin
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Draws:
    """Losses of one draw, or of a batch of draws along the leading axis: ``update`` functions
    reduce over the draws with these, so one code path serves both ways of folding."""

    values: object
    batched: bool

    def sum(self, f=lambda v: v):
        return f(self.values).sum(0) if self.batched else f(self.values)


def _fold(loss_at, params, n, carry, update, step=DRAWS_PER_STEP):
    """Fold ``update(carry, losses)`` over ``n`` draws, ``step`` draws a time.

    ``update`` reduces over the leading axis of ``losses``. Separable laws (every transcendental
    term depends on at most one axis, as in Chinchilla) run fastest one draw at a time, unrolled:
    the terms are computed once per axis and only additions remain per point. Other laws (the
    distillation law) are cheapest as one reduction over the step's draws, since unrolling would
    let XLA recompute the whole law for each draw it slices out."""
    one_at_a_time = step == DRAWS_PER_STEP and getattr(loss_at, "separable", False)

    def group(carry, p):
        values = loss_at(p)
        if not one_at_a_time:
            return update(carry, _Draws(values, batched=True)), None
        for j in range(values.shape[0]):
            carry = update(carry, _Draws(values[j], batched=False))
        return carry, None

    return _scan_draws(group, carry, params, n, step)[0]


def _scan_draws(group, carry, params, n, step):
    """``lax.scan`` of ``group(carry, params of step draws)`` over ``n`` draws, the remainder
    in one last call; returns the carry and the per-draw outputs, draws first."""
    import jax
    import jax.numpy as jnp

    full, rest = divmod(n, step)
    outputs = []
    if full:
        grouped = {k: v[: full * step].reshape(full, step) for k, v in params.items()}
        carry, ys = jax.lax.scan(group, carry, grouped)
        outputs.append(jax.tree.map(lambda y: y.reshape((full * step,) + y.shape[2:]), ys))
    if rest:
        carry, ys = group(carry, {k: v[full * step :] for k, v in params.items()})
        outputs.append(ys)
    return carry, jax.tree.map(lambda *ys: jnp.concatenate(ys), *outputs)


def _tile_kernel(loss_fn, names, spec):
    """One tile: inputs per axis -> statistics. ``spec`` holds everything static."""
    import jax.numpy as jnp

    levels = spec["quantiles"]
    n = spec["n_draws"]
    argmin = spec["argmin"]
    tol = spec["quantile_tol"]
    k_dims = len(names)

    def tile(params, zhat, values, below):
        shape = tuple(v.shape[0] for v in values)
        # Each axis along its own dimension, after a leading one for draws.
        x = {
            name: v.reshape((1,) + tuple(s if i == k else 1 for i, s in enumerate(shape)))
            for k, (name, v) in enumerate(zip(names, values, strict=True))
        }

        def loss_at(p):
            p = {k: v.reshape(v.shape + (1,) * k_dims) for k, v in p.items()}
            return jnp.broadcast_to(loss_fn(p, x), (next(iter(p.values())).shape[0],) + shape)

        loss_at.separable = _separable(loss_at, params, shape)
        ref = loss_at({k: v[:1] for k, v in params.items()})[0]
        dtype = ref.dtype
        zeros = jnp.zeros(shape, dtype)
        out = {}

        def update(carry, draws):
            (s1, s2), c = carry
            s1 = s1 + draws.sum(lambda v: v - ref)
            s2 = s2 + draws.sum(lambda v: (v - ref) ** 2)
            return (s1, s2), _count(c, draws, thresholds)

        # Quantile guesses before the one pass over the draws: location and scale of the first
        # ANCHORS draws (cheap) times the sub-grid's standardised quantile, interpolated. Where
        # the law costs far more than a comparison (not separable), a ladder of RUNGS guesses
        # about a goal's worth of draws apart, so that most points need no further pass.
        thresholds = [jnp.broadcast_to(t, shape).astype(dtype) for t in below]
        if levels:
            anchors = loss_at({k: v[:ANCHORS] for k, v in params.items()})
            m, s, z = anchors.mean(0), anchors.std(0), zhat.astype(dtype)
            rungs = 1 if loss_at.separable else RUNGS
            density = n * jnp.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)  # draws per unit z
            apart = _goal(n, tol) / jnp.maximum(density, 1.0)
            guess = jnp.stack([m + s * (z + (r - rungs // 2) * apart) for r in range(rungs)])
            if rungs > 1:
                # Anchors that agree sit on a mass of tied draws (the distillation law in float32
                # returns the teacher's loss exactly where the student's gap rounds away): the
                # rung just below their value tells whether the quantile is that value.
                guess = guess.at[0].set(jnp.where(s == 0, jnp.nextafter(m, -jnp.inf), guess[0]))
            thresholds = list(guess.reshape((-1,) + shape)) + thresholds
        # The pass: shifted sums and counts below every threshold (no running extremes: they
        # would cost a fifth of the pass, and only ever started brackets).
        carry = ((zeros, zeros), (zeros,) * len(thresholds))
        (s1, s2), c = _fold(loss_at, params, n, carry, update)
        mean = s1 / n
        sd = jnp.sqrt(jnp.maximum(s2 / n - mean**2, 0))
        out["mean"], out["sd"] = ref + mean, sd
        n_guesses = guess.shape[0] * len(levels) if levels else 0
        if below.shape[0]:
            out["p_below"] = jnp.stack(c[n_guesses:]) / n
        if levels:
            # Most guesses hold the quantile's rank to within tol; the rest are bracketed.
            checked = (guess, jnp.stack(c[:n_guesses]).reshape(guess.shape))
            flat_loss = partial(_flat_loss, loss_fn, names, values)
            out.update(_quantiles(flat_loss, params, n, levels, checked, ref + mean, sd, tol))
        if argmin is not None:
            out.update(_argmin(loss_at, params, n, values[-1], spec, dtype))
        return out

    return tile


_TRANSCENDENTAL = {"exp", "exp2", "log", "log1p", "expm1", "pow", "logistic", "tanh", "erf"}


def _separable(loss_at, params, shape):
    """Whether no transcendental op of the law runs at full (draws, *tile) shape."""
    import jax

    step = {k: v[:DRAWS_PER_STEP] for k, v in params.items()}
    full = (DRAWS_PER_STEP, *shape)

    def heavy(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name in _TRANSCENDENTAL and any(
                getattr(v.aval, "shape", ()) == full and math.prod(full) > DRAWS_PER_STEP
                for v in eqn.outvars
            ):
                return True
            for param in eqn.params.values():
                for sub in param if isinstance(param, tuple | list) else (param,):
                    inner = getattr(sub, "jaxpr", sub)
                    if hasattr(inner, "eqns") and heavy(inner):
                        return True
        return False

    return not heavy(jax.make_jaxpr(loss_at)(step).jaxpr)


def _count(carry, draws, thresholds):
    """Add ``draws`` to the counts of draws at or below each threshold."""
    import jax.numpy as jnp

    def below(t, dtype):
        return lambda v: jnp.where(v <= t, jnp.ones((), dtype), jnp.zeros((), dtype))

    return tuple(c + draws.sum(below(t, c.dtype)) for c, t in zip(carry, thresholds, strict=True))


def _goal(n, tol):
    """The rank tolerance in draws; two is always reachable."""
    return max(tol * max(n - 1, 1), 2.0)


def _flat_loss(loss_fn, names, values, index, p):
    """The loss at tile points ``index`` (flat) for draws ``p``: (draws, len(index))."""
    import jax.numpy as jnp

    shape = tuple(v.shape[0] for v in values)
    coords = jnp.unravel_index(index, shape)
    x = {name: v[i][None, :] for name, v, i in zip(names, values, coords, strict=True)}
    p = {k: v[:, None] for k, v in p.items()}
    return jnp.broadcast_to(loss_fn(p, x), (next(iter(p.values())).shape[0], index.shape[0]))


def _quantiles(flat_loss, params, n, levels, checked, mean, sd, tol):
    """Each quantile as a verified threshold: a value whose count of draws at or below it is
    known exactly and within ``tol`` of the quantile's rank (see the module docstring).

    Where the guess misses, a bracket (lo, hi] with count(lo) < target <= count(hi) shrinks by
    a ladder of thresholds a pass across a window around an estimate of the quantile, and the
    midpoint, which at least halves the bracket (ties in float32 end there: a bracket one ulp
    wide holds the quantile's exact value). Brackets start from the guess and an infinite side;
    while a side is infinite the estimate moves the best threshold so far by the point's sd times
    the gap in probit between its count and the target (a Newton step on a normal's count that
    stays sane in the tails), and a far probe past the ladder, twice as far each pass, stands in
    for the midpoint; then the estimate is the probit interpolation of the counts at both ends.
    A point whose draws all agree (sd 0) has their common value. The passes run over the pending
    points only, gathered."""
    import jax
    import jax.numpy as jnp
    from jax.scipy.special import ndtri

    dtype = sd.dtype
    L = len(levels)
    P, tile_shape = sd.size, sd.shape
    flat = lambda a: a.reshape(a.shape[: a.ndim - sd.ndim] + (P,))
    guesses, counted = (flat(a) for a in checked)  # (rungs, levels, P)
    sd, mean = flat(sd), flat(mean)
    h = jnp.asarray([q * (n - 1) for q in levels], dtype)[:, None]
    target = h + 1  # count of draws at or below Q, as a real number
    j = jnp.floor(h)
    scale = max(n - 1, 1)
    goal = _goal(n, tol)

    def error(c):
        """A value with count c lies in [x_(c), x_(c+1)): numpy's quantile of a level h'/(n-1)
        with h' in [c - 1, c], which is within error(c)/(n-1) of q = (target - 1)/(n-1)."""
        return jnp.maximum(jnp.abs(c - target), jnp.abs(c + 1 - target))

    def narrow(bracket, t, ct):
        """The bracket (lo, hi, c_lo, c_hi) and best (value, count) after counting ct at t."""
        lo, hi, cl, ch, b, bc = bracket
        below = (ct < target) & (t > lo)
        above = (ct >= target) & (t < hi)
        lo, cl = jnp.where(below, t, lo), jnp.where(below, ct, cl)
        hi, ch = jnp.where(above, t, hi), jnp.where(above, ct, ch)
        better = error(ct) < error(bc)
        return lo, hi, cl, ch, jnp.where(better, t, b), jnp.where(better, ct, bc)

    middle = guesses.shape[0] // 2
    infinite, none = jnp.full_like(guesses[0], jnp.inf), jnp.zeros_like(counted[0])
    bracket = (-infinite, infinite, none, none + n, guesses[middle], counted[middle])
    for t, ct in zip(guesses, counted, strict=True):
        bracket = narrow(bracket, t, ct)
    lo, hi, c_lo, c_hi, guess, counted = bracket
    degenerate = jnp.broadcast_to(sd == 0, lo.shape)

    def tied(lo, hi, c_lo):  # x_(j) and x_(j+1) are both the one float in (lo, hi]
        return (hi <= jnp.nextafter(lo, jnp.inf)) & (c_lo <= j)

    def pending(lo, hi, c_lo, best_c):
        return (error(best_c) > goal) & ~degenerate & ~tied(lo, hi, c_lo)

    def probit(c):
        return ndtri(jnp.clip(c, 0.5, n - 0.5) / n)

    # Draws per unit of loss at each quantile, were the draws normal with the point's sd.
    z_target = probit(target)
    density = n * jnp.exp(-0.5 * z_target**2) / math.sqrt(2 * math.pi) / jnp.maximum(sd, 1e-30)

    # Each step gathers up to a batch of pending points and gives each a pass; a point gets at
    # most MAX_ROUNDS passes. One batch size: a point's passes do not depend on its batch-mates,
    # so small batches lose nothing but loop steps, and a second size (a larger batch while
    # many points miss) cost a third more compile time for every grid.
    size = min(P, max(P // 64, 64))

    def waiting(state):
        lo, hi, c_lo, _, _, best_c, tries = state
        return jnp.any(pending(lo, hi, c_lo, best_c), axis=0) & (tries < MAX_ROUNDS)

    def body(state):
        return refine(state, waiting(state))

    def refine(state, need):
        lo, hi, c_lo, c_hi, best, best_c, tries = state
        (index,) = jnp.nonzero(need, size=size, fill_value=0)
        valid = need[index]
        take = lambda a: a[:, index]
        lo_, hi_, cl, ch = take(lo), take(hi), take(c_lo), take(c_hi)
        b, bc, rho, s = take(best), take(best_c), take(density), take(sd[None])
        open_ = jnp.isinf(lo_) | jnp.isinf(hi_)
        finite = lambda a: jnp.where(open_, b, a)  # keeps inf - inf out of the unused branch
        width = finite(hi_) - finite(lo_)
        span = probit(ch) - probit(cl)
        safe = jnp.where(span > 0, span, 1)
        frac = jnp.where(span > 0, (probit(target) - probit(cl)) / safe, 0.5)
        interpolated = finite(lo_) + jnp.clip(frac, 0, 1) * width
        half = width * 0.5 * jnp.maximum(goal, (ch - cl) / 8) / jnp.maximum(ch - cl, 1)
        one_sided = (cl == 0) | (ch == n)
        miss = target - bc
        step = s * (z_target - probit(bc))
        centre = jnp.where(one_sided, b + step, interpolated)
        half = jnp.where(one_sided, jnp.maximum(goal / rho, jnp.abs(step) / 4), half)
        # A ladder across the estimate's window (comparisons are cheap next to the law) and the
        # bracket's midpoint, or while the bracket is open a far probe past the ladder (in case
        # the tail is heavier than the normal's), twice as far each pass.
        ladder = [centre + half * (2 * i / (LADDER - 1) - 1) for i in range(LADDER)]
        reach = 4.0 * half * jnp.exp2(take(tries[None]).astype(dtype))
        far = centre + jnp.sign(miss) * reach
        ts = [jnp.clip(t, lo_, hi_) for t in ladder]
        ts.append(jnp.where(open_, jnp.clip(far, lo_, hi_), finite(lo_) + width / 2))
        # Just below hi: whether hi is a mass of tied draws holding the quantile (else a
        # bracket around a tie halves down to one ulp, pass after pass).
        ts.append(jnp.where(jnp.isinf(hi_), ts[0], jnp.maximum(jnp.nextafter(hi_, -jnp.inf), lo_)))
        flat_ts = [t[i] for t in ts for i in range(L)]
        zero = jnp.zeros((index.shape[0],), dtype)
        count = partial(_count, thresholds=flat_ts)
        cs = _fold(lambda p: flat_loss(index, p), params, n, (zero,) * len(flat_ts), count, step=16)
        news = (lo_, hi_, cl, ch, b, bc)
        for k, t in enumerate(ts):
            news = narrow(news, t, jnp.stack(cs[k * L : (k + 1) * L]))
        put = lambda a, v: a.at[:, index].set(jnp.where(valid, v, a[:, index]))
        new = (lo, hi, c_lo, c_hi, best, best_c)
        tries = tries.at[index].add(valid.astype(tries.dtype))
        return (*(put(a, v) for a, v in zip(new, news, strict=True)), tries)

    def cond(state):
        return jnp.any(waiting(state))

    tries = jnp.zeros((P,), jnp.int32)
    state = (lo, hi, c_lo, c_hi, guess, counted, tries)
    lo, hi, c_lo, _, best, best_c, _ = jax.lax.while_loop(cond, body, state)
    exact = degenerate | tied(lo, hi, c_lo)
    value = jnp.where(degenerate, mean, jnp.where(exact, hi, best))
    rank_error = jnp.where(exact, 0, error(best_c) / scale)
    return {
        "quantiles": value.reshape((L,) + tile_shape),
        "quantile_rank_error": rank_error.reshape((L,) + tile_shape),
    }


def _argmin(loss_at, params, n, axis_values, spec, dtype):
    """Per draw, the minimum along the last axis, refined by a parabola through its neighbours
    (in log coordinates for a log axis); statistics over draws are exact."""
    import jax.numpy as jnp

    u = jnp.log(axis_values) if spec["argmin_log"] else axis_values
    m = u.shape[0]

    def per_draw(_, p):
        values = loss_at(p)  # (step, ..., m)
        k = jnp.argmin(values, axis=-1)
        take = lambda a, i: jnp.take_along_axis(a, i[..., None], axis=-1)[..., 0]
        km, kp = jnp.clip(k - 1, 0, m - 1), jnp.clip(k + 1, 0, m - 1)
        y0, y1, y2 = take(values, km), take(values, k), take(values, kp)
        x0, x1, x2 = u[km], u[k], u[kp]
        d01, d12 = (
            (y1 - y0) / jnp.where(x1 == x0, 1, x1 - x0),
            (y2 - y1) / jnp.where(x2 == x1, 1, x2 - x1),
        )
        curvature = (d12 - d01) / jnp.where(x2 == x0, 1, x2 - x0)
        inner = (k > 0) & (k < m - 1) & (curvature > 0)
        vertex = 0.5 * (x0 + x1) - d01 / (2 * jnp.where(curvature > 0, curvature, 1))
        vertex = jnp.where(inner, jnp.clip(vertex, x0, x2), x1)
        # Evaluate the interpolating parabola at the vertex (Newton form through x0, x1, x2).
        low = jnp.where(
            inner, y0 + d01 * (vertex - x0) + curvature * (vertex - x0) * (vertex - x1), y1
        )
        coord = jnp.exp(vertex) if spec["argmin_log"] else vertex
        return None, (coord, jnp.minimum(low, y1), (~inner).astype(dtype))

    _, (coord, low, edge) = _scan_draws(per_draw, None, params, n, DRAWS_PER_STEP)
    return {
        "opt": _exact_stats(coord, spec["stats"]),
        "loss_opt": _exact_stats(low, spec["stats"]),
        "opt_at_bound": jnp.mean(edge, axis=0),
    }


def _exact_stats(draws, stats):
    import jax.numpy as jnp

    out = []
    levels = [quantile_level(s) for s in stats if quantile_level(s) is not None]
    qs = jnp.quantile(draws, jnp.asarray(levels, draws.dtype), axis=0) if levels else None
    i = 0
    for s in stats:
        if s == "mean":
            out.append(jnp.mean(draws, axis=0))
        elif s == "sd":
            out.append(jnp.std(draws, axis=0))
        else:
            out.append(qs[i])
            i += 1
    return jnp.stack(out)


def _loss_fn(law, derive_d, flops):
    """The law on a dict of axis arrays; ``D = C / 3F(N)`` on isoFLOP grids."""
    import jax.numpy as jnp

    from slaws.flops import get_flops

    log_forward = get_flops(flops)

    def loss(p, x):
        if derive_d:
            x = dict(x)
            log_c = jnp.log(x.pop("C"))
            x["D"] = jnp.exp(log_c - math.log(3.0) - log_forward(jnp.log(x["N"])))
        return law.loss(p, x)

    return loss


_PROGRAMS: dict = {}


def _block_program(law, names, spec, mesh, derive_d, flops):
    """jit(shard_map(map over local tiles)): each device owns whole tiles; cached per process."""
    key = (law, tuple(names), tuple(sorted(spec.items())), mesh, derive_d, flops)
    if key not in _PROGRAMS:
        import jax
        from jax.sharding import PartitionSpec

        tile = _tile_kernel(_loss_fn(law, derive_d, flops), names, spec)

        def local(params, zhat, values, below):
            return jax.lax.map(lambda zv: tile(params, zv[0], zv[1], below), (zhat, values))

        replicated, tiled = PartitionSpec(), PartitionSpec("tiles")
        program = jax.shard_map(
            local,
            mesh=mesh,
            in_specs=(replicated, tiled, tiled, replicated),
            out_specs=tiled,
            check_vma=False,  # no collectives: each device's tiles are its own
        )
        _PROGRAMS[key] = jax.jit(program)
    return _PROGRAMS[key]


# ---------------------------------------------------------------------------------------------
# The entry point
# ---------------------------------------------------------------------------------------------


def evaluate(
    law,
    params,
    axes: Sequence[Axis | str],
    *,
    stats: str | Sequence[str] = ("mean", "sd"),
    below: Sequence[float] = (),
    argmin: str | None = None,
    dtype: str = "float32",
    max_memory: str | int = "1GB",
    quantile_tol: float = 2e-3,
    flops="6ND",
    sample: int = 0,
    seed: int = 0,
    out: str | os.PathLike | None = None,
    force: bool = False,
    devices: Sequence | None = None,
    progress: Callable[[int, int], None] | None = None,
):
    """Statistics of ``law`` over posterior draws at every point of a grid (see module docs).

    Args:
      law: a registered law or its name.
      params: a preset name, a mapping of parameter arrays, a posterior DataTree or a fit file
        (``.nc``); ``sample``/``seed`` draw from a preset's published intervals.
      axes: :class:`Axis` objects or specs such as ``"N=1e8:1e12:1000:log"``; the grid is their
        Cartesian product, in this order.
      stats: any of ``mean``, ``sd``, ``qNN``.
      below: thresholds t; adds ``p_below``, the share of draws with loss <= t.
      argmin: an axis name, say ``N``; adds ``N_opt`` and ``loss_opt`` (each draw's minimiser
        and minimum along that axis, summarised by ``stats``) and ``N_opt_at_bound`` (share of
        draws whose minimum is the axis's first or last point: widen the axis).
      dtype: ``float32`` (default) or ``float64``.
      max_memory: bound on the memory the run holds (``"2GB"``); sets tile and block sizes.
      quantile_tol: rank tolerance of the quantiles.
      flops: FLOP model deriving ``D`` from a ``C`` axis.
      out: netCDF path, written block by block and renamed into place; resumes a killed run.
      force: replace an existing ``out`` (and stale parts of a different run).
      devices: the devices to shard over (default: all devices of all processes).
      progress: called as ``progress(tiles_done, tiles_total)`` after each block.

    Returns:
      ``xarray.Dataset`` with ``loss`` (dims ``stat`` then the axes), ``p_below``
      (``threshold`` then the axes), and for ``argmin`` the variables over the other axes. With
      ``out`` the dataset is opened lazily from the file.

    >>> import slaws.grid as g
    >>> ds = g.evaluate("chinchilla", "hoffmann2022", ["N=1e8:1e12:5:log", "D=1e9,1e12"])
    >>> round(float(ds["loss"].sel(stat="mean", N=1e12, D=1e12)), 4)
    1.9031

    Over 50 draws from Epoch's published intervals: the chance that the loss is at most 2.2,
    and the compute-optimal N on two isoFLOP lines (``C`` with ``N`` stands for ``D``):

    >>> axes = ["N=1e8:1e12:20:log", "D=1e9:1e13:20:log"]
    >>> ds = g.evaluate("chinchilla", "epoch2024", axes, below=[2.2], sample=50, seed=0)
    >>> ds["p_below"].dims, float(ds["p_below"].sel(threshold=2.2, N=1e12, D=1e13))
    (('threshold', 'N', 'D'), 1.0)
    >>> axes = ["C=1e22,1e24", "N=1e7:1e13:50:log"]
    >>> iso = g.evaluate("chinchilla", "epoch2024", axes, argmin="N", sample=50, seed=0)
    >>> [f"{n:.2g}" for n in iso["N_opt"].sel(stat="mean").values]
    ['1.5e+10', '1.7e+11']
    """
    import jax

    from slaws.allocation import parameter_draws
    from slaws.law import get_law

    law = get_law(law)
    axes = tuple(a if isinstance(a, Axis) else Axis.parse(a) for a in axes)
    names = [a.name for a in axes]
    if not axes:
        raise GridError("no axes given")
    if len(set(names)) != len(names):
        raise GridError(f"axis names repeated: {', '.join(names)}")
    derive_d = _law_inputs(law, names)
    stats = parse_stats(stats)
    below = tuple(float(b) for b in below)
    if not all(math.isfinite(b) for b in below):
        raise GridError("thresholds of --below must be finite")
    if argmin is not None and argmin not in names:
        raise GridError(f"argmin axis {argmin!r} is not one of the axes ({', '.join(names)})")
    if argmin is not None and len(axes[names.index(argmin)]) < 3:
        raise GridError(f"argmin axis {argmin!r} needs at least 3 points")
    if dtype not in ("float32", "float64"):
        raise GridError(f"dtype {dtype!r}: use float32 or float64")
    if not 0 < quantile_tol < 0.5:
        raise GridError(f"quantile tolerance {quantile_tol} must lie in (0, 0.5)")
    max_memory = parse_memory(max_memory)
    try:
        draws = parameter_draws(params, law, sample=sample, seed=seed)
    except ValueError as exc:
        raise GridError(str(exc)) from None
    n = len(next(iter(draws.values())))
    if dtype == "float32" and n >= 2**24:
        raise GridError(f"{n} draws: float32 counts are exact only below 2^24; use float64")
    bad = [k for k, v in draws.items() if not np.all(np.isfinite(v))]
    if bad:
        raise GridError(f"parameter {bad[0]!r} has non-finite draws")

    devices = list(devices) if devices is not None else jax.devices()
    mesh = jax.sharding.Mesh(np.array(devices), ("tiles",))
    levels = tuple(quantile_level(s) for s in stats if quantile_level(s) is not None)
    n_counts = 2 * len(levels) + len(below)
    itemsize = 4 if dtype == "float32" else 8
    plan = _plan(axes, argmin, n, len(stats), n_counts, itemsize, max_memory, len(devices))
    spec = {
        "stats": stats,
        "quantiles": levels,
        "n_draws": n,
        "argmin": argmin,
        "argmin_log": bool(argmin is not None and plan.axes[-1].log),
        "quantile_tol": float(quantile_tol),
    }
    internal_names = [a.name for a in plan.axes]
    info = {
        "law": law.name,
        "draws": n,
        "axes": names,
        "stats": list(stats),
        "below": list(below),
        "argmin": argmin,
        "dtype": dtype,
        "quantile_tol": quantile_tol,
        "flops": flops if isinstance(flops, str) else getattr(flops, "__name__", "custom"),
        "tile": list(plan.tile),
    }
    fingerprint = _fingerprint(info, axes, draws)
    store = _Store(out, fingerprint, force) if out is not None else None

    with jax.enable_x64(dtype == "float64"):
        program = _block_program(law, internal_names, spec, mesh, derive_d, flops)
        np_dtype = np.dtype(dtype)
        params_all = {k: v.astype(np_dtype) for k, v in draws.items()}
        replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
        tiled = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("tiles"))
        put = partial(_global_array, replicated)
        params_dev = jax.tree.map(put, params_all)
        coarse = _coarse_z(law, derive_d, flops, plan.axes, params_all, levels, max_memory)
        below_dev = put(np.asarray(below, np_dtype))

        todo = store.remaining(plan.n_tiles) if store else list(range(plan.n_tiles))
        todo = _agree(todo, plan.n_tiles)
        memory = None if store else _Results(plan, spec, below, np_dtype)
        done = plan.n_tiles - len(todo)
        if progress:
            progress(done, plan.n_tiles)
        for start in range(0, len(todo), plan.tiles_per_block):
            tiles = todo[start : start + plan.tiles_per_block]
            padded = tiles + [tiles[-1]] * (plan.tiles_per_block - len(tiles))
            points = plan.tile_points(padded)
            values = [
                _global_array(tiled, a.values[i].astype(np_dtype))
                for a, i in zip(plan.axes, points, strict=True)
            ]
            zhat = _global_array(tiled, _zhat(coarse, plan, points, len(levels)).astype(np_dtype))
            result = _gather(program(params_dev, zhat, tuple(values), below_dev))
            result = {k: v[: len(tiles)] for k, v in result.items()}
            if store:
                store.write(tiles, result)
            else:
                memory.fill(tiles, result)
            done += len(tiles)
            if progress:
                progress(done, plan.n_tiles)

    info["citation"] = law.citation
    if store is None:
        return memory.dataset(axes, info)
    return store.finish(plan, axes, spec, below, np_dtype, info)


def _coarse_z(law, derive_d, flops, axes, params, levels, max_memory):
    """Exact quantiles on a sub-grid of about COARSE_VALUES / draws points, standardised by the
    location and scale of the first ANCHORS draws: z = (Q - m8) / s8. z changes slowly over the
    grid, so interpolating it and scaling by each point's own m8 and s8 (cheap in the kernel)
    guesses its quantile within a few draws."""
    if not levels:
        return None
    import jax
    import jax.numpy as jnp

    n = len(next(iter(params.values())))
    itemsize = next(iter(params.values())).dtype.itemsize
    points = max(min(COARSE_VALUES // n, max_memory // 8 // (n * itemsize)), 1)
    per_axis = max(int(points ** (1 / len(axes))), 2)
    index = [
        np.unique(np.round(np.linspace(0, len(a) - 1, min(len(a), per_axis))).astype(int))
        for a in axes
    ]
    k = len(axes)
    x = {}
    for i, (a, idx) in enumerate(zip(axes, index, strict=True)):
        shape = [1] * (k + 1)
        shape[i + 1] = len(idx)
        x[a.name] = jnp.asarray(a.values[idx].reshape(shape), next(iter(params.values())).dtype)
    p = {name: jnp.asarray(v).reshape((n,) + (1,) * k) for name, v in params.items()}
    key = ("coarse", law, derive_d, flops)
    if key not in _PROGRAMS:
        _PROGRAMS[key] = jax.jit(_loss_fn(law, derive_d, flops))
    loss = np.asarray(_PROGRAMS[key](p, x))
    # Draws last and contiguous: numpy's selection runs along the last axis.
    loss = np.ascontiguousarray(
        np.moveaxis(np.broadcast_to(loss, (n,) + tuple(len(i) for i in index)), 0, -1)
    )
    anchors = loss[..., :ANCHORS]
    mean, sd = anchors.mean(axis=-1), anchors.std(axis=-1)
    q = np.quantile(loss, levels, axis=-1)
    z = np.where(sd > 0, (q - mean) / np.where(sd > 0, sd, 1.0), 0.0)
    return index, z


def _zhat(coarse, plan, points, n_levels):
    """Multilinear interpolation (in grid-index space) of the sub-grid's z to every point of
    tiles (``points`` from ``plan.tile_points``): ``(tiles, levels, *tile)``."""
    shape = (len(points[0]), n_levels) + plan.tile
    if coarse is None:
        return np.zeros(shape)
    index, table = coarse
    k = len(plan.axes)
    corners = []
    for a, size in enumerate(plan.tile):
        f = np.interp(points[a], index[a], np.arange(len(index[a])))
        lower = np.clip(np.floor(f).astype(int), 0, max(len(index[a]) - 2, 0))
        upper = np.minimum(lower + 1, len(index[a]) - 1)
        w = np.clip(f - lower, 0, 1)
        reshape = [shape[0]] + [1] * k
        reshape[1 + a] = size
        corners.append(
            (
                (lower.reshape(reshape), (1 - w).reshape(reshape)),
                (upper.reshape(reshape), w.reshape(reshape)),
            )
        )
    out = np.zeros(shape)
    for choice in itertools.product((0, 1), repeat=k):
        weight = 1.0
        idx = []
        for a, c in enumerate(choice):
            j, w = corners[a][c]
            idx.append(j)
            weight = weight * w
        values = table[(slice(None),) + tuple(idx)]  # (levels, tiles, *tile)
        out += np.moveaxis(values, 0, 1) * weight[:, None]
    return out


def _global_array(sharding, value):
    """A (possibly multi-process) global array from a value every process holds in full."""
    import jax

    value = np.asarray(value)
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


def _gather(tree):
    """Device results -> numpy on every process."""
    import jax

    if jax.process_count() == 1:
        return {k: np.asarray(v) for k, v in tree.items()}
    from jax.experimental import multihost_utils

    return {
        k: np.asarray(v) for k, v in multihost_utils.process_allgather(tree, tiled=True).items()
    }


def _agree(todo, n_tiles):
    """Every process computes the tiles process 0 found missing (it alone reads the parts)."""
    import jax

    if jax.process_count() == 1:
        return todo
    from jax.experimental import multihost_utils

    mask = np.zeros(n_tiles, np.int32)
    mask[todo] = 1
    mask = multihost_utils.broadcast_one_to_all(mask)
    return [int(t) for t in np.flatnonzero(np.asarray(mask))]


def _fingerprint(info, axes, draws) -> str:
    h = hashlib.sha256(json.dumps(info, sort_keys=True).encode())
    for a in axes:
        h.update(a.name.encode() + a.values.tobytes())
    for k in sorted(draws):
        h.update(k.encode() + np.ascontiguousarray(draws[k], np.float64).tobytes())
    return h.hexdigest()


def _variables(plan, spec, below):
    """Name -> (dims in internal order, (leading dim, its labels) or None) of each output."""
    names = [a.name for a in plan.axes]
    stat = ("stat", list(spec["stats"]))
    out = {"loss": (("stat", *names), stat)}
    quantiles = [s for s in spec["stats"] if quantile_level(s) is not None]
    if quantiles:
        out["quantile_rank_error"] = (("level", *names), ("level", quantiles))
    if below:
        out["p_below"] = (("threshold", *names), ("threshold", list(below)))
    if spec["argmin"] is not None:
        rest = names[:-1]
        out[f"{spec['argmin']}_opt"] = (("stat", *rest), stat)
        out["loss_opt"] = (("stat", *rest), stat)
        out[f"{spec['argmin']}_opt_at_bound"] = (tuple(rest), None)
    return out


def _tile_arrays(plan, spec, result, i):
    """Tile ``i`` of a block's result as ``{variable: array}``, leading dim first."""
    parts, q = [], 0
    for s in spec["stats"]:
        if s in _MOMENT_STATS:
            parts.append(result[s][i])
        else:
            parts.append(result["quantiles"][i][q])
            q += 1
    arrays = {"loss": np.stack(parts)}
    axis = spec["argmin"]
    for key, name in (
        ("quantile_rank_error", "quantile_rank_error"),
        ("p_below", "p_below"),
        ("opt", f"{axis}_opt"),
        ("loss_opt", "loss_opt"),
        ("opt_at_bound", f"{axis}_opt_at_bound"),
    ):
        if key in result:
            arrays[name] = result[key][i]
    return arrays


def _cropped_tiles(plan, spec, result, tiles):
    """(variable, internal-order index, array without padding) for every tile of a block."""
    axis = spec["argmin"]
    reduced = {f"{axis}_opt", "loss_opt", f"{axis}_opt_at_bound"} if axis else set()
    for i, t in enumerate(tiles):
        for name, array in _tile_arrays(plan, spec, result, i).items():
            slices = plan.tile_slices(int(t))
            if name in reduced:
                slices = slices[:-1]  # the argmin axis is reduced away
            lead = (slice(None),) * (array.ndim - len(slices))
            crop = lead + tuple(slice(0, s.stop - s.start) for s in slices)
            yield name, lead + slices, array[crop]


class _Quality:
    """Largest rank error and points beyond the tolerance, per quantile, over real points."""

    def __init__(self, spec):
        self.names = [s for s in spec["stats"] if quantile_level(s) is not None]
        n = spec["n_draws"]
        self.tol = max(spec["quantile_tol"], 2 / max(n - 1, 1)) * (1 + 1e-6)
        self.error = np.zeros(len(self.names))
        self.beyond = np.zeros(len(self.names), np.int64)

    def add(self, name, array):
        if name == "quantile_rank_error":
            flat = array.reshape(len(self.names), -1)
            self.error = np.maximum(self.error, flat.max(axis=1))
            self.beyond += (flat > self.tol).sum(axis=1)

    def attrs(self):
        return {
            "quantile_max_rank_error": dict(zip(self.names, map(float, self.error), strict=True)),
            "quantile_points_beyond_tol": dict(zip(self.names, map(int, self.beyond), strict=True)),
        }


def _ordered(dims, user):
    """Output dims: the leading (non-axis) dim, then the axes in the user's order."""
    return [d for d in dims if d not in user] + [d for d in user if d in dims]


class _Results:
    """In-memory results (no ``out``)."""

    def __init__(self, plan, spec, below, dtype):
        self.plan, self.spec = plan, spec
        sizes = {a.name: len(a) for a in plan.axes}
        self.variables = _variables(plan, spec, below)
        self.quality = _Quality(spec)
        self.arrays = {}
        for name, (dims, lead) in self.variables.items():
            shape = tuple(len(lead[1]) if lead and d == lead[0] else sizes[d] for d in dims)
            self.arrays[name] = np.full(shape, np.nan, dtype)

    def fill(self, tiles, result):
        for name, index, array in _cropped_tiles(self.plan, self.spec, result, tiles):
            self.arrays[name][index] = array
            self.quality.add(name, array)

    def dataset(self, axes, info):
        import xarray as xr

        user = [a.name for a in axes]
        coords = {a.name: a.values for a in axes}
        data_vars = {}
        for name, (dims, lead) in self.variables.items():
            variable = xr.Variable(dims, self.arrays[name])
            data_vars[name] = variable.transpose(*_ordered(dims, user))
            if lead:
                coords[lead[0]] = lead[1]
        info = info | self.quality.attrs()
        return xr.Dataset(data_vars, coords=coords, attrs={"slaws": json.dumps(info)})


class _Store:
    """Parts of a run on disk (``OUT.parts/``), each written atomically, then one netCDF file."""

    def __init__(self, out, fingerprint, force):
        import jax

        self.out = os.fspath(out)
        self.parts = self.out + ".parts"
        self.writer = jax.process_index() == 0
        self.meta = {}
        if os.path.exists(self.out) and not force:
            raise FileExistsError(f"{self.out} exists; pass force=True (--force) to replace it")
        directory = os.path.dirname(os.path.abspath(self.out))
        if not os.path.isdir(directory):
            raise GridError(f"cannot write {self.out}: directory {directory} does not exist")
        manifest = os.path.join(self.parts, "run.json")
        if not self.writer:
            return
        if os.path.exists(manifest):
            with open(manifest) as f:
                found = json.load(f)
            if found.get("fingerprint") == fingerprint:
                self.meta = found
                return
            if not force:
                raise GridError(
                    f"{self.parts} holds parts of a different run; remove it or pass --force"
                )
        if os.path.exists(self.parts):
            shutil.rmtree(self.parts)
        os.makedirs(self.parts)
        self.meta = {"fingerprint": fingerprint}
        _atomic_json(manifest, self.meta)

    def _part_files(self):
        return sorted(
            f for f in os.listdir(self.parts) if f.startswith("part-") and f.endswith(".npz")
        )

    def remaining(self, n_tiles):
        if not self.writer:
            return list(range(n_tiles))
        done = np.zeros(n_tiles, bool)
        for f in self._part_files():
            with np.load(os.path.join(self.parts, f)) as z:
                done[z["tiles"]] = True
        return [int(t) for t in np.flatnonzero(~done)]

    def write(self, tiles, result):
        if not self.writer:
            return
        path = os.path.join(self.parts, f"part-{tiles[0]:09d}.npz")
        fd, tmp = tempfile.mkstemp(dir=self.parts, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, tiles=np.asarray(tiles), **result)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def finish(self, plan, axes, spec, below, dtype, info):
        import jax
        import xarray as xr

        if self.writer:
            self._assemble(plan, axes, spec, below, dtype, info)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("slaws.grid: file written")
        return xr.open_dataset(self.out, engine="h5netcdf")

    def _assemble(self, plan, axes, spec, below, dtype, info):
        import h5netcdf
        import h5py

        variables = _variables(plan, spec, below)
        user = [a.name for a in axes]
        tile = dict(zip([a.name for a in plan.axes], plan.tile, strict=True))
        quality = _Quality(spec)
        directory = os.path.dirname(os.path.abspath(self.out))
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".nc.tmp")
        os.close(fd)
        try:
            with h5netcdf.File(tmp, "w") as f:
                f.dimensions = {a.name: len(a) for a in axes}
                for a in axes:
                    f.create_variable(a.name, (a.name,), data=a.values)
                handles, perms = {}, {}
                for name, (dims, lead) in variables.items():
                    if lead and lead[0] not in f.dimensions:
                        f.dimensions[lead[0]] = len(lead[1])
                        labels = np.array(lead[1], object if lead[0] != "threshold" else float)
                        kind = h5py.string_dtype() if lead[0] != "threshold" else float
                        f.create_variable(lead[0], (lead[0],), dtype=kind, data=labels)
                    ordered = _ordered(dims, user)
                    perms[name] = [dims.index(d) for d in ordered]
                    chunks = tuple(
                        min(tile.get(d, f.dimensions[d].size), f.dimensions[d].size)
                        for d in ordered
                    )
                    handles[name] = f.create_variable(
                        name, tuple(ordered), dtype=dtype, chunks=chunks, fillvalue=np.nan
                    )
                for part in self._part_files():  # resumed parts included
                    with np.load(os.path.join(self.parts, part)) as z:
                        result = {k: z[k] for k in z.files if k != "tiles"}
                        for name, index, array in _cropped_tiles(plan, spec, result, z["tiles"]):
                            perm = perms[name]
                            handles[name][tuple(index[k] for k in perm)] = array.transpose(perm)
                            quality.add(name, array)
                f.attrs["slaws"] = json.dumps(info | quality.attrs())
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.out)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        shutil.rmtree(self.parts)


def _atomic_json(path, obj):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)
