"""Law comparison: rank candidate laws for one dataset by PSIS-LOO, with an extrapolation score
beside it.

Every law gets a NUTS posterior (:func:`slaws.bayes.sample`) with the same likelihood on log loss,
draws, chains and seed, so their expected log predictive densities are on one scale.
``elpd_loo`` is arviz's Pareto-smoothed importance-sampling leave-one-out estimate, with its
standard error, the effective number of parameters ``p_loo``, the difference from the best law
and its standard error (from the pointwise differences, as arviz's ``compare`` computes them),
stacking weights, and the Pareto k diagnostics: ``pareto_k_max`` and ``n_high_k``, the points
above arviz's ``good_k`` (``min(1 - 1/log10(S), 0.7)`` for S draws), where the estimate is not
to be trusted.

In-sample LOO rewards laws that are flexible inside the range of the data; scaling laws are used
to extrapolate. So each law is also fitted again without the largest runs (see
:func:`largest_runs`) and scored on them: ``holdout_lpd``, the log predictive density of the
held-out runs (summed over them; the same runs for every law), ``holdout_rmse``, the RMSE of log
loss of the posterior-median prediction (0.01 is about 1%), and ``holdout_coverage``, the share
of held-out runs inside the 90% posterior predictive interval.

A fit that fails, or whose diagnostics fail (r_hat, ESS, divergences, BFMI, high Pareto k), is
reported in its row (``status`` and ``warnings``); it never stops the others.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from slaws import bayes
from slaws import data as _data
from slaws.law import Law, get_law

__all__ = ["COLUMNS", "compare", "holdout_scores", "largest_runs", "loo_scores"]

#: The columns of :func:`compare`'s table, in order.
COLUMNS = (
    "law",
    "rank",
    "elpd_loo",
    "se",
    "p_loo",
    "d_elpd",
    "d_se",
    "weight",
    "pareto_k_max",
    "n_high_k",
    "holdout_lpd",
    "holdout_rmse",
    "holdout_coverage",
    "holdout_rank",
    "status",
    "warnings",
)

HOLDOUT_PROB = 0.9  # the predictive interval of holdout_coverage
_TIE_RTOL = 1e-6  # runs of one IsoFLOP budget: 6ND equal up to rounding of N


def compare(
    data,
    laws: Sequence[str | Law],
    *,
    likelihood: str = "student_t",
    draws: int = 1000,
    warmup: int = 1000,
    chains: int = 4,
    seed: int = 0,
    holdout: float = 0.2,
    columns: Mapping[str, str] | None = None,
    grid: Mapping[str, Mapping] | None = None,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Rank ``laws`` (names or :class:`slaws.Law` objects) on ``data`` by PSIS-LOO and by
    extrapolation to the largest runs; one row per law, best ``elpd_loo`` first.

    Posteriors are sampled with NUTS (:func:`slaws.bayes.sample`): PSIS-LOO reweights draws
    from the posterior itself, which neither SVI's approximation nor the bootstrap's refits are
    (on SVI draws most Pareto k exceed 1). ``likelihood``, ``draws``, ``warmup``, ``chains`` and
    ``seed`` are those of :func:`slaws.bayes.sample`, the same for every law and for both fits
    of a law. ``holdout`` is the share of runs held out for the extrapolation score, the largest
    (see :func:`largest_runs`; 0 holds out none). ``grid`` maps a law's name to the multi-start
    grid NUTS starts from (each law's own by default). ``progress`` receives a line before each
    fit.

    The columns are :data:`COLUMNS` (see the module docstring); ``rank`` and ``holdout_rank``
    count from 1 (by ``elpd_loo`` and ``holdout_lpd``; missing where the fit failed), ``status``
    is ``ok``, ``warnings`` or ``failed`` and ``warnings`` lists the messages. ``table.attrs``
    holds the settings, ``good_k``, the held-out runs (``holdout``: share, ``by``, row labels)
    and each law's pointwise ``elpd_loo`` and ``pareto_k`` (``pointwise``).

    Input errors raise one ``ValueError`` line before any fit: an unknown law, a law whose
    inputs are not in the data, a law listed twice, too few runs to fit a law.

    >>> from slaws import synthetic
    >>> from slaws.compare import compare
    >>> frame = synthetic.chinchilla_like(n_models=8, n_budgets=6, noise=0.01)  # 48 runs
    >>> table = compare(frame, ["chinchilla"], draws=100, warmup=100, chains=4)
    >>> table[["law", "rank", "holdout_rank", "status"]].to_dict("records")  # 400 draws: low ESS
    [{'law': 'chinchilla', 'rank': 1, 'holdout_rank': 1, 'status': 'warnings'}]
    >>> table.attrs["holdout"]["n_holdout"], table.attrs["holdout"]["by"]  # the top budget
    (8, '6ND')
    >>> bool(table["holdout_rmse"][0] < 0.03)  # 1% noise: the largest runs within ~1%
    True
    >>> compare(frame, ["chinchilla", "bnsl"])
    Traceback (most recent call last):
    ...
    ValueError: DataFrame: law 'bnsl' reads column 'x', which the data lack (columns: N, D, loss)
    """
    if likelihood not in bayes.LIKELIHOODS:
        raise ValueError(
            f"unknown likelihood {likelihood!r} (known: {', '.join(bayes.LIKELIHOODS)})"
        )
    if not (isinstance(holdout, int | float) and 0 <= holdout < 1):
        raise ValueError(f"holdout must be a share of the runs in [0, 1), not {holdout!r}")
    laws = _resolve_laws(laws)
    grids = dict(grid or {})
    unknown = [name for name in grids if name not in {law.name for law in laws}]
    if unknown:
        raise ValueError(f"grid names law {unknown[0]!r}, which is not compared")
    frame = _data.load(data, columns=columns, required=("loss",))
    for law in laws:
        _check_inputs(law, frame)
    held = largest_runs(frame, laws, holdout) if holdout else np.zeros(len(frame), bool)
    train, test = _subset(frame, ~held), _subset(frame, held)
    for law in laws:
        free = len(law.params) - len(bayes.make_model(law, likelihood=likelihood).fixed)
        _data.require_points(frame, free, what=f"law {law.name!r}")
        if held.any():
            _data.require_points(train, free, what=f"law {law.name!r} without the largest runs")

    options = {"likelihood": likelihood, "draws": draws, "warmup": warmup, "chains": chains}
    options |= {"method": "nuts", "seed": seed}
    say = progress or (lambda line: None)
    fits = {}
    for law in laws:
        notes, scores = [], {}
        say(f"{law.name}: posterior on all {len(frame)} runs")
        tree = _sample(law, frame, grids.get(law.name), notes, "", options)
        if held.any():
            say(f"{law.name}: posterior without the {int(held.sum())} largest runs")
            smaller = _sample(law, train, grids.get(law.name), notes, "holdout ", options)
            if smaller is not None:
                try:
                    scores = holdout_scores(smaller, test, law=law, seed=seed)
                except Exception as exc:  # the row's problem, like a failed fit
                    notes.append(f"holdout scoring failed ({type(exc).__name__}: {_one_line(exc)})")
        fits[law.name] = (tree, notes, scores)

    table, pointwise, good_k = _ranked(fits)
    table.attrs = {
        "source": frame.attrs.get("source", "DataFrame"),
        "n_points": len(frame),
        "method": "nuts",
        "likelihood": likelihood,
        "draws": draws,
        "warmup": warmup,
        "chains": chains,
        "seed": seed,
        "good_k": good_k,
        "holdout": _holdout_info(frame, laws, held, holdout),
        "pointwise": pointwise,
    }
    return table


def _ranked(fits):
    """The table of :func:`compare` from each law's ``(tree or None, notes, holdout scores)``,
    with each law's pointwise LOO values and arviz's ``good_k``."""
    scorable = {}
    for name, (tree, notes, _) in fits.items():
        if tree is None:
            continue
        loglik = tree["log_likelihood"]["log_loss"].values
        if np.isfinite(loglik).all():
            scorable[name] = tree
        else:  # a posterior in a region where the law is not finite: no LOO, but still a row
            bad = int((~np.isfinite(loglik)).any(axis=(0, 1)).sum())
            notes.append(f"log likelihood not finite at {bad} points: no PSIS-LOO")
    loo = {row["law"]: row for row in loo_scores(scorable).to_dict("records")} if scorable else {}
    rows, pointwise, good_k = [], {}, None
    for name, (tree, notes, scores) in fits.items():
        row = {"law": name, **loo.get(name, {}), **scores}
        row["warnings"] = notes + row.pop("loo_warnings", [])
        row["status"] = "failed" if tree is None else "warnings" if row["warnings"] else "ok"
        if name in loo:
            pointwise[name] = row.pop("pointwise")
            good_k = row.pop("good_k")
        rows.append(row)
    table = pd.DataFrame(rows).reindex(columns=list(COLUMNS))
    table = table.sort_values("elpd_loo", ascending=False, na_position="last", kind="stable")
    table = table.reset_index(drop=True)
    table["rank"] = _ranks(table["elpd_loo"])
    table["holdout_rank"] = _ranks(table["holdout_lpd"])
    table["n_high_k"] = table["n_high_k"].astype("Int64")
    return table, pointwise, good_k


def loo_scores(trees: Mapping[str, object]) -> pd.DataFrame:
    """PSIS-LOO of posteriors fitted to the same data, one row per entry of ``trees`` (name ->
    arviz ``DataTree`` with a ``log_loss`` variable in its ``log_likelihood`` group, as
    :func:`slaws.bayes.sample` writes), best first.

    Columns: ``law``, ``elpd_loo``, ``se``, ``p_loo``, ``d_elpd`` and ``d_se`` (difference from
    the best and its standard error, from the pointwise differences), ``weight`` (arviz's
    stacking weights), ``pareto_k_max``, ``n_high_k`` (points with k above ``good_k``),
    ``good_k``, ``pointwise`` (``{"elpd_loo": [...], "pareto_k": [...]}``) and
    ``loo_warnings``.

    Two made-up posteriors of three observations: one predicts them well, one is off by 0.1
    with the same noise scale, 0.05:

    >>> import arviz as az
    >>> import numpy as np
    >>> from slaws.compare import loo_scores
    >>> rng = np.random.default_rng(0)
    >>> y = np.array([0.0, 0.1, 0.2])
    >>> def tree(shift):
    ...     mu = y + shift + 0.01 * rng.standard_normal((2, 500, 1))  # chains, draws, points
    ...     loglik = -0.5 * ((y - mu) / 0.05) ** 2 - np.log(0.05 * np.sqrt(2 * np.pi))
    ...     return az.from_dict(
    ...         {"posterior": {"mu0": mu[..., 0]}, "log_likelihood": {"log_loss": loglik}},
    ...         dims={"log_loss": ["points"]},
    ...     )
    >>> table = loo_scores({"off": tree(0.1), "good": tree(0.0)})
    >>> table["law"].tolist(), table["d_elpd"].round(0).tolist()  # about 3 (0.1 / 0.05)^2 / 2
    (['good', 'off'], [0.0, -6.0])
    >>> table["n_high_k"].tolist()
    [0, 0]
    """
    import arviz as az

    if not trees:
        raise ValueError("no posteriors to compare")
    results, points = {}, set()
    for name, tree in trees.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # high Pareto k: counted in the row instead
            results[name] = az.loo(tree, pointwise=True, var_name="log_loss")
        points.add(results[name].n_data_points)
    if len(points) > 1:
        raise ValueError(
            f"posteriors of different data sizes ({', '.join(map(str, sorted(points)))} points) "
            "cannot be compared"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ranked = az.compare(results, round_to="none")
    best = results[ranked.index[0]].elpd_i.values.ravel()
    rows = []
    for name in ranked.index:
        result = results[name]
        elpd_i = result.elpd_i.values.ravel()
        k = result.pareto_k.values.ravel()
        diff = elpd_i - best
        high = int(np.sum(k > result.good_k))
        notes = []
        if high:
            notes.append(
                f"{high} of {len(k)} points with Pareto k > {result.good_k:.2f} (largest "
                f"{k.max():.2f}): PSIS-LOO is unreliable there; more draws, or K-fold"
            )
        rows.append(
            {
                "law": name,
                "elpd_loo": float(result.elpd),
                "se": float(result.se),
                "p_loo": float(result.p),
                "d_elpd": float(diff.sum()),
                "d_se": float(np.sqrt(len(diff) * np.var(diff))),
                "weight": float(ranked.loc[name, "weight"]),
                "pareto_k_max": float(k.max()),
                "n_high_k": high,
                "good_k": float(result.good_k),
                "pointwise": {"elpd_loo": elpd_i.tolist(), "pareto_k": k.tolist()},
                "loo_warnings": notes,
            }
        )
    return pd.DataFrame(rows)


def holdout_scores(tree, frame, *, law: str | Law | None = None, seed: int = 0) -> dict:
    """Score a posterior (from :func:`slaws.bayes.sample`) on runs it was not fitted to:
    ``holdout_lpd``, the summed log predictive density ``sum_i log mean_s p(y_i | theta_s)``
    under the posterior's own likelihood; ``holdout_rmse``, the RMSE of log loss of the
    posterior-median prediction; ``holdout_coverage``, the share of runs inside the 90%
    posterior predictive interval (noise drawn with ``seed``). ``law`` is the posterior's law
    (looked up by the name stored in the tree when not given; pass a user's unregistered law).

    >>> from slaws import bayes, synthetic
    >>> from slaws.compare import holdout_scores
    >>> frame = synthetic.chinchilla_like(n_models=8, n_budgets=6, noise=0.01)
    >>> small, large = frame.iloc[:40], frame.iloc[40:]  # the largest budget held out
    >>> tree = bayes.sample("chinchilla", small, method="bootstrap", draws=50)
    >>> scores = holdout_scores(tree, large)
    >>> sorted(scores)
    ['holdout_coverage', 'holdout_lpd', 'holdout_rmse']
    >>> bool(scores["holdout_rmse"] < 0.03), bool(scores["holdout_lpd"] > 8 * 2.0)  # sd ~ 0.01
    (True, True)
    """
    import jax
    from numpyro.infer import Predictive, log_likelihood
    from scipy.special import logsumexp

    info = json.loads(tree.attrs["slaws"])
    law = bayes._posterior_law(info, law)
    frame = _data.load(frame, required=(*law.inputs, "loss"))
    posterior = tree["posterior"].to_dataset()
    draws = {k: posterior[k].values.reshape(-1) for k in posterior.data_vars}
    model = bayes.make_model(law, likelihood=info["likelihood"], fixed=info["fixed"] or None)
    with jax.enable_x64(True):
        inputs = {k: np.asarray(frame[k], float) for k in law.used_inputs(frame)}
        log_obs = np.log(np.asarray(frame["loss"], float))
        loglik = np.asarray(
            log_likelihood(model, draws, inputs, log_obs, parallel=True)["log_loss"]
        )
        params = {
            p: np.asarray(draws[p])[:, None] if p in draws else info["fixed"][p]
            for p in law.param_names
        }
        mu = np.asarray(law.log_loss(params, {k: v[None, :] for k, v in inputs.items()}))
        key = jax.random.key(seed)
        predicted = Predictive(model, draws, parallel=True)(key, inputs)["log_loss"]
    tail = (1 - HOLDOUT_PROB) / 2
    lo, hi = np.quantile(np.asarray(predicted), [tail, 1 - tail], axis=0)
    lpd = logsumexp(loglik, axis=0) - math.log(loglik.shape[0])
    return {
        "holdout_lpd": float(lpd.sum()),
        "holdout_rmse": float(np.sqrt(np.mean((np.median(mu, 0) - log_obs) ** 2))),
        "holdout_coverage": float(np.mean((lo <= log_obs) & (log_obs <= hi))),
    }


def largest_runs(frame: pd.DataFrame, laws: Sequence[str | Law], share: float) -> np.ndarray:
    """The runs held out to score extrapolation: a boolean mask over ``frame``'s rows marking
    about ``share`` of them, the largest.

    Size is training compute 6ND when every law reads ``N`` and ``D``, else the one input all
    the laws read (``x`` for learning curves); laws of different inputs have no common size.
    Runs of equal size (an IsoFLOP profile's runs share 6ND) are never split: the cut goes at
    the boundary between sizes nearest to ``share`` of the runs (the smaller count on a tie),
    holding out at least the largest size and keeping at least one other run.

    On an IsoFLOP design of 6 budgets x 8 models, 20% is 9.6 runs: the top budget's 8 are
    nearer than the top two budgets' 16.

    >>> from slaws import synthetic
    >>> from slaws.compare import largest_runs
    >>> frame = synthetic.chinchilla_like(n_models=8, n_budgets=6)
    >>> held = largest_runs(frame, ["chinchilla", "kaplan"], 0.2)
    >>> int(held.sum()), held[-8:].all()
    (8, np.True_)
    >>> int(largest_runs(frame, ["chinchilla"], 0.3).sum())  # 14.4 runs: 16 is nearer than 8
    16
    """
    if not 0 < share < 1:
        raise ValueError(f"holdout share must be in (0, 1), not {share!r}")
    size, by = _size(frame, [get_law(law) for law in laws])
    order = np.argsort(-size, kind="stable")
    ordered = size[order]
    # Boundaries between sizes: positions k where the k largest runs differ in size from the rest.
    cuts = [
        k
        for k in range(1, len(ordered))
        if not math.isclose(ordered[k - 1], ordered[k], rel_tol=_TIE_RTOL)
    ]
    label = frame.attrs.get("source", "DataFrame")
    if not cuts:
        raise ValueError(f"{label}: every run has the same {by}; no largest runs to hold out")
    target = share * len(frame)
    count = min(cuts, key=lambda k: (abs(k - target), k))
    held = np.zeros(len(frame), bool)
    held[order[:count]] = True
    return held


def _size(frame, laws):
    """Each run's size and what it is (``'6ND'`` or an input's name)."""
    used = [set(law.used_inputs(frame.columns)) for law in laws]
    if all({"N", "D"} <= names for names in used):
        return 6.0 * np.asarray(frame["N"], float) * np.asarray(frame["D"], float), "6ND"
    if all(len(names) == 1 for names in used) and len(set.union(*used)) == 1:
        (name,) = used[0]
        return np.asarray(frame[name], float), name
    readers = "; ".join(f"{law.name}: {', '.join(law.input_names())}" for law in laws)
    raise ValueError(
        f"no common size to pick the largest runs by for laws of different inputs ({readers}); "
        "compare them with holdout=0 (--holdout 0)"
    )


def _holdout_info(frame, laws, held, share) -> dict:
    rows = frame.attrs.get("rows")
    labels = rows if rows is not None and len(rows) == len(frame) else list(frame.index)
    info = {"share": share, "n_holdout": int(held.sum()), "n_train": int((~held).sum())}
    if held.any():
        size, by = _size(frame, laws)
        info |= {
            "by": by,
            "min_size": float(size[held].min()),
            "rows": [labels[i] for i in np.flatnonzero(held)],
        }
    else:
        info |= {"by": None, "min_size": None, "rows": []}
    return info


def _resolve_laws(laws) -> list[Law]:
    if isinstance(laws, str | Law):
        laws = [laws]
    resolved = [get_law(law) for law in laws]  # an unknown name raises one line
    if not resolved:
        raise ValueError("no laws to compare")
    seen = set()
    for law in resolved:
        if law.name in seen:
            raise ValueError(f"law {law.name!r} is listed twice")
        seen.add(law.name)
    return resolved


def _check_inputs(law: Law, frame) -> None:
    present = set(frame.columns)
    for entry in law.inputs:
        options = [alt if isinstance(alt, tuple) else (alt,) for alt in _alternatives(entry)]
        if any(set(names) <= present for names in options):
            continue
        what = " or ".join(
            repr(names[0]) if len(names) == 1 else "both " + " and ".join(map(repr, names))
            for names in options
        )
        word = "column" if len(options) == 1 and len(options[0]) == 1 else "columns"
        raise ValueError(
            f"{frame.attrs.get('source', 'DataFrame')}: law {law.name!r} reads {word} {what}, "
            f"which the data lack (columns: {', '.join(frame.columns)})"
        )


def _alternatives(entry):
    return entry if isinstance(entry, tuple) else (entry,)


def _subset(frame, keep) -> pd.DataFrame:
    """Rows of ``frame`` where ``keep``, renumbered, still naming their file rows in messages."""
    out = frame[keep].reset_index(drop=True)
    out.attrs = dict(frame.attrs)
    for key in ("rows", "lines"):
        if key in frame.attrs and len(frame.attrs[key]) == len(frame):
            out.attrs[key] = [v for v, k in zip(frame.attrs[key], keep, strict=True) if k]
    return out


def _sample(law, frame, grid, notes, prefix, options):
    """:func:`slaws.bayes.sample`, or None when it fails; its warnings go to ``notes``."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", bayes.PosteriorWarning)
            warnings.simplefilter("ignore", _data.DataWarning)  # raised once, by compare's load
            tree = bayes.sample(law, frame, grid=grid, **options)
    except Exception as exc:  # one law's failure is its row's, not the comparison's
        notes.append(f"{prefix}fit failed ({type(exc).__name__}: {_one_line(exc)})")
        return None
    for w in caught:
        if issubclass(w.category, bayes.PosteriorWarning):
            notes.append(f"{prefix}fit: {w.message}")
    return tree


def _ranks(values: pd.Series) -> pd.Series:
    """1 for the largest value, missing where the value is."""
    return values.rank(ascending=False, method="min").astype("Int64")


def _one_line(exc) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
