"""Simulation-based calibration of the NUTS posteriors, beside the bootstrap's intervals.

For chinchilla (72-run IsoFLOP design) and distillation (Busbridge's 690-run layout), draws
``--datasets`` truths from ``slaws.calibration.PRIORS``, simulates a dataset from each and samples
its posterior (NUTS, 2 chains x (500 + 500)); reports how often each parameter's 90% interval
covers the truth (goal: 85-95%) and whether the truth's rank among the draws is uniform.

Baseline: the interval a user of the published recipes gets, the nonparametric bootstrap (Epoch's
procedure, Huber refits) on the first ``--bootstrap-datasets`` chinchilla datasets.
``ratio_vs_baseline`` is the bootstrap's mean absolute coverage error over NUTS's.

Writes benchmarks/results/calibration.json (or calibration_<backend>.json off CPU).
"""

import argparse
import time

import numpy as np
from _common import machine, write_result


def bootstrap_coverage(cal, frame, n, resamples, prob=0.9):
    """Coverage of the bootstrap's percentile intervals on the first ``n`` simulated datasets."""
    from slaws.fitting import bootstrap

    tail = (1 - prob) / 2
    covered = {}
    for i in range(n):
        truth = cal.datasets[cal.datasets["dataset"] == i].set_index("param")["truth"]
        data = frame.assign(loss=np.exp(cal.log_obs[i]))
        _, table = bootstrap("chinchilla", data, resamples=resamples, seed=i)
        for name in ("E", "A", "B", "alpha", "beta"):
            lo, hi = np.quantile(table[name], [tail, 1 - tail])
            covered.setdefault(name, []).append(lo <= truth[name] <= hi)
    return {k: float(np.mean(v)) for k, v in covered.items()}


def main():
    import jax

    from slaws.calibration import calibrate, design

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=200)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--bootstrap-datasets", type=int, default=100)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--laws", default="chinchilla,distillation")
    args = parser.parse_args()

    result = {"machine": machine(), "laws": {}, "prob": 0.9}
    for law in args.laws.split(","):
        t0 = time.perf_counter()
        cal = calibrate(
            law,
            n_datasets=args.datasets,
            batch=args.batch,
            progress=lambda m: print(m, flush=True),
        )
        table = cal.coverage
        per_set = cal.datasets.groupby("dataset").first()
        print(f"\n{law}: {args.datasets} datasets, {time.perf_counter() - t0:.0f} s")
        print(table.round(3).to_string())
        entry = {
            "seconds": round(cal.seconds, 1),
            "n_datasets": args.datasets,
            "coverage": table["coverage"].to_dict(),
            "se": table["se"].to_dict(),
            "rank_uniformity_p": table["rank_uniformity_p"].to_dict(),
            "within_85_95": bool(table["coverage"].between(0.85, 0.95).all()),
            "datasets_r_hat_over_1_01": int((per_set["max_r_hat"] > 1.01).sum()),
            "datasets_with_divergences": int((per_set["divergences"] > 0).sum()),
        }
        if law == "chinchilla" and args.bootstrap_datasets:
            n = min(args.bootstrap_datasets, args.datasets)
            boot = bootstrap_coverage(cal, design(law), n, args.resamples)
            nuts = cal.datasets[cal.datasets["dataset"] < n].groupby("param")["covered"].mean()
            error_boot = np.mean([abs(v - 0.9) for v in boot.values()])
            error_nuts = np.mean([abs(nuts[k] - 0.9) for k in boot])
            entry["baseline"] = {
                "method": f"bootstrap, {args.resamples} resamples, first {n} datasets",
                "coverage": boot,
                "nuts_coverage_same_datasets": {k: float(nuts[k]) for k in boot},
            }
            entry["ratio_vs_baseline"] = round(float(error_boot / max(error_nuts, 1e-3)), 2)
            print(f"bootstrap coverage on {n} datasets: {boot}")
        result["laws"][law] = entry
    chin = result["laws"].get("chinchilla", {})
    result["baseline"] = chin.get("baseline", {}).get("method", "none")
    result["ratio_vs_baseline"] = chin.get("ratio_vs_baseline")
    backend = jax.default_backend()
    path = write_result("calibration" if backend == "cpu" else f"calibration_{backend}", result)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
