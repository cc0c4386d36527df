"""Partial pooling across families against separate fits, on real runs (Gadre et al. 2024).

gadre-overtrain has three families, one per training set (RedPajama, C4, RefinedWeb), of open_lm
models from 10.6M to 6.9B parameters (C4 validation loss). For each family in turn, every run of
that family at 1.4B and 6.9B parameters is held out, the other two families keep every run below
1e9 parameters, and the family itself keeps five runs below 1e9: either five drawn at random
(protocol "five random runs", three seeded draws per family: a family with few runs, placed
wherever they happened to be trained) or the five Gadre et al. chose for their fit (protocol
"Gadre's five runs": four sizes at 20 tokens per parameter and one over-trained run, designed
for these targets). Three ways to forecast the held-out runs, each a NUTS posterior of the
Chinchilla law:

- separate: the family's five runs alone (what a user fitting one family gets);
- complete pooling: every run in the training set as if from one family;
- partial pooling: ``slaws.hierarchical.sample`` over the three families.

Reported per method: the median absolute relative error of the posterior-median forecast, the
coverage of the 90% predictive intervals (goal: near 90%), their mean width (log scale), and the
mean log predictive density of the held-out losses (higher is better). The baseline a user would
otherwise have is the separate fit; ``ratio_vs_baseline`` is, per protocol, its median error over
partial pooling's. ``point_fits``: whether more of a family's own runs help at all.

Writes benchmarks/results/hierarchical.json.
"""

import argparse
import json
import time
import warnings

import numpy as np
import pandas as pd
from _common import machine, write_result

FAMILIES = {"rpj": "RedPajama", "c4_original": "C4", "rw_original": "RefinedWeb"}


def gadre_families() -> pd.DataFrame:
    from slaws import datasets

    raw = datasets.read("gadre-overtrain")
    return pd.DataFrame(
        {
            "N": raw["N"].to_numpy(float),
            "D": raw["D"].to_numpy(float),
            "loss": raw["loss_c4_val"].to_numpy(float),
            "family": raw["dataset_name"].to_numpy(str),
            "config": raw["model_config"].to_numpy(str),
            "M": raw["tok_mult"].to_numpy(float),
        }
    )


RANDOM_DRAWS = 3
FAMILY_RUNS = 5


def split(frame: pd.DataFrame, target: str, draw: int | None = None):
    """Training runs and the target family's held-out runs (1.4B and 6.9B). The target keeps
    Gadre et al.'s five fitted runs (``draw`` None) or five of its runs below 1e9 parameters
    drawn with seed ``draw``; the other families keep every run below 1e9."""
    from slaws.bench_tasks import GADRE_FIT

    mine, small = frame["family"] == target, frame["N"] < 1e9
    if draw is None:
        keep = np.zeros(len(frame), bool)
        for config, m in GADRE_FIT:
            keep |= (frame["config"] == config) & (frame["M"] == m)
    else:
        candidates = np.flatnonzero(mine & small)
        chosen = np.random.default_rng(draw).choice(candidates, FAMILY_RUNS, replace=False)
        keep = np.isin(np.arange(len(frame)), chosen)
    train = (mine & keep) | (~mine & small)
    test = mine & ~small
    return frame[train].reset_index(drop=True), frame[test].reset_index(drop=True)


def score(tree, test: pd.DataFrame, prob: float = 0.9) -> dict:
    """Forecast quality of ``tree`` (a single-law posterior) on the held-out runs."""
    from slaws import bayes
    from slaws.compare import holdout_scores

    out = bayes.forecast(tree, test[["N", "D"]], prob=prob)
    actual = test["loss"].to_numpy()
    covered = (out["predictive_lo"] <= actual) & (actual <= out["predictive_hi"])
    return {
        "median_abs_rel_error": float(np.median(np.abs(out["median"] / actual - 1))),
        "coverage90": float(covered.mean()),
        "mean_log_width90": float(np.mean(np.log(out["predictive_hi"] / out["predictive_lo"]))),
        "mean_log_predictive_density": holdout_scores(tree, test)["holdout_lpd"] / len(test),
    }


def point_fit_errors(frame: pd.DataFrame) -> list[dict]:
    """Median error on each family's held-out runs of a point fit (slaws.fit's default recipe)
    to Gadre's five runs and to every run of the family below 1e9 parameters: whether more of a
    family's own runs help its extrapolation at all."""
    import slaws

    rows = []
    for target in FAMILIES:
        gadre, test = split(frame, target)
        own = frame[(frame["family"] == target) & (frame["N"] < 1e9)]
        for runs, name in (
            (gadre[gadre["family"] == target], "Gadre's five"),
            (own, "all below 1e9"),
        ):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = slaws.fit("chinchilla", runs[["N", "D", "loss"]])
            predicted = result.predict({"N": test["N"].to_numpy(), "D": test["D"].to_numpy()})
            error = float(np.median(np.abs(predicted / test["loss"].to_numpy() - 1)))
            rows.append(
                {
                    "family": FAMILIES[target],
                    "runs": name,
                    "n": len(runs),
                    "median_abs_rel_error": error,
                }
            )
    return rows


def main():
    from slaws import bayes, hierarchical

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument(
        "--pooled", help="parameters to pool, e.g. E,alpha,beta (default: all; the rest shared)"
    )
    args = parser.parse_args()
    pooled = args.pooled.split(",") if args.pooled else None
    nuts = {"draws": args.draws, "warmup": args.warmup, "chains": args.chains, "seed": 0}

    frame = gadre_families()
    rows = []
    started = time.perf_counter()
    cases = [
        ("five random runs", target, draw) for target in FAMILIES for draw in range(RANDOM_DRAWS)
    ]
    cases += [("Gadre's five runs", target, None) for target in FAMILIES]
    for protocol, target, draw in cases:
        train, test = split(frame, target, draw)
        mine = train[train["family"] == target]
        fits = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # diagnostics are recorded below, per fit
            t = time.perf_counter()
            tree = bayes.sample("chinchilla", mine[["N", "D", "loss"]], **nuts)
            fits["separate"] = (tree, tree, time.perf_counter() - t)
            t = time.perf_counter()
            tree = bayes.sample("chinchilla", train[["N", "D", "loss"]], **nuts)
            fits["complete pooling"] = (tree, tree, time.perf_counter() - t)
            t = time.perf_counter()
            runs = train[["N", "D", "loss", "family"]]
            tree = hierarchical.sample("chinchilla", runs, pooled=pooled, **nuts)
            family = hierarchical.family_posterior(tree, target)
            fits["partial pooling"] = (family, tree, time.perf_counter() - t)
        for method, (tree, whole, seconds) in fits.items():
            diagnostics = json.loads(whole.attrs["slaws"])["diagnostics"]
            rows.append(
                {
                    "protocol": protocol,
                    "family": FAMILIES[target],
                    "draw": draw,
                    "method": method,
                    "train_runs_of_family": len(mine),
                    "train_runs": len(train) if method != "separate" else len(mine),
                    "held_out": len(test),
                    **score(tree, test),
                    "max_r_hat": diagnostics["max_r_hat"],
                    "divergences": diagnostics["divergences"],
                    "mean_tree_steps": float(whole.sample_stats["n_steps"].mean()),
                    "seconds": seconds,
                }
            )
            print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rows[-1].items()})
    table = pd.DataFrame(rows)
    metrics = [
        "median_abs_rel_error",
        "coverage90",
        "mean_log_width90",
        "mean_log_predictive_density",
    ]
    summary = table.groupby(["protocol", "method"])[[*metrics, "divergences"]].mean()
    print(summary.to_string())
    error = summary["median_abs_rel_error"]
    result = {
        "benchmark": "hierarchical",
        "protocol": __doc__.split("\n\n")[1].replace("\n", " "),
        "nuts": nuts,
        "pooled": pooled or "all",
        "rows": rows,
        "summary": summary.reset_index().to_dict(orient="records"),
        "point_fits": point_fit_errors(frame),
        "ratio_vs_baseline": {
            protocol: float(error[protocol, "separate"] / error[protocol, "partial pooling"])
            for protocol in table["protocol"].unique()
        },
        "seconds": time.perf_counter() - started,
        "machine": machine(),
    }
    name = "hierarchical" + (f"_pooled_{'_'.join(pooled)}" if pooled else "")
    print("wrote", write_result(name, result))


if __name__ == "__main__":
    main()
