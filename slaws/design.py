"""Choosing the next training run by expected information per FLOP.

Given posterior draws theta_j of a law's parameters and a menu of candidate runs x_c with costs,
a run is worth what it is expected to narrow the ``prob`` interval of a target quantity q (the
compute-optimal N at 1e25 FLOPs, the loss of a planned model, the student loss of a planned
distillation), per FLOP. For each candidate, ``outcomes`` results y are simulated from the
posterior predictive (a draw, then the fit's own noise model with that draw's sigma); once y is
observed the posterior is the current one reweighted by p(y | theta_j, x_c), so the weighted
interval of log q is what the run would leave. Its width (log scale, so a relative width)
averaged over the outcomes is the run's expected width, and the current width less it the
expected reduction. Every candidate sees the same draws and the same standardised noise (common
random numbers), so differences between candidates are not differences of luck.

Reweighting needs no refit and vmaps over candidates x outcomes x draws, but it is only as good as
the draws: a run that would move the posterior far leaves few draws with weight, and then its
interval is too narrow. The effective sample size of the weights is reported per candidate, and a
:class:`DesignWarning` names the candidates where it falls below ``ESS_WARN`` of the draws. The
draws' finite number biases the other way for runs that carry almost nothing: uneven weights
spread the sparse tails, so their expected width comes out slightly above the current one (about
1% at 200 draws, under 0.3% at 4,000); reductions of that size are noise.

What is informative is often not where the target is. For ``optimal_*`` targets the runs that
narrow the compute-optimal size most lie far from the compute-optimal frontier (small models on
many tokens, large ones on few): at the optimum the loss is flat in the split of C (the envelope
theorem), so a run there says little about where the optimum is.

Targets (:func:`parse_target`): ``optimal_N@C``, ``optimal_D@C`` and ``optimal_loss@C`` (the
compute-optimal allocation of each draw at C FLOPs, :func:`slaws.allocation.optimal_draws`) and
``loss@name=value,...`` (the law's loss at those inputs; ``N_S`` and ``D_S`` name the student's
``N`` and ``D`` in a distillation law). Everything numerical runs in float64 inside
``jax.enable_x64(True)``.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from slaws import data as _data
from slaws.law import Law, get_law

ESS_WARN = 0.1  # median ESS below this share of the draws: the reweighting is unreliable
TARGET_FORMS = "optimal_N@1e25, optimal_D@1e25, optimal_loss@1e25, loss@N=7e10,D=1.4e12"
STUDENT_ALIASES = {"N_S": "N", "D_S": "D"}  # the distillation law's student is its N and D
_BATCH_ELEMENTS = 1 << 22  # candidates x outcomes x draws evaluated at once (bounds memory)


class DesignWarning(UserWarning):
    """An expected width that cannot be trusted (degenerate importance weights)."""


# --- targets -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A quantity computed per posterior draw: ``quantity`` (``N``, ``D`` or ``loss``) of the
    compute-optimal allocation at ``compute`` FLOPs, or, when ``compute`` is None, the law's loss
    at ``inputs`` (name, value pairs). :func:`parse_target` makes one from its text.

    >>> from slaws import design
    >>> design.Target("optimal_D@1e24", "D", compute=1e24) == design.parse_target("optimal_D@1e24")
    True
    """

    text: str
    quantity: str
    compute: float | None = None
    inputs: tuple[tuple[str, float], ...] = ()

    def log_values(self, law: str | Law, draws, *, flops="6ND") -> np.ndarray:
        """log q for every draw of ``draws`` (parameter arrays, as from
        :func:`slaws.allocation.parameter_draws`), shaped (draws,).

        >>> from slaws import allocation, design, get_law
        >>> law = get_law("chinchilla")
        >>> draws = allocation.parameter_draws("epoch2024", law)
        >>> target = design.parse_target("loss@N=7e10,D=1.4e12")
        >>> [round(float(v), 4) for v in target.log_values(law, draws)]  # log of 1.974
        [0.68]
        """
        import jax
        import jax.numpy as jnp

        from slaws import allocation

        law = get_law(law)
        if self.compute is not None:
            if tuple(law.inputs) != ("N", "D"):
                raise ValueError(
                    f"target {self.text!r}: compute-optimal allocation needs a law of N and D, "
                    f"not {law.name!r} (use loss@...)"
                )
            out = allocation.optimal_draws(law, draws, [self.compute], flops=flops)
            if not out["feasible"].all():
                raise ValueError(
                    f"target {self.text!r}: no model with N and D in "
                    f"[{allocation.BOUNDS[0]:.0e}, {allocation.BOUNDS[1]:.0e}] spends "
                    f"{self.compute:.4g} FLOPs"
                )
            late = float((out["grad_norm"] > allocation.GRAD_TOL).mean())
            if late > 0.01:
                warnings.warn(
                    f"target {self.text!r}: the allocation did not converge for {late:.1%} of "
                    "the draws",
                    DesignWarning,
                    stacklevel=2,
                )
            return out[f"log_{self.quantity}"][:, 0]
        inputs = self._law_inputs(law)
        with jax.enable_x64(True):
            params = {k: jnp.asarray(np.asarray(v, float)) for k, v in draws.items()}
            values = law.log_loss(params, {k: jnp.float64(v) for k, v in inputs.items()})
            return np.asarray(jnp.broadcast_to(values, np.shape(params[law.param_names[0]])))

    def _law_inputs(self, law: Law) -> dict[str, float]:
        """The target's inputs under the law's names, or a one-line ValueError saying which are
        unknown or missing."""
        student = "N_T" in law.input_names() or "L_T" in law.input_names()
        inputs = {}
        for name, value in self.inputs:
            name = STUDENT_ALIASES.get(name, name) if student else name
            if name not in law.input_names():
                raise ValueError(
                    f"target {self.text!r}: law {law.name!r} has no input {name!r} "
                    f"(its inputs: {', '.join(law.input_names())})"
                )
            inputs[name] = value
        for entry in law.inputs:
            options = entry if isinstance(entry, tuple) else (entry,)
            options = [o if isinstance(o, tuple) else (o,) for o in options]
            if not any(set(o) <= set(inputs) for o in options):
                needed = " or ".join("+".join(o) for o in options)
                raise ValueError(f"target {self.text!r}: law {law.name!r} needs {needed}")
        return inputs


def parse_target(text: str) -> Target:
    """A :class:`Target` from ``optimal_N@C``, ``optimal_D@C``, ``optimal_loss@C`` or
    ``loss@name=value,...``; anything else is a one-line ValueError listing the forms.

    >>> from slaws import design
    >>> design.parse_target("optimal_N@1e25")
    Target(text='optimal_N@1e25', quantity='N', compute=1e+25, inputs=())
    >>> design.parse_target("loss@N_S=1e9,D_S=2e10,N_T=7e9,D_T=1.4e11").inputs[:2]
    (('N_S', 1000000000.0), ('D_S', 20000000000.0))
    >>> design.parse_target("optimal_M@1e25")
    Traceback (most recent call last):
    ...
    ValueError: unknown target 'optimal_M@1e25' (forms: optimal_N@1e25, optimal_D@1e25, \
optimal_loss@1e25, loss@N=7e10,D=1.4e12)
    """
    text = str(text).strip()
    unknown = ValueError(f"unknown target {text!r} (forms: {TARGET_FORMS})")
    kind, at, rest = text.partition("@")
    if not at:
        raise unknown
    match = re.fullmatch(r"optimal_(N|D|loss)", kind)
    if match:
        return Target(text, match.group(1), compute=_positive(rest, text))
    if kind != "loss" or not rest:
        raise unknown
    inputs = []
    for part in rest.split(","):
        name, eq, value = (s.strip() for s in part.partition("="))
        if not eq or not name:
            raise unknown
        if name in dict(inputs):
            raise ValueError(f"target {text!r}: input {name!r} given twice")
        inputs.append((name, _positive(value, text)))
    return Target(text, "loss", inputs=tuple(inputs))


def _positive(text: str, target: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"target {target!r}: {text!r} is not a positive finite number")
    return value


# --- the core ----------------------------------------------------------------------------------


def expected_widths(
    key,
    log_q,
    log_mu,
    sigma,
    *,
    likelihood: str = "student_t",
    outcomes: int = 64,
    prob: float = 0.9,
) -> dict[str, np.ndarray]:
    """Expected ``prob`` interval widths of log q after one more run at each candidate.

    ``log_q`` is the target per draw (S,); ``log_mu`` the law's log loss per draw and candidate
    (S, C); ``sigma`` each draw's noise scale (S,); ``likelihood`` the fit's noise model on log
    loss (``normal``, ``student_t`` or ``huber``, as in :mod:`slaws.bayes`); ``key`` a
    ``jax.random`` key. Returns ``width`` (the current width, weighted quantiles with equal
    weights), and per candidate ``expected_width`` (mean over outcomes), ``expected_width_se``
    (its Monte Carlo standard error) and the effective sample size of the weights,
    ``ess_min`` and ``ess_median`` over outcomes. A pure function of its arguments.

    A Gaussian posterior of sd 1 on log q; candidate 0 observes log q with noise of sd 1, and
    candidate 1 a tenth of it: the posterior sd after the run is 0.707, or 0.995, whatever the
    outcome.

    >>> import jax
    >>> import numpy as np
    >>> from slaws import design
    >>> from scipy.stats import norm
    >>> theta = norm.ppf((np.arange(4000) + 0.5) / 4000)  # N(0, 1) quantiles as draws
    >>> mu, sigma = np.stack([theta, theta / 10], 1), np.ones(4000)
    >>> out = design.expected_widths(jax.random.key(0), theta, mu, sigma, likelihood="normal")
    >>> round(float(out["width"]), 2), np.round(out["expected_width"] / 3.29, 2).tolist()
    (3.29, [0.71, 0.99])
    """
    import jax

    _check_settings(outcomes, prob)
    with jax.enable_x64(True):
        log_q = np.asarray(log_q, float)
        log_mu = np.asarray(log_mu, float)
        sigma = np.broadcast_to(np.asarray(sigma, float).reshape(-1), log_q.shape)
        if not (np.isfinite(log_q).all() and np.isfinite(log_mu).all()):
            raise ValueError("the target and the law must be finite at every draw")
        # Candidates padded to a few sizes (the last repeated) so menus of similar sizes share
        # one compiled program.
        n = log_mu.shape[1]
        log_mu = log_mu[:, np.minimum(np.arange(_data.bucket(n)), n - 1)]
        batch = max(1, min(log_mu.shape[1], _BATCH_ELEMENTS // (int(outcomes) * len(log_q))))
        while log_mu.shape[1] % batch:  # no remainder: one vmapped body to compile, not two
            batch -= 1
        program = _widths_program(likelihood, int(outcomes), float(prob), batch)
        width, widths, ess = (np.asarray(v) for v in program(key, log_q, log_mu, sigma))
    widths, ess = widths[:n], ess[:n]
    return {
        "width": float(width),
        "expected_width": widths.mean(1),
        "expected_width_se": widths.std(1, ddof=1) / math.sqrt(widths.shape[1]),
        "ess_min": ess.min(1),
        "ess_median": np.median(ess, 1),
    }


def _check_settings(outcomes, prob):
    if not 0 < prob < 1:
        raise ValueError(f"prob must be in (0, 1), not {prob!r}")
    if int(outcomes) < 2:
        raise ValueError(f"outcomes must be >= 2, not {outcomes!r}")


def interval(log_q, prob: float = 0.9, weights=None) -> tuple[float, float]:
    """The central ``prob`` interval of ``log_q`` under ``weights`` (equal by default), with the
    weighted quantiles :func:`expected_widths` uses (each draw's mass centred on its value).

    >>> from slaws import design
    >>> design.interval([0.0, 1.0, 2.0, 3.0], prob=0.5)
    (0.5, 2.5)
    """
    log_q = np.asarray(log_q, float).reshape(-1)
    order = np.argsort(log_q)
    w = np.ones(log_q.size) if weights is None else np.asarray(weights, float).reshape(-1)
    w = w[order] / w.sum()
    cdf = np.cumsum(w) - 0.5 * w  # as _interval, in numpy: no compilation for one interval
    tail = (1 - prob) / 2
    lo, hi = np.interp([tail, 1 - tail], cdf, log_q[order])
    return float(lo), float(hi)


def _interval(sorted_values, weights, prob):
    import jax.numpy as jnp

    cdf = jnp.cumsum(weights) - 0.5 * weights
    tail = (1 - prob) / 2
    lo, hi = jnp.interp(jnp.array([tail, 1 - tail]), cdf, sorted_values)
    return lo, hi


@functools.lru_cache(maxsize=16)
def _widths_program(likelihood, outcomes, prob, batch):
    """Jitted ``(key, log_q, log_mu, sigma) -> (width, widths (C, M), ess (C, M))``."""
    import jax
    import jax.numpy as jnp

    from slaws.bayes import _noise

    def program(key, log_q, log_mu, sigma):
        k_draw, k_noise = jax.random.split(key)
        draws = len(log_q)
        # Common random numbers: the same draws and standardised noise for every candidate.
        picked = jax.random.randint(k_draw, (outcomes,), 0, draws)
        noise = _noise(likelihood, 0.0, 1.0).sample(k_noise, (outcomes,))
        y = log_mu[picked] + sigma[picked, None] * noise[:, None]  # (outcomes, candidates)
        order = jnp.argsort(log_q)  # one sort: quantiles become cumulative sums of weights
        values, mu, scale = log_q[order], log_mu[order], sigma[order]
        lo, hi = _interval(values, jnp.full(draws, 1.0 / draws), prob)

        def candidate(args):
            mu_c, y_c = args
            log_w = _noise(likelihood, mu_c[None, :], scale[None, :]).log_prob(y_c[:, None])
            w = jax.nn.softmax(log_w, axis=1)
            lo, hi = jax.vmap(_interval, (None, 0, None))(values, w, prob)
            return hi - lo, 1.0 / jnp.sum(w * w, axis=1)

        widths, ess = jax.lax.map(candidate, (mu.T, y.T), batch_size=batch)
        return hi - lo, widths, ess

    return jax.jit(program)


# --- the front ---------------------------------------------------------------------------------


def load_candidates(source, inputs, *, flops="6ND") -> pd.DataFrame:
    """Candidate runs from a CSV/TSV/Parquet file or a DataFrame, validated as
    :func:`slaws.data.load` does (one-line errors naming file, column and row): the ``inputs``
    columns and ``cost`` in FLOPs, read from a ``cost`` column, else ``C`` (training FLOPs),
    else priced as 3 F(N) D by ``flops`` (6ND by default). ``row`` is each candidate's row as
    the errors name it.

    >>> import pandas as pd
    >>> from slaws import design
    >>> menu = pd.DataFrame({"N": [1e9, 7e10], "D": [2e10, 1.4e12]})
    >>> design.load_candidates(menu, ["N", "D"])["cost"].tolist()
    [1.2e+20, 5.88e+23]
    >>> design.load_candidates(menu.assign(cost=[1e20, 0.0]), ["N", "D"])
    Traceback (most recent call last):
    ...
    slaws.data.DataError: DataFrame: column 'cost', row 1: 0 is not > 0
    """
    from slaws.flops import get_flops, six_nd

    frame = _data.load(source, required=tuple(inputs))
    if isinstance(source, pd.DataFrame):
        raw, src = source.reset_index(drop=True), _data._frame_source(source)
    else:
        raw, src, _ = _data._read_source(source)
    label = frame.attrs["source"]
    named = [c for c in raw.columns if str(c).strip().casefold() == "cost"]
    if named:
        cost = _data._clean_column(raw[named[0]], "cost", src)
        if (cost <= 0).any():
            _data._fail(src, "cost", cost <= 0, f"{cost[cost <= 0][0]:g} is not > 0")
    elif "C" in frame:
        cost = frame["C"].to_numpy()
    elif {"N", "D"} <= set(frame):
        n, d = frame["N"].to_numpy(), frame["D"].to_numpy()
        log_forward = get_flops(flops)
        if log_forward is six_nd:
            cost = 6 * n * d  # exactly, as users write it
        else:
            cost = 3 * d * np.exp(np.asarray(log_forward(np.log(n))))
    else:
        raise _data.DataError(
            f"{label}: no 'cost' column, and without N and D a run cannot be priced by "
            f"{flops if isinstance(flops, str) else 'the FLOP model'}"
        )
    out = pd.DataFrame({"row": frame.attrs["rows"]})
    for name in inputs:
        out[name] = frame[name].to_numpy()
    out["cost"] = np.asarray(cost, float)
    out.attrs["source"] = label
    return out


def next_run(
    tree_or_path,
    candidates,
    target,
    *,
    outcomes: int = 64,
    prob: float = 0.9,
    seed: int = 0,
    flops="6ND",
) -> pd.DataFrame:
    """Rank candidate runs by the expected narrowing of ``target``'s interval per FLOP.

    ``tree_or_path`` is a posterior from :func:`slaws.bayes.sample` or a fit file;
    ``candidates`` a CSV/TSV/Parquet path or a DataFrame with the fit's inputs and optionally a
    ``cost`` (see :func:`load_candidates`); ``target`` a :class:`Target` or its text
    (:func:`parse_target`); ``flops`` prices candidates without a cost and defines C in
    ``optimal_*`` targets. One row per candidate, best first: ``row``, the inputs, ``cost``,
    ``width`` (the current ``prob`` interval width of log q), ``expected_width`` after the run
    (with ``expected_width_se``, its Monte Carlo error over ``outcomes``), ``reduction``,
    ``reduction_share`` (of the current width), ``reduction_per_flop``, ``ess_min`` and
    ``ess_median`` (the importance weights' effective sample size over outcomes, of the
    posterior's draws) and ``rank``. ``attrs`` holds the target, the current median and interval
    of q, the draws and the warnings raised (:class:`DesignWarning`). The same ``seed`` gives
    the same table.

    >>> import pandas as pd
    >>> from slaws import bayes, design, synthetic
    >>> frame = synthetic.chinchilla_like(n_models=8, n_budgets=5, noise=0.005)
    >>> tree = bayes.sample("chinchilla", frame, method="bootstrap", draws=200)
    >>> menu = pd.DataFrame({"N": [1e8, 1e10], "D": [1e10, 2e11]})
    >>> table = design.next_run(tree, menu, "loss@N=1e10,D=2e11", outcomes=16)
    >>> table["N"].tolist(), table["rank"].tolist()  # the run at the target itself comes first
    ([10000000000.0, 100000000.0], [1, 2])
    >>> bool(table["reduction"].iloc[0] > table["reduction"].iloc[1])
    True
    """
    import jax

    from slaws import allocation, bayes

    _check_settings(outcomes, prob)  # before any solving
    if isinstance(tree_or_path, str | os.PathLike):
        tree = bayes.load(tree_or_path)
    else:
        tree = tree_or_path
    info = json.loads(tree.attrs["slaws"])
    law = get_law(info["law"])
    target = target if isinstance(target, Target) else parse_target(target)
    inputs = list(info["input_ranges"])
    menu = load_candidates(candidates, inputs, flops=flops)
    draws = allocation.parameter_draws(tree, law)
    sigma = tree["posterior"]["sigma"].values.reshape(-1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DesignWarning)
        log_q = target.log_values(law, draws, flops=flops)
        with jax.enable_x64(True):
            x = {k: menu[k].to_numpy()[None, :] for k in inputs}
            log_mu = np.asarray(law.log_loss({k: v[:, None] for k, v in draws.items()}, x))
        out = expected_widths(
            jax.random.key(seed),
            log_q,
            log_mu,
            sigma,
            likelihood=info["likelihood"],
            outcomes=outcomes,
            prob=prob,
        )
        table = menu.copy()
        table["width"] = out["width"]
        for name in ("expected_width", "expected_width_se"):
            table[name] = out[name]
        table["reduction"] = out["width"] - out["expected_width"]
        table["reduction_share"] = table["reduction"] / out["width"]
        table["reduction_per_flop"] = table["reduction"] / table["cost"]
        table["ess_min"], table["ess_median"] = out["ess_min"], out["ess_median"]
        order = np.argsort(-table["reduction_per_flop"].to_numpy(), kind="stable")
        table["rank"] = np.argsort(order) + 1
        weak = table["ess_median"] < ESS_WARN * len(log_q)
        if weak.any():
            rows = ", ".join(str(r) for r in table.loc[weak, "row"])
            warnings.warn(
                f"importance weights degenerate for {int(weak.sum())} of {len(table)} "
                f"candidates (median ESS below {ESS_WARN:.0%} of {len(log_q)} draws; rows "
                f"{rows}): their expected widths rest on a few draws and are unreliable; use "
                "a posterior with more draws",
                DesignWarning,
                stacklevel=2,
            )
    for w in caught:  # raised again to the caller; the design's own kept with the table
        warnings.warn(w.message, w.category, stacklevel=2)
    notes = [str(w.message) for w in caught if issubclass(w.category, DesignWarning)]
    lo, hi = interval(log_q, prob)
    table = table.iloc[order].reset_index(drop=True)
    table.attrs = {
        "target": target.text,
        "law": law.name,
        "likelihood": info["likelihood"],
        "draws": len(log_q),
        "outcomes": int(outcomes),
        "prob": float(prob),
        "seed": int(seed),
        "median": float(np.exp(np.median(log_q))),
        "interval": [float(np.exp(lo)), float(np.exp(hi))],
        "width": out["width"],
        "candidates": menu.attrs["source"],
        "warnings": notes,
    }
    return table
