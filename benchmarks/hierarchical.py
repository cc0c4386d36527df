"""Partial pooling across families against separate fits, on real runs (Gadre et al. 2024).

gadre-overtrain has three families, one per training set (RedPajama, C4, RefinedWeb), of open_lm
models from 10.6M to 6.9B parameters (C4 validation loss). For each family in turn, that family
keeps only the five small runs Gadre et al. fit (their Table 2 protocol) while the other two keep
every run below 1e9 parameters; every run of the family at 1.4B and 6.9B parameters is held out.
Three ways to forecast the held-out runs, each a NUTS posterior of the Chinchilla law:

- separate: the family's five runs alone (what a user fitting one family gets);
- complete pooling: every run in the training set as if from one family;
- partial pooling: ``slaws.hierarchical.sample`` over the three families.

Reported per method: the median absolute relative error of the posterior-median forecast, the
coverage of the 90% predictive intervals (goal: near 90%), their mean width (log scale), and the
mean log predictive density of the held-out losses (higher is better). The baseline a user would
otherwise have is the separate fit; ``ratio_vs_baseline`` is its median error over partial
pooling's.

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


def split(frame: pd.DataFrame, target: str):
    """Training runs (the target family's five Gadre runs, the others' runs below 1e9
    parameters) and the target family's held-out runs (1.4B and 6.9B)."""
    from slaws.bench_tasks import GADRE_FIT

    mine = frame["family"] == target
    gadre = np.zeros(len(frame), bool)
    for config, m in GADRE_FIT:
        gadre |= (frame["config"] == config) & (frame["M"] == m)
    train = (mine & gadre) | (~mine & (frame["N"] < 1e9))
    test = mine & (frame["N"] >= 1e9)
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
    for target in FAMILIES:
        train, test = split(frame, target)
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
                    "family": FAMILIES[target],
                    "method": method,
                    "train_runs_of_family": len(mine),
                    "train_runs": len(train) if method != "separate" else len(mine),
                    "held_out": len(test),
                    **score(tree, test),
                    "max_r_hat": diagnostics["max_r_hat"],
                    "divergences": diagnostics["divergences"],
                    "seconds": seconds,
                }
            )
            print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rows[-1].items()})
    table = pd.DataFrame(rows)
    summary = table.groupby("method")[
        ["median_abs_rel_error", "coverage90", "mean_log_width90", "mean_log_predictive_density"]
    ].mean()
    print(summary.to_string())
    baseline = summary.loc["separate", "median_abs_rel_error"]
    result = {
        "benchmark": "hierarchical",
        "protocol": __doc__.split("\n\n")[1].replace("\n", " "),
        "nuts": nuts,
        "pooled": pooled or "all",
        "rows": rows,
        "summary": summary.reset_index().to_dict(orient="records"),
        "ratio_vs_baseline": float(
            baseline / summary.loc["partial pooling", "median_abs_rel_error"]
        ),
        "seconds": time.perf_counter() - started,
        "machine": machine(),
    }
    name = "hierarchical" + (f"_pooled_{'_'.join(pooled)}" if pooled else "")
    print("wrote", write_result(name, result))


if __name__ == "__main__":
    main()
