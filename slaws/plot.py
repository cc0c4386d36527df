"""Publication-quality matplotlib figures of fits, posteriors, forecasts and allocations.

Every function is a pure function of data the library already produces (a data frame, a
:class:`~slaws.fitting.FitResult`, a posterior ``DataTree`` from :mod:`slaws.bayes`, frames from
:mod:`slaws.allocation`), draws into ``ax`` when given (else a new figure) and returns
``(fig, ax)``, or ``(fig, axes)`` for multi-panel plots:

- :func:`fit_vs_data`: observed losses and the fitted law, one curve per group (token budget,
  isoFLOP budget, ...), with credible and predictive bands for a posterior.
- :func:`extrapolation`: forecasts solid inside the fitted range and dashed beyond it, the region
  outside the fit shaded, held-out points open (after Busbridge et al. 2025, Figure 1).
- :func:`isoflop_curves`: loss against N along D = C / (3 F(N)) per budget, minima marked, with
  the 90% band of the minimum's location for draws.
- :func:`allocation_fan`: compute-optimal N and D (or N_T, D_T, D_S) against the budget, with the
  quantile bands of :func:`slaws.allocation.compute_optimal` / :func:`~slaws.allocation.distill`
  (or the ``*_opt`` variables of :func:`slaws.grid.evaluate`).
- :func:`distillation_scenarios`: student loss against compute per distillation scenario, against
  the supervised baseline.
- :func:`compute_split`: how a budget splits between student training, teacher inference and
  teacher pretraining.
- :func:`method_errors`, :func:`interval_coverage`: a fitting-method benchmark's relative errors
  and the coverage of its intervals (:func:`slaws.bench.run`).
- :func:`posterior_pairs`: a pair plot of posterior draws (arviz 1.x's ``plot_pair``).

Wherever a fit is expected, any of these works: a ``FitResult``, a posterior ``DataTree`` (or the
path of one saved by :func:`slaws.bayes.save`), a preset name, or a mapping of parameter values
(scalars, or arrays of draws) with ``law=``. Draws give a median line and a credible band; a
posterior tree adds the predictive band of a new run (noise included).

matplotlib is imported only when a plot is made (``pip install slaws[plot]``); this module never
selects a backend. Axis labels carry units: "parameters N", "training tokens D", "training
compute C (FLOPs)", "loss (nats/token)". Lines carry a ``gid`` naming their role (``fit``,
``observed``, ``minimum``, ...), which tests and SVG output can rely on.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "allocation_fan",
    "compute_split",
    "distillation_scenarios",
    "extrapolation",
    "fit_vs_data",
    "interval_coverage",
    "isoflop_curves",
    "method_errors",
    "posterior_pairs",
]

#: Axis labels with units, by column name.
LABELS = {
    "N": "parameters N",
    "D": "training tokens D",
    "C": "training compute C (FLOPs)",
    "compute": "training compute C (FLOPs)",
    "loss": "loss (nats/token)",
    "U": "unique tokens U",
    "N_T": "teacher parameters $N_T$",
    "D_T": "teacher tokens $D_T$",
    "L_T": "teacher loss $L_T$ (nats/token)",
    "N_S": "student parameters $N_S$",
    "student_params": "student parameters $N_S$",
    "D_S": "student tokens $D_S$",
    "student_loss": "student loss $L_S$ (nats/token)",
    "teacher_loss": "teacher loss $L_T$ (nats/token)",
    "tokens_per_param": "tokens per parameter D/N",
    "x": "x",
}
# Short names and units of group labels ("C = 3x10^19 FLOPs").
_SYMBOLS = {
    "N": ("N", "parameters"),
    "D": ("D", "tokens"),
    "C": ("C", "FLOPs"),
    "compute": ("C", "FLOPs"),
    "U": ("U", "tokens"),
    "N_T": ("$N_T$", "parameters"),
    "D_T": ("$D_T$", "tokens"),
    "L_T": ("$L_T$", "nats/token"),
    "student_params": ("$N_S$", "parameters"),
}
_FIGSIZE = (6.0, 4.2)
_LINEWIDTH = 1.8
_CREDIBLE_ALPHA, _PREDICTIVE_ALPHA = 0.3, 0.12
_CURVE_POINTS = 200
_PAD = 10**0.08  # curves run this factor beyond the data on a log axis
_SCENARIO_STYLE = {  # colour and legend label of each distillation scenario
    "supervised": ("black", "supervised"),
    "best-case": ("#1b9e77", "best case (teacher free)"),
    "teacher-inference": ("#d95f02", "teacher inference"),
    "teacher-pretraining": ("#7570b3", "teacher pretraining"),
    "teacher-pretraining-inference": ("#e7298a", "teacher pretraining + inference"),
}
_SPLIT = (  # compute_split's stack, bottom to top: column, label, colour
    ("frac_student", "student training", "#4c72b0"),
    ("frac_teacher_inference", "teacher inference", "#dd8452"),
    ("frac_teacher_pretraining", "teacher pretraining", "#55a868"),
)
_OPS = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}


# --- shared helpers -----------------------------------------------------------------------------


def _figure(ax, figsize=_FIGSIZE):
    """``(fig, ax)``: ``ax``'s figure, or a new figure with one axes."""
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return fig, ax


def _label(name: str) -> str:
    return LABELS.get(name, name)


def _sci(value: float) -> str:
    """``3e19`` as mathtext 3x10^19, ``1e20`` as 10^20; plain for moderate magnitudes."""
    value = float(value)
    if not math.isfinite(value) or value == 0:
        return f"{value:g}"
    exponent = math.floor(math.log10(abs(value)))
    mantissa = round(value / 10**exponent, 1)
    if abs(mantissa) >= 10:
        mantissa, exponent = mantissa / 10, exponent + 1
    if -2 <= exponent <= 3:
        return f"{value:.3g}"
    if mantissa == 1:
        return rf"$10^{{{exponent}}}$"
    return rf"${mantissa:g}\times10^{{{exponent}}}$"


def _group_label(by: str, value, approx: bool = False) -> str:
    symbol, unit = _SYMBOLS.get(by, (by, ""))
    if isinstance(value, int | float | np.floating | np.integer):
        text = _sci(value)
        return f"{symbol} {'≈' if approx else '='} {text} {unit}".rstrip()
    return f"{by} = {value}"


def _colors(n: int, ordered: bool = True):
    """``n`` colours: a sequential map for ordered groups (small to large), else a cycle."""
    import matplotlib

    if ordered:
        cmap = matplotlib.colormaps["viridis"]
        return [cmap(v) for v in np.linspace(0.0, 0.85, n)] if n > 1 else [cmap(0.3)]
    cycle = matplotlib.colormaps["tab10"]
    return [cycle(i % 10) for i in range(n)]


def _log_if_wide(ax, axis: str, values, ratio: float = 10.0) -> None:
    """Log scale on ``axis`` (``x`` or ``y``) when positive ``values`` span more than ``ratio``."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if len(values) and values.min() > 0 and values.max() / values.min() > ratio:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")


def _finish(ax, *, legend=True, title=None, **legend_kwargs) -> None:
    ax.grid(True, which="major", alpha=0.3, linewidth=0.6)
    if title:
        ax.set_title(title, fontsize="medium")
    if legend:
        handles, labels = ax.get_legend_handles_labels()
        if handles:
            options = {"fontsize": "small", "frameon": False} | legend_kwargs
            ax.legend(handles, labels, **options)


def _geomean(values) -> float:
    values = np.asarray(values, float)
    if np.all(values > 0):
        return float(np.exp(np.mean(np.log(values))))
    return float(np.mean(values))


def _round_sig(values, digits: int = 3):
    """Values rounded to ``digits`` significant figures (groups that differ by rounding merge)."""
    values = np.asarray(values, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = 10.0 ** (digits - 1 - np.floor(np.log10(np.abs(values))))
    scale = np.where(np.isfinite(scale), scale, 1.0)
    return np.round(values * scale) / scale


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    """A column of ``frame``; ``C`` is derived as 6 N D when absent."""
    if name in frame:
        return frame[name].to_numpy()
    if name == "C" and {"N", "D"} <= set(frame.columns):
        return 6.0 * frame["N"].to_numpy(float) * frame["D"].to_numpy(float)
    raise ValueError(f"the frame has no column {name!r} (columns: {', '.join(frame.columns)})")


# --- what a fit is ------------------------------------------------------------------------------


@dataclass
class _Model:
    """A law with point parameters, draws of them, or a posterior tree, behind one predict."""

    law: object
    kind: str  # "point", "draws" or "tree"
    draws: dict | None = None
    tree: object = None
    fit: object = None

    def inputs(self, columns) -> tuple[str, ...]:
        if self.kind == "tree":
            return tuple(json.loads(self.tree.attrs["slaws"])["input_ranges"])
        return self.law.used_inputs(columns)

    @property
    def input_ranges(self) -> dict | None:
        """Each input's fitted (min, max): a posterior's, or a point fit's; None otherwise."""
        if self.kind == "tree":
            return json.loads(self.tree.attrs["slaws"])["input_ranges"]
        if self.kind == "point":
            return self.fit.input_ranges or None
        return None

    @property
    def has_bands(self) -> bool:
        return self.kind == "tree" or (
            self.kind == "draws" and len(next(iter(self.draws.values()))) > 1
        )

    def predict(self, inputs: Mapping[str, np.ndarray], prob: float) -> dict:
        """``median`` and, where the source allows, ``lo``/``hi`` (the ``prob`` credible band of
        the law) and ``plo``/``phi`` (the predictive band of a new run)."""
        inputs = {k: np.asarray(v, float) for k, v in inputs.items()}
        none = {"lo": None, "hi": None, "plo": None, "phi": None}
        if self.kind == "tree":
            from slaws.bayes import forecast

            out = forecast(self.tree, pd.DataFrame(inputs), prob=prob)
            return {
                "median": out["median"].to_numpy(),
                "lo": out["credible_lo"].to_numpy(),
                "hi": out["credible_hi"].to_numpy(),
                "plo": out["predictive_lo"].to_numpy(),
                "phi": out["predictive_hi"].to_numpy(),
            }
        if self.kind == "point":
            return none | {"median": np.asarray(self.fit.predict(inputs), float)}
        loss = _draw_losses(self.law, self.draws, inputs)
        if len(loss) == 1:
            return none | {"median": loss[0]}
        tail = (1 - prob) / 2
        lo, median, hi = np.quantile(loss, [tail, 0.5, 1 - tail], axis=0)
        return none | {"median": median, "lo": lo, "hi": hi}


def _draw_losses(law, draws: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray]):
    """The law's loss for every draw (rows) at every input point (columns), in float64."""
    import jax
    import jax.numpy as jnp

    with jax.enable_x64(True):
        params = {k: jnp.asarray(np.asarray(v, float))[:, None] for k, v in draws.items()}
        x = {k: jnp.asarray(np.asarray(v, float))[None, :] for k, v in inputs.items()}
        return np.asarray(jnp.exp(law.log_loss(params, x)))


def _model(source, law=None) -> _Model:
    """Resolve a FitResult, DataTree (or its path), preset name or parameter mapping."""
    from slaws.allocation import parameter_draws
    from slaws.fitting import FitResult
    from slaws.law import get_law
    from slaws.presets import PRESETS, get_preset

    if isinstance(source, FitResult):
        return _Model(get_law(source.law), "point", fit=source)
    if isinstance(source, str | os.PathLike) and str(source) not in PRESETS:
        from slaws import bayes

        if not os.path.exists(source):
            raise ValueError(
                f"{str(source)!r} is neither a preset (known: {', '.join(sorted(PRESETS))}) "
                "nor a posterior file"
            )
        source = bayes.load(source)
    if "slaws" in getattr(source, "attrs", {}) and "posterior" in getattr(source, "children", {}):
        from slaws.bayes import _posterior_law

        return _Model(_posterior_law(json.loads(source.attrs["slaws"]), law), "tree", tree=source)
    if isinstance(source, str):
        law = get_law(law if law is not None else get_preset(source)["law"])
    elif law is None:
        raise ValueError("parameters given as a mapping need law= (a law or its name)")
    law = get_law(law)
    return _Model(law, "draws", draws=parameter_draws(source, law))


def _band_handles(model: _Model, prob: float, predictive: bool = True):
    """Legend proxies for the bands a model draws."""
    from matplotlib.patches import Patch

    level = f"{prob:.0%}"
    handles = []
    if model.has_bands:
        handles.append(Patch(color="0.4", alpha=_CREDIBLE_ALPHA, label=f"{level} credible (law)"))
    if model.kind == "tree" and predictive:
        handles.append(
            Patch(color="0.4", alpha=_PREDICTIVE_ALPHA, label=f"{level} predictive (new run)")
        )
    return handles


# --- groups -------------------------------------------------------------------------------------


@dataclass
class _Group:
    label: str | None
    mask: np.ndarray
    value: object = None  # the group's value of ``by`` (numeric groups), else None


def _auto_by(frame, x, inputs, max_groups):
    """The input other than ``x`` with few distinct values, else compute for an N-D design, else
    the one other input (binned), else nothing."""
    others = [k for k in inputs if k != x and k in frame]
    candidates = list(others)
    if x in ("N", "D") and {"N", "D"} <= set(frame.columns):
        candidates.append("C")
    for name in candidates:
        values = _column(frame, name)
        if np.issubdtype(values.dtype, np.number):
            if len(np.unique(_round_sig(values))) <= max_groups:
                return name
    if len(others) == 1:
        return others[0]
    return "C" if "C" in candidates else None


def _groups(frame, by, max_groups) -> list[_Group]:
    everything = np.ones(len(frame), bool)
    if by is None:
        return [_Group(None, everything)]
    values = _column(frame, by)
    if not np.issubdtype(values.dtype, np.number):
        return [_Group(_group_label(by, v), values == v) for v in pd.unique(values)]
    values = values.astype(float)
    rounded = _round_sig(values)
    distinct = np.unique(rounded[np.isfinite(rounded)])
    if len(distinct) <= max_groups:
        return [
            _Group(_group_label(by, _geomean(values[m])), m, _geomean(values[m]))
            for m in (rounded == v for v in distinct)
        ]
    positive = np.all(values > 0)
    lo, hi = np.nanmin(values), np.nanmax(values)
    edges = (
        np.geomspace(lo, hi, max_groups + 1) if positive else np.linspace(lo, hi, max_groups + 1)
    )
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, max_groups - 1)
    groups = []
    for i in range(max_groups):
        mask = index == i
        if mask.any():
            value = _geomean(values[mask])
            groups.append(_Group(_group_label(by, value, approx=True), mask, value))
    return groups


def _curve_inputs(frame, group, names, x, by, xs) -> dict:
    """Inputs along a curve of ``xs`` (under ``x``, and the law's ``names``): ``by`` at the group's
    value; on an isoFLOP group (``by`` C) D = C / (6N) along N or N = C / (6D) along D; along
    compute (``x`` C) the other of N and D likewise; every other input at the group's geometric
    mean."""
    rows = frame[group.mask]
    out = {x: xs}
    for name in names:
        if name == x:
            continue
        if name == by and group.value is not None:
            out[name] = np.full(len(xs), group.value)
        else:
            out[name] = np.full(len(xs), _geomean(rows[name]))
    if by == "C" and group.value is not None and x in ("N", "D"):
        other = "D" if x == "N" else "N"
        if other in names:
            out[other] = group.value / (6.0 * xs)
    elif x == "C" and {"N", "D"} <= set(names):
        held = by if by in ("N", "D") else "N"
        out["D" if held == "N" else "N"] = xs / (6.0 * out[held])
    return out


def _span(values, points=_CURVE_POINTS):
    """Curve points over the values' range and a little beyond (5% of the log range, at most a
    factor ``_PAD``)."""
    values = np.asarray(values, float)
    lo, hi = np.nanmin(values), np.nanmax(values)
    if lo > 0:
        margin = min(0.05 * math.log(hi / lo), math.log(_PAD)) if hi > lo else math.log(_PAD)
        return np.geomspace(lo * math.exp(-margin), hi * math.exp(margin), points)
    width = (hi - lo) * 0.05 or 1.0
    return np.linspace(lo - width, hi + width, points)


def _predict_curves(model, curves, names, prob):
    """One prediction for every curve (``[dict of inputs]``, the law's ``names`` used), split back
    per curve."""
    joined = {k: np.concatenate([c[k] for c in curves]) for k in names}
    out = model.predict(joined, prob)
    sizes = np.cumsum([len(c[names[0]]) for c in curves])[:-1]
    parts = {k: [None] * len(curves) if v is None else np.split(v, sizes) for k, v in out.items()}
    return [{k: v[i] for k, v in parts.items()} for i in range(len(curves))]


def _check_frame(frame, x, needed):
    derivable = x == "C" and {"N", "D"} <= set(frame.columns)
    missing = [k for k in (x, "loss") if k not in frame and not (k == "C" and derivable)]
    if missing:
        raise ValueError(f"the frame lacks column(s) {', '.join(missing)}")
    lacking = [k for k in needed if k not in frame]
    if lacking:
        raise ValueError(f"the law needs column(s) {', '.join(lacking)}, which the frame lacks")


# --- 1. fit against data ------------------------------------------------------------------------


def fit_vs_data(
    frame: pd.DataFrame,
    fit_or_tree,
    *,
    x: str = "N",
    by: str | None = "auto",
    prob: float = 0.9,
    law=None,
    max_groups: int = 8,
    ax=None,
):
    """Observed losses as points and the fitted law as lines against ``x``, one per group.

    ``fit_or_tree``: a ``FitResult`` (one line per group), a posterior ``DataTree`` (median line,
    ``prob`` credible band of the law and a lighter predictive band of a new run), a preset name,
    or a mapping of parameters (scalars, or arrays of draws: median and credible band) with
    ``law=``. ``x``: an input column, or ``"C"`` (training compute, 6ND when the frame has no C
    column). ``by`` groups the rows: a column name (``"C"`` again: its curves run along the
    isoFLOP line D = C / (6N)), ``"auto"`` (an input other than ``x`` with at most ``max_groups``
    distinct values, else compute for an N-D design) or None. A numeric ``by`` with more distinct
    values is binned into ``max_groups`` log-spaced bins. Along a curve, inputs other than ``x``
    and ``by`` are held at the group's geometric mean (so a design that varies them within a group
    is only approximated: choose ``by`` or filter the frame).

    >>> import matplotlib.pyplot as plt
    >>> from slaws import plot, synthetic
    >>> frame = synthetic.chinchilla_like(n_models=6, n_budgets=3)
    >>> fig, ax = plot.fit_vs_data(frame, "hoffmann2022", by="C")
    >>> len([line for line in ax.get_lines() if line.get_gid() == "fit"])
    3
    >>> ax.get_xscale(), ax.get_xlabel(), ax.get_ylabel()
    ('log', 'parameters N', 'loss (nats/token)')
    >>> plt.close(fig)
    """
    model = _model(fit_or_tree, law)
    needed = model.inputs(frame.columns)
    _check_frame(frame, x, needed)
    if by == "auto":
        by = _auto_by(frame, x, needed, max_groups)
    groups = _groups(frame, by, max_groups)
    colors = _colors(len(groups), ordered=by is not None and groups[0].value is not None)
    xv, loss = _column(frame, x).astype(float), frame["loss"].to_numpy(float)
    curves = [_curve_inputs(frame, g, needed, x, by, _span(xv[g.mask])) for g in groups]
    predictions = _predict_curves(model, curves, needed, prob)

    fig, ax = _figure(ax)
    for group, color, curve, pred in zip(groups, colors, curves, predictions, strict=True):
        xs = curve[x]
        if pred["plo"] is not None:
            band = ax.fill_between(
                xs, pred["plo"], pred["phi"], color=color, alpha=_PREDICTIVE_ALPHA, lw=0
            )
            band.set_gid("predictive")
        if pred["lo"] is not None:
            band = ax.fill_between(
                xs, pred["lo"], pred["hi"], color=color, alpha=_CREDIBLE_ALPHA, lw=0
            )
            band.set_gid("credible")
        ax.plot(xs, pred["median"], color=color, lw=_LINEWIDTH, label=group.label, gid="fit")
        points = ax.scatter(
            xv[group.mask],
            loss[group.mask],
            s=22,
            color=color,
            edgecolor="white",
            linewidth=0.5,
            zorder=3,
        )
        points.set_gid("observed")
    ax.set_xlabel(_label(x))
    ax.set_ylabel(_label("loss"))
    _log_if_wide(ax, "x", xv)
    _log_if_wide(ax, "y", loss)
    _legend_with_styles(ax, model, prob, fit_label="law (median)" if model.has_bands else "law")
    return fig, ax


def _legend_with_styles(
    ax, model, prob, *, fit_label="law", points="observed", predictive=True, extra=()
):
    """Group entries, then what the marks mean (points, law, bands)."""
    from matplotlib.lines import Line2D

    handles, labels = ax.get_legend_handles_labels()
    style = [
        Line2D([], [], ls="none", marker="o", color="0.4", markeredgecolor="white", label=points)
    ]
    style.append(Line2D([], [], color="0.4", lw=_LINEWIDTH, label=fit_label))
    style += list(extra) + _band_handles(model, prob, predictive)
    ax.legend(
        handles + style,
        labels + [h.get_label() for h in style],
        fontsize="small",
        frameon=False,
        loc="best",
    )
    ax.grid(True, which="major", alpha=0.3, linewidth=0.6)


# --- 2. extrapolation ---------------------------------------------------------------------------


def _validity(frame, valid):
    """(mask of rows inside the validity region, (column, op, threshold) or None)."""
    if valid is None:
        return None, None
    if callable(valid):
        return np.asarray(valid(frame), bool), None
    column, op, threshold = valid
    if op not in _OPS:
        raise ValueError(f"valid's operator must be one of {', '.join(_OPS)}, not {op!r}")
    return _OPS[op](_column(frame, column).astype(float), threshold), (column, op, threshold)


def _runs(inside):
    """Contiguous runs of equal values as (start, stop, value) slices. An outside run reaches one
    point into its neighbours, so the pieces join and an inside run ends exactly on its own
    points (the fitted range's ends, when they are curve points)."""
    edges = np.flatnonzero(np.diff(inside.astype(int))) + 1
    bounds = [0, *edges.tolist(), len(inside)]
    runs = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        value = bool(inside[lo])
        runs.append((lo, hi, value) if value else (max(lo - 1, 0), min(hi + 1, len(inside)), value))
    return runs


def extrapolation(
    frame: pd.DataFrame,
    fit_or_tree,
    *,
    x: str = "N",
    by: str | None = "auto",
    at=None,
    valid: tuple | Callable | None = None,
    fitted=None,
    prob: float = 0.9,
    law=None,
    max_groups: int = 8,
    ax=None,
):
    """Forecasts against observations, after Busbridge et al. 2025, Figure 1.

    Each group's forecast is solid where it interpolates (``x`` within the range of the fitted
    points and, for a ``valid`` condition on the loss, where the forecast meets it) and dashed
    where it extrapolates. Fitted points are filled, held-out points open. The region outside the
    fit is shaded: the complement of ``valid`` when it is ``(column, op, threshold)`` on the loss
    or on ``x`` (e.g. ``("loss", ">", 2.3)``: fitted on weak models), else the ``x`` beyond the
    fitted range.

    Which points were fitted: ``fitted`` (a boolean mask), else the rows meeting ``valid`` (a
    tuple or a callable ``frame -> mask``), else for a posterior tree or a ``FitResult`` the rows
    inside the input ranges it was fitted on, else all. ``at``: the ``x`` values of the forecasts
    (default: each group's span of ``x``). ``by``, ``prob``, ``law`` are as in
    :func:`fit_vs_data`; a posterior adds its credible band.

    >>> import matplotlib.pyplot as plt
    >>> from slaws import plot, synthetic
    >>> frame = synthetic.chinchilla_like(n_models=6, n_budgets=3)
    >>> fig, ax = plot.extrapolation(frame, "hoffmann2022", by="C", fitted=frame["N"] < 1e9)
    >>> sorted({line.get_linestyle() for line in ax.get_lines() if line.get_gid() == "fit"})
    ['-', '--']
    >>> plt.close(fig)
    """
    model = _model(fit_or_tree, law)
    needed = model.inputs(frame.columns)
    _check_frame(frame, x, needed)
    inside_valid, rule = _validity(frame, valid)
    xv, loss = _column(frame, x).astype(float), frame["loss"].to_numpy(float)
    if fitted is not None:
        fitted = np.asarray(fitted, bool)
    elif inside_valid is not None:
        fitted = inside_valid
    elif model.input_ranges:
        fitted = np.ones(len(frame), bool)
        for name, (lo, hi) in model.input_ranges.items():
            values = frame[name].to_numpy(float)
            fitted &= (values >= lo * (1 - 1e-9)) & (values <= hi * (1 + 1e-9))
    else:
        fitted = np.ones(len(frame), bool)
    if not fitted.any():
        raise ValueError("no fitted points: check fitted= or valid=")
    x_lo, x_hi = xv[fitted].min(), xv[fitted].max()
    if by == "auto":
        by = _auto_by(frame, x, needed, max_groups)
    groups = _groups(frame, by, max_groups)
    colors = _colors(len(groups), ordered=by is not None and groups[0].value is not None)
    curves = []
    for g in groups:
        xs = _span(xv[g.mask]) if at is None else np.asarray(at, float)
        # The fitted range's ends lie on the curve, so solid and dashed meet exactly there.
        xs = np.unique(np.concatenate([xs, [v for v in (x_lo, x_hi) if xs[0] < v < xs[-1]]]))
        curves.append(_curve_inputs(frame, g, needed, x, by, xs))
    predictions = _predict_curves(model, curves, needed, prob)

    fig, ax = _figure(ax)
    dashed = False
    for group, color, curve, pred in zip(groups, colors, curves, predictions, strict=True):
        xs, median = curve[x], pred["median"]
        inside = (xs >= x_lo * (1 - 1e-12)) & (xs <= x_hi * (1 + 1e-12))
        if rule is not None and rule[0] == "loss":
            inside &= _OPS[rule[1]](median, rule[2])
        if pred["lo"] is not None:
            band = ax.fill_between(
                xs, pred["lo"], pred["hi"], color=color, alpha=_CREDIBLE_ALPHA, lw=0
            )
            band.set_gid("credible")
        labelled = False
        dashed |= not inside.all()
        for lo, hi, solid in _runs(inside):
            label = group.label if solid and not labelled else None
            labelled |= label is not None
            ax.plot(
                xs[lo:hi],
                median[lo:hi],
                color=color,
                lw=_LINEWIDTH,
                ls="-" if solid else "--",
                label=label,
                gid="fit",
            )
        if not labelled:  # a group with no interpolating stretch still gets a legend entry
            ax.plot([], [], color=color, lw=_LINEWIDTH, label=group.label)
        in_group = group.mask
        points = ax.scatter(
            xv[in_group & fitted],
            loss[in_group & fitted],
            s=24,
            color=color,
            edgecolor="white",
            linewidth=0.5,
            zorder=3,
        )
        points.set_gid("fitted")
        held = in_group & ~fitted
        if held.any():
            points = ax.scatter(
                xv[held],
                loss[held],
                s=28,
                facecolor="none",
                edgecolor=color,
                linewidth=1.2,
                zorder=3,
            )
            points.set_gid("held_out")
    ax.set_xlabel(_label(x))
    ax.set_ylabel(_label("loss"))
    _log_if_wide(ax, "x", np.concatenate([xv, *(c[x] for c in curves)]))
    _log_if_wide(ax, "y", loss)
    region = _shade_outside(ax, rule, x, x_lo, x_hi)
    _legend_with_styles(
        ax,
        model,
        prob,
        fit_label="forecast",
        points="fitted",
        predictive=False,
        extra=_extrapolation_handles(region, dashed=dashed, held=bool((~fitted).any())),
    )
    return fig, ax


def _shade_outside(ax, rule, x, x_lo, x_hi) -> str:
    """Shade the region outside the fit without moving the limits; return its legend label."""
    xlim, ylim = ax.get_xlim(), ax.get_ylim()
    style = {"color": "0.85", "alpha": 0.5, "lw": 0, "zorder": 0, "gid": "outside"}
    if rule is not None and rule[0] in ("loss", x):
        column, op, threshold = rule
        below = op in (">", ">=")  # the fit kept values above: shade below the threshold
        span = ax.axhspan if column == "loss" else ax.axvspan
        lim = ylim if column == "loss" else xlim
        if below:
            span(min(lim[0], threshold), threshold, **style)
        else:
            span(threshold, max(lim[1], threshold), **style)
        complement = {">": "≤", ">=": "<", "<": "≥", "<=": ">"}[op]
        value = f"{threshold:g}" if column == "loss" else _sci(threshold)
        label = f"outside the fit ({column} {complement} {value})"
    else:
        if xlim[0] < x_lo:
            ax.axvspan(xlim[0], x_lo, **style)
        if xlim[1] > x_hi:
            ax.axvspan(x_hi, xlim[1], **style)
        label = f"beyond the fitted {x}"
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)
    return label


def _extrapolation_handles(region, *, dashed=True, held=True):
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [
        Line2D([], [], color="0.4", lw=_LINEWIDTH, ls="--", label="extrapolation"),
        Line2D(
            [],
            [],
            ls="none",
            marker="o",
            markerfacecolor="none",
            markeredgecolor="0.4",
            label="held out",
        ),
        Patch(color="0.85", alpha=0.5, label=region),
    ]
    keep = (dashed, held, True)
    return [handle for handle, kept in zip(handles, keep, strict=True) if kept]


# --- 3. isoFLOP curves --------------------------------------------------------------------------


def _argmin_log(u, values):
    """Per row of ``values`` (over grid ``u``, in log x): the minimiser, refined by the parabola
    through the lowest point and its neighbours, and whether it lies at the grid's edge."""
    k = np.nanargmin(np.where(np.isfinite(values), values, np.inf), axis=-1)
    edge = (k == 0) | (k == len(u) - 1)
    kc = np.clip(k, 1, len(u) - 2)
    rows = np.arange(values.shape[0])
    f0, f1, f2 = values[rows, kc - 1], values[rows, kc], values[rows, kc + 1]
    h = u[1] - u[0]
    denom = f0 - 2 * f1 + f2
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(denom > 0, 0.5 * h * (f0 - f2) / denom, 0.0)
    best = np.where(edge, u[k], u[kc] + np.clip(shift, -h, h))
    return best, edge


def isoflop_curves(
    law,
    params,
    budgets: Sequence[float],
    *,
    n_range: tuple[float, float] | None = None,
    flops="6ND",
    inputs: Mapping[str, float] | None = None,
    prob: float = 0.9,
    points: int = 256,
    ax=None,
):
    """Loss against model size N along D = C / (3 F(N)) for each compute budget C, minima marked.

    ``params``: anything :func:`slaws.allocation.parameter_draws` reads (a mapping of values or
    draws, a preset name, a posterior tree or its path) or a ``FitResult``; ``law`` may be None
    when ``params`` names it. ``flops``: a FLOP model of :mod:`slaws.flops` (``6ND``: D = C / 6N).
    ``inputs``: fixed extra inputs of the law (``U``, the unique tokens of ``data_constrained``).
    ``n_range``: (smallest, largest) N (default: 1 to 1000 tokens per parameter at the budgets).
    With one parameter set each minimum is the law's on a ``points`` grid refined by a parabola in
    log N; with draws the line is the median loss, the band its ``prob`` credible band, the marker
    sits at the median of the per-draw minimisers and its bar spans their ``prob`` interval.

    >>> import matplotlib.pyplot as plt
    >>> from slaws import plot
    >>> fig, ax = plot.isoflop_curves("chinchilla", "hoffmann2022", [1e20, 1e22])
    >>> [f"{n:.3g}" for n in ax.get_lines()[-1].get_xdata()]  # the minima, in N
    ['6.45e+08', '5.16e+09']
    >>> plt.close(fig)
    """
    import jax
    import jax.numpy as jnp

    from slaws.allocation import parameter_draws
    from slaws.fitting import FitResult
    from slaws.flops import get_flops
    from slaws.law import get_law

    if isinstance(params, FitResult):
        law, params = params.law if law is None else law, dict(params.params)
    if law is None:
        law = _model(params).law
    law = get_law(law)
    draws = parameter_draws(params, law)
    budgets = np.sort(np.atleast_1d(np.asarray(budgets, float)))
    log_forward = get_flops(flops)
    if n_range is None:
        n_range = (math.sqrt(budgets.min() / 6e3), math.sqrt(budgets.max() / 6.0))
    u = np.linspace(math.log(n_range[0]), math.log(n_range[1]), points)
    with jax.enable_x64(True):
        log_d = np.log(budgets)[:, None] - math.log(3.0) - np.asarray(log_forward(jnp.asarray(u)))
        n = np.broadcast_to(np.exp(u), log_d.shape).ravel()
        extra = {k: np.full(n.shape, float(v)) for k, v in (inputs or {}).items()}
        loss = _draw_losses(law, draws, {"N": n, "D": np.exp(log_d).ravel()} | extra)
        loss = loss.reshape(len(loss), len(budgets), points)  # draws, budgets, points
        best, edge = _argmin_log(u, np.log(loss.reshape(-1, points)))
        best = best.reshape(len(loss), len(budgets))
        n_opt = np.exp(best)
        d_opt = np.exp(np.log(budgets) - math.log(3.0) - np.asarray(log_forward(jnp.asarray(best))))
        params = {k: jnp.asarray(np.repeat(v, len(budgets))) for k, v in draws.items()}
        at = {"N": jnp.asarray(n_opt.ravel()), "D": jnp.asarray(d_opt.ravel())} | {
            k: jnp.full(n_opt.size, float(v)) for k, v in (inputs or {}).items()
        }
        loss_opt = np.exp(np.asarray(law.log_loss(params, at))).reshape(n_opt.shape)
    several = len(loss) > 1
    tail = (1 - prob) / 2

    fig, ax = _figure(ax)
    colors = _colors(len(budgets))
    nx = np.exp(u)
    for i, (c, color) in enumerate(zip(budgets, colors, strict=True)):
        curve = np.median(loss[:, i], 0)
        if several:
            lo, hi = np.quantile(loss[:, i], [tail, 1 - tail], axis=0)
            ax.fill_between(nx, lo, hi, color=color, alpha=_CREDIBLE_ALPHA, lw=0, gid="credible")
        ax.plot(nx, curve, color=color, lw=_LINEWIDTH, label=_group_label("C", c), gid="fit")
    n_mid = np.median(n_opt, 0)
    l_mid = np.median(loss_opt, 0)
    if several:
        n_lo, n_hi = np.quantile(n_opt, [tail, 1 - tail], axis=0)
        bars = ax.errorbar(
            n_mid,
            l_mid,
            xerr=[n_mid - n_lo, n_hi - n_mid],
            fmt="none",
            ecolor="0.15",
            elinewidth=1.2,
            capsize=3,
            zorder=4,
        )
        for artist in bars.get_children():
            artist.set_gid("minimum_interval")
    label = "compute-optimal N" + (f" (median, {prob:.0%} interval)" if several else "")
    ax.plot(
        n_mid,
        l_mid,
        ls=":",
        color="0.3",
        lw=1.0,
        marker="*",
        markersize=11,
        markerfacecolor="white",
        markeredgecolor="0.1",
        zorder=5,
        label=label,
        gid="minimum",
    )
    if edge.any():
        ax.annotate(
            "some minima at the edge of n_range: widen it",
            (0.02, 0.02),
            xycoords="axes fraction",
            fontsize="small",
            color="tab:red",
        )
    ax.set_xscale("log")
    ax.set_xlabel(_label("N"))
    ax.set_ylabel(_label("loss"))
    _finish(ax, title=f"isoFLOP profiles ({law.name}, {_flops_name(flops)})")
    return fig, ax


def _flops_name(flops) -> str:
    if isinstance(flops, str):
        return "C = 6ND" if flops == "6ND" else f"{flops} FLOPs"
    return getattr(flops, "__name__", "custom FLOPs")


# --- 4. allocation fan --------------------------------------------------------------------------

_ALIASES = {"N_opt": "N", "D_opt": "D"}


def _quantile_columns(frame, name):
    """The lowest and highest ``name_qNN`` columns present, and the band's label."""
    found = sorted(
        (int(c[len(name) + 2 :]), c)
        for c in frame.columns
        if c.startswith(f"{name}_q") and c[len(name) + 2 :].isdigit()
    )
    if len(found) < 2:
        return None
    (lo, lo_col), (hi, hi_col) = found[0], found[-1]
    return lo_col, hi_col, f"{lo}–{hi}%"


def _grid_frame(ds) -> pd.DataFrame:
    """``slaws.grid.evaluate``'s ``*_opt`` variables over C as an allocation frame (``N``,
    ``N_q05``, ...; the median, else the mean, as the value)."""
    if "C" not in ds.dims:
        raise ValueError("a grid dataset needs a C axis (an isoFLOP grid with argmin)")
    stats = [str(s) for s in ds["stat"].values]
    frame = pd.DataFrame({"compute": ds["C"].values})
    for var in ds.data_vars:
        if not str(var).endswith("_opt") or set(ds[var].dims) != {"stat", "C"}:
            continue
        name = str(var)[: -len("_opt")]
        middle = "q50" if "q50" in stats else "mean"
        frame[name] = ds[var].sel(stat=middle).values
        for s in stats:
            if s.startswith("q") and s != "q50":
                frame[f"{name}_{s}"] = ds[var].sel(stat=s).values
    return frame


def _select(frame, column, value, what):
    """Rows with ``column == value``; ``value`` None is allowed when there is one choice."""
    if column not in frame:
        return frame
    choices = list(pd.unique(frame[column]))
    if value is None:
        if len(choices) > 1:
            listed = ", ".join(_fmt_choice(c) for c in choices)
            raise ValueError(f"the frame holds several {what}s ({listed}): choose one")
        return frame
    if value not in choices:
        listed = ", ".join(_fmt_choice(c) for c in choices)
        raise ValueError(f"no {what} {_fmt_choice(value)} in the frame ({listed})")
    return frame[frame[column] == value]


def _fmt_choice(value):
    return f"{value:g}" if isinstance(value, int | float | np.floating) else repr(value)


def allocation_fan(
    result,
    *,
    quantities: Sequence[str] | None = None,
    scenario: str | None = None,
    student: float | None = None,
    ax=None,
):
    """Compute-optimal quantities against the budget, each a median line with its quantile band.

    ``result``: a frame of :func:`slaws.allocation.compute_optimal` (default quantities ``N`` and
    ``D``) or of :func:`slaws.allocation.distill` (default ``N_T``, ``D_T``, ``D_S``, for one
    ``scenario`` and ``student`` size, which may be omitted when the frame holds one), or the
    dataset of :func:`slaws.grid.evaluate` with ``argmin`` on a ``C`` axis (its ``N_opt``).
    ``N_opt``/``D_opt`` are accepted for ``N``/``D``. Bands span the lowest and highest ``_qNN``
    columns (5-95% from posterior draws), absent for point parameters.

    >>> import numpy as np, pandas as pd
    >>> import matplotlib.pyplot as plt
    >>> from slaws import plot
    >>> c = np.geomspace(1e20, 1e24, 5)
    >>> frame = pd.DataFrame({"compute": c, "N": 0.09 * c**0.5, "N_q05": 0.07 * c**0.5,
    ...                       "N_q95": 0.12 * c**0.5, "D": 1.9 * c**0.5})
    >>> fig, ax = plot.allocation_fan(frame)
    >>> [line.get_label() for line in ax.get_lines()]
    ['parameters N', 'training tokens D']
    >>> len(ax.collections)  # N's 5-95% band; D has no quantiles
    1
    >>> plt.close(fig)
    """
    frame = result if isinstance(result, pd.DataFrame) else _grid_frame(result)
    is_distill = "scenario" in frame
    if is_distill:
        costed = frame[frame["scenario"] != "supervised"]
        frame = _select(costed, "scenario", scenario, "scenario")
        frame = _select(frame, "student_params", student, "student size")
        default = ("N_T", "D_T", "D_S")
    else:
        default = ("N", "D")
    if quantities is None:
        quantities = [q for q in default if q in frame] or default
    names = [_ALIASES.get(q, q) for q in quantities]
    missing = [q for q in names if q not in frame]
    if missing:
        raise ValueError(f"the frame has no column {missing[0]!r} (columns: {list(frame.columns)})")
    frame = frame.sort_values("compute")
    c = frame["compute"].to_numpy(float)
    fig, ax = _figure(ax)
    palette = _colors(max(len(names), 3), ordered=False)
    values = []
    for name, color in zip(names, palette, strict=False):
        y = frame[name].to_numpy(float)
        values.append(y)
        band = _quantile_columns(frame, name)
        if band is not None:
            lo, hi = frame[band[0]].to_numpy(float), frame[band[1]].to_numpy(float)
            values += [lo, hi]
            ax.fill_between(c, lo, hi, color=color, alpha=_CREDIBLE_ALPHA, lw=0, gid="band")
        ax.plot(c, y, color=color, lw=_LINEWIDTH, marker="o", ms=3.5, label=_label(name), gid=name)
    ax.set_xscale("log")
    _log_if_wide(ax, "y", np.concatenate(values), ratio=3.0)
    ax.set_xlabel(_label("compute"))
    ax.set_ylabel(_label(names[0]) if len(names) == 1 else "compute-optimal allocation")
    title = None
    if is_distill:
        n_s = frame["student_params"].iloc[0]
        name = _SCENARIO_STYLE.get(frame["scenario"].iloc[0], (None, frame["scenario"].iloc[0]))
        title = f"distillation, {name[1]}: student $N_S$ = {_sci(n_s)}"
    bands = [_quantile_columns(frame, n) for n in names]
    band_label = next((b[2] for b in bands if b is not None), None)
    if band_label:
        from matplotlib.patches import Patch

        ax.add_artist(
            ax.legend(
                handles=[Patch(color="0.4", alpha=_CREDIBLE_ALPHA, label=f"{band_label} of draws")],
                loc="lower right",
                fontsize="small",
                frameon=False,
            )
        )
    _finish(ax, title=title, loc="upper left")
    return fig, ax


# --- 5. distillation scenarios ------------------------------------------------------------------


def distillation_scenarios(frame: pd.DataFrame, *, student: float | None = None, ax=None):
    """Student loss against compute in each distillation scenario, against supervised training.

    ``frame``: :func:`slaws.allocation.distill`'s output for one or more budgets (``student``
    picks a size when it holds several). The supervised baseline (the same student trained on
    C / 3F(N_S) tokens) is black and dashed; each scenario has its colour and, with draws, its
    5-95% band. Infeasible budgets (no allocation in bounds) are gaps.

    >>> import pandas as pd
    >>> import matplotlib.pyplot as plt
    >>> from slaws import plot
    >>> frame = pd.DataFrame({
    ...     "scenario": ["supervised", "teacher-inference"] * 2,
    ...     "student_params": 1e9, "compute": [1e21, 1e21, 1e22, 1e22],
    ...     "student_loss": [2.60, 2.55, 2.41, 2.40]})
    >>> fig, ax = plot.distillation_scenarios(frame)
    >>> [(line.get_label(), line.get_linestyle()) for line in ax.get_lines()]
    [('supervised', '--'), ('teacher inference', '-')]
    >>> plt.close(fig)
    """
    frame = _select(frame, "student_params", student, "student size")
    fig, ax = _figure(ax)
    scenarios = list(pd.unique(frame["scenario"]))
    order = [s for s in _SCENARIO_STYLE if s in scenarios] + [
        s for s in scenarios if s not in _SCENARIO_STYLE
    ]
    extra_colors = iter(_colors(len(order), ordered=False))
    for name in order:
        rows = frame[frame["scenario"] == name].sort_values("compute")
        color, label = _SCENARIO_STYLE.get(name, (next(extra_colors), name))
        c = rows["compute"].to_numpy(float)
        band = _quantile_columns(rows, "student_loss")
        if band is not None:
            lo, hi = rows[band[0]].to_numpy(float), rows[band[1]].to_numpy(float)
            ax.fill_between(c, lo, hi, color=color, alpha=0.18, lw=0, gid="band")
        supervised = name == "supervised"
        ax.plot(
            c,
            rows["student_loss"].to_numpy(float),
            color=color,
            lw=_LINEWIDTH,
            ls="--" if supervised else "-",
            marker="o",
            ms=3.5,
            label=label,
            gid=name,
        )
    ax.set_xscale("log")
    ax.set_xlabel(_label("compute"))
    ax.set_ylabel(_label("student_loss"))
    n_s = frame["student_params"].iloc[0] if "student_params" in frame else None
    title = None if n_s is None else f"student $N_S$ = {_sci(n_s)} parameters"
    _finish(ax, title=title)
    return fig, ax


# --- 6. compute split ---------------------------------------------------------------------------


def compute_split(
    frame: pd.DataFrame,
    *,
    scenario: str | None = None,
    student: float | None = None,
    flops="busbridge",
    ax=None,
):
    """Stacked shares of each budget spent on student training, teacher inference and teacher
    pretraining (Busbridge Eq. 9), against the budget.

    ``frame``: :func:`slaws.allocation.distill`'s output; ``scenario`` and ``student`` pick one
    curve (default: ``teacher-pretraining-inference`` when present, where all three terms occur).
    The shares are its ``frac_*`` columns (medians over draws, renormalised to sum to one); a frame
    without them but with ``N_T``, ``D_T``, ``D_S`` has them computed by ``flops``.

    >>> import pandas as pd
    >>> import matplotlib.pyplot as plt
    >>> from slaws import plot
    >>> frame = pd.DataFrame({
    ...     "scenario": "teacher-pretraining-inference", "student_params": 1e9,
    ...     "compute": [1e21, 1e22, 1e23], "frac_student": [0.5, 0.4, 0.3],
    ...     "frac_teacher_inference": [0.1, 0.2, 0.2], "frac_teacher_pretraining": [0.4, 0.4, 0.5]})
    >>> fig, ax = plot.compute_split(frame)
    >>> len(ax.collections), [float(v) for v in ax.get_ylim()]
    (3, [0.0, 1.0])
    >>> plt.close(fig)
    """
    if scenario is None and "scenario" in frame:
        costed = [s for s in pd.unique(frame["scenario"]) if s != "supervised"]
        scenario = (
            "teacher-pretraining-inference" if "teacher-pretraining-inference" in costed else None
        )
        if scenario is None and len(costed) == 1:
            scenario = costed[0]
    frame = _select(frame, "scenario", scenario, "scenario")
    frame = _select(frame, "student_params", student, "student size").sort_values("compute")
    shares = _shares(frame, flops)
    total = shares.sum(0)
    shares = shares / np.where(total > 0, total, 1.0)
    c = frame["compute"].to_numpy(float)
    fig, ax = _figure(ax)
    labels = [label for _, label, _ in _SPLIT]
    colors = [color for _, _, color in _SPLIT]
    areas = ax.stackplot(c, shares, labels=labels, colors=colors, alpha=0.85, lw=0)
    for area, (column, _, _) in zip(areas, _SPLIT, strict=True):
        area.set_gid(column)
    ax.set_xscale("log")
    ax.set_xlim(c.min(), c.max())
    ax.set_ylim(0.0, 1.0)
    ax.yaxis.set_major_formatter(_percent_formatter())
    ax.set_xlabel(_label("compute"))
    ax.set_ylabel("share of compute")
    title = None
    if "scenario" in frame:
        name = frame["scenario"].iloc[0]
        title = _SCENARIO_STYLE.get(name, (None, name))[1]
        if "student_params" in frame:
            title += f", student $N_S$ = {_sci(frame['student_params'].iloc[0])}"
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], labels[::-1], fontsize="small", frameon=True, loc="upper left")
    if title:
        ax.set_title(title, fontsize="medium")
    return fig, ax


def method_errors(results: pd.DataFrame, *, axes=None):
    """Relative error of each method on held-out runs, one panel per task: a box over the task's
    cases per method, best median on top, log axis (:func:`slaws.bench.run`'s output).

    ``axes``: a sequence of one axes per task (default: a new figure). Returns ``(fig, axes)``.

    >>> import pandas as pd
    >>> import matplotlib.pyplot as plt
    >>> from slaws import plot
    >>> results = pd.DataFrame({
    ...     "task": ["a", "a", "a", "a", "b"], "method": ["m1", "m1", "m2", "m2", "m1"],
    ...     "rel_error": [0.01, 0.02, 0.05, 0.04, 0.003]})
    >>> fig, axes = plot.method_errors(results)
    >>> [ax.get_title() for ax in axes]
    ['a', 'b']
    >>> [t.get_text() for t in axes[0].get_yticklabels()][::-1]  # top to bottom: best first
    ['m1', 'm2']
    >>> plt.close(fig)
    """
    import matplotlib.pyplot as plt

    scored = results[results.get("rel_error", pd.Series(np.nan, results.index)).notna()]
    tasks = list(dict.fromkeys(scored["task"]))
    if not tasks:
        raise ValueError("no method has a relative error to plot (every row skipped or failed)")
    if axes is None:
        size = (7.5, 0.6 + 2.2 * len(tasks))
        fig, grid = plt.subplots(len(tasks), 1, figsize=size, squeeze=False, layout="constrained")
        axes = list(grid[:, 0])
    else:
        axes = list(axes)
        if len(axes) != len(tasks):
            raise ValueError(f"{len(tasks)} task(s) to plot, {len(axes)} axes given")
        fig = axes[0].figure
    for ax, task in zip(axes, tasks, strict=True):
        group = scored[scored["task"] == task]
        order = list(group.groupby("method")["rel_error"].median().sort_values().index)[::-1]
        boxes = ax.boxplot(
            [100 * group.loc[group["method"] == m, "rel_error"] for m in order],
            orientation="horizontal",
            widths=0.6,
            patch_artist=True,
            medianprops={"color": "k"},
        )
        for patch, method in zip(boxes["boxes"], order, strict=True):
            patch.set(facecolor="#4c72b0" if method.startswith("slaws") else "0.8", gid=method)
        ax.set_yticks(range(1, len(order) + 1), order, fontsize="small")
        ax.set_xscale("log")
        ax.set_xlabel("relative error on held-out runs (%)")
        _finish(ax, legend=False, title=task)
    return fig, axes


def interval_coverage(results: pd.DataFrame, *, nominal: float = 0.9, ax=None):
    """Share of held-out losses inside each method's ``nominal`` interval, per task, against the
    nominal level (:func:`slaws.bench.run`'s ``coverage90``).

    >>> import pandas as pd
    >>> import matplotlib.pyplot as plt
    >>> from slaws import plot
    >>> results = pd.DataFrame({"task": ["a", "a", "b"], "method": ["nuts", "svi", "nuts"],
    ...                         "coverage90": [0.9, 0.6, 1.0]})
    >>> fig, ax = plot.interval_coverage(results)
    >>> len(ax.patches), [line.get_gid() for line in ax.lines]
    (4, ['nominal'])
    >>> plt.close(fig)
    """
    covered = results[results.get("coverage90", pd.Series(np.nan, results.index)).notna()]
    if covered.empty:
        raise ValueError("no method has intervals to score (coverage90 is empty)")
    summary = covered.groupby(["method", "task"])["coverage90"].mean().unstack()
    fig, ax = _figure(ax, figsize=(6.5, 3.2))
    width = 0.8 / len(summary.columns)
    x = np.arange(len(summary.index))
    for i, (task, colour) in enumerate(
        zip(summary.columns, _colors(len(summary.columns), ordered=False), strict=True)
    ):
        values = summary[task].to_numpy(float)
        ax.bar(
            x + (i - (len(summary.columns) - 1) / 2) * width,
            np.nan_to_num(values),
            width,
            label=task,
            color=colour,
            gid=task,
        )
    label = f"nominal {nominal:.0%}"
    ax.axhline(nominal, color="k", linestyle="--", linewidth=1, label=label, gid="nominal")
    ax.set_xticks(x, summary.index, fontsize="small")
    ax.set_ylim(0.0, 1.05)
    ax.yaxis.set_major_formatter(_percent_formatter())
    ax.set_ylabel("held-out losses inside the interval")
    _finish(ax, fontsize="x-small")
    return fig, ax


def _percent_formatter():
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(xmax=1.0)


def _shares(frame, flops) -> np.ndarray:
    """(3, rows) shares of compute: the ``frac_*`` columns, else from the allocation by Eq. 9."""
    if all(column in frame for column, _, _ in _SPLIT):
        shares = np.stack([frame[column].to_numpy(float) for column, _, _ in _SPLIT])
        return np.nan_to_num(shares)
    needed = ("student_params", "compute", "D_S", "N_T", "D_T", "scenario")
    missing = [k for k in needed if k not in frame]
    if missing:
        raise ValueError(f"the frame has neither frac_* columns nor {', '.join(missing)}")
    from slaws.allocation import SCENARIOS
    from slaws.flops import forward

    deltas = np.array([SCENARIOS.get(s, (0.0, 0.0)) for s in frame["scenario"]])
    f_s = np.asarray(forward(flops, frame["student_params"].to_numpy(float)))
    f_t = np.asarray(forward(flops, frame["N_T"].to_numpy(float)))
    d_s, d_t = frame["D_S"].to_numpy(float), frame["D_T"].to_numpy(float)
    return np.nan_to_num(
        np.stack([3 * f_s * d_s, deltas[:, 0] * f_t * d_s, deltas[:, 1] * 3 * f_t * d_t])
    )


# --- 7. posterior pairs -------------------------------------------------------------------------


def posterior_pairs(tree, var_names: Sequence[str] | None = None, *, log_scale: bool = True):
    """Pair plot of the posterior draws: marginals on the diagonal, pairs below it.

    Drawn by arviz 1.x's ``plot_pair`` (from ``arviz_plots``, installed with arviz 1.x) with the
    matplotlib backend; if ``arviz_plots`` cannot be imported, by a compact matplotlib corner plot
    (histograms and scatter) of the same draws. ``var_names``: the variables (default: all of the
    posterior group). ``log_scale``: plot log10 of positive variables whose draws span more than
    a factor of 10 (``A`` and ``B`` of a Chinchilla law often do), named ``log10(A)``. Returns
    ``(fig, axes)``, ``axes`` a 2-D array (the upper triangle's axes hidden).

    >>> import numpy as np
    >>> import arviz as az
    >>> import matplotlib.pyplot as plt
    >>> from slaws import plot
    >>> rng = np.random.default_rng(0)
    >>> tree = az.from_dict({"posterior": {"alpha": rng.normal(0.34, 0.01, (1, 100)),
    ...                                    "beta": rng.normal(0.28, 0.01, (1, 100))}})
    >>> fig, axes = plot.posterior_pairs(tree)
    >>> axes.shape
    (2, 2)
    >>> plt.close(fig)
    """
    posterior = tree["posterior"].to_dataset()
    names = list(var_names) if var_names is not None else [str(v) for v in posterior.data_vars]
    unknown = [n for n in names if n not in posterior]
    if unknown:
        raise ValueError(
            f"no variable {unknown[0]!r} in the posterior ({list(posterior.data_vars)})"
        )
    values = {}
    for name in names:
        v = np.asarray(posterior[name].values, float)
        v = v.reshape(1, -1) if v.ndim < 2 else v.reshape(v.shape[0], -1)
        if log_scale and np.all(v > 0) and v.max() > 10 * v.min():
            values[f"log10({name})"] = np.log10(v)
        else:
            values[name] = v
    size = 1.9 * len(values) + 0.6
    try:
        import arviz_plots as azp
        from arviz_base import from_dict
    except ImportError:
        return _corner(values, size)
    small = from_dict({"posterior": values})
    pc = azp.plot_pair(
        small,
        backend="matplotlib",
        marginal=True,
        marginal_kind="kde",
        triangle="lower",
        visuals={"scatter": {"alpha": 0.35, "width": 0}},
        figure_kwargs={"figsize": (size, size), "layout": "constrained"},
    )
    fig = pc.viz["figure"].item()
    axes = np.asarray(pc.viz["plot"].values)
    return fig, axes


def _corner(values: dict, size: float):
    """A corner plot of ``{name: (chain, draw) array}``: histograms and pairwise scatter."""
    import matplotlib.pyplot as plt

    names = list(values)
    k = len(names)
    fig, axes = plt.subplots(k, k, figsize=(size, size), layout="constrained", squeeze=False)
    flat = {n: np.ravel(v) for n, v in values.items()}
    for i, yi in enumerate(names):
        for j, xj in enumerate(names):
            a = axes[i, j]
            if j > i:
                a.set_visible(False)
                continue
            if i == j:
                a.hist(flat[xj], bins=30, color="#4c72b0", alpha=0.8)
                a.set_yticks([])
            else:
                a.scatter(flat[xj], flat[yi], s=4, alpha=0.35, color="#4c72b0", lw=0)
            if i == k - 1:
                a.set_xlabel(xj)
            else:
                a.tick_params(labelbottom=False)
            if j == 0 and i > 0:
                a.set_ylabel(yi)
            elif j > 0:
                a.tick_params(labelleft=False)
    return fig, axes
