"""Uncertainty on epoch-chinchilla (epoch2024 selection, 240 points), method by method.

Side by side in one run:
1. NUTS, 4 chains x (1,000 warm-up + 1,000 draws), Student-t likelihood, in a fresh process with an
   empty compilation cache (wall time includes import, data load, the starting multi-start fit and
   compilation), and again in a fresh process whose persistent cache is warm (a repeated
   ``slaws fit --method nuts``);
2. SVI (Laplace guide, 5,000 Adam steps, 4,000 draws) and the multivariate-normal guide;
3. the vmapped bootstrap, 4,000 refits (Epoch's procedure: Huber, delta 1e-3, summed), timed
   like NUTS: a fresh process with an empty compilation cache, one with a warm cache (both from
   before any import, the full-data multi-start fit included), a repeated call in that process,
   and that call less a repeated fit (the refits alone);
4. the baseline, Epoch's procedure in SciPy: L-BFGS-B from ``--scipy-starts`` seeded starts of
   the 4,500-start grid (as ``fit_speed.py``), then BFGS refits one by one from the full-data
   optimum, ``--scipy-refits`` of them; both times are scaled to the full counts, which the
   output says.

ESS per second: NUTS's minimum bulk ESS over parameters per wall second; SVI and the bootstrap
give independent draws, so their ESS is their number of draws (of an approximation, for SVI).
Ratios compare like with like: the SciPy fit and refits over slaws's whole bootstrap call (cold
process, warm cache, compiled), and the SciPy refits over slaws's refits alone.
``ratio_vs_baseline`` is the warm-cache one (a repeated ``slaws fit --method bootstrap``).

Writes benchmarks/results/uncertainty_speed.json. Needs SLAWS_DATA_DIR (or the dataset cache).
"""

import argparse
import tempfile
import time

import numpy as np
import scipy.optimize
from _common import fresh_process, machine, write_result
from fit_speed import epoch_grid, epoch_scipy

NUTS_RUN = """
import json, warnings
from slaws import bayes
warnings.simplefilter("ignore")
tree = bayes.sample("chinchilla", "epoch-chinchilla", recipe="epoch2024", seed=0)
total = time.perf_counter() - t0
info = json.loads(tree.attrs["slaws"])
print(json.dumps({"total": total, "sample": info["seconds"], "diagnostics": info["diagnostics"]}))
"""


BOOTSTRAP_RUN = """
import json
from slaws.fitting import bootstrap
point, table = bootstrap("chinchilla", "epoch-chinchilla", recipe="epoch2024", resamples=4000)
total = time.perf_counter() - t0
t1 = time.perf_counter()
bootstrap("chinchilla", "epoch-chinchilla", recipe="epoch2024", resamples=4000)
repeat = time.perf_counter() - t1
from slaws.fitting import fit
t1 = time.perf_counter()
fit("chinchilla", "epoch-chinchilla", recipe="epoch2024")
fit_again = time.perf_counter() - t1
se = {k: float(table[k].std()) for k in ("alpha", "beta", "E")}
converged = float((table["status"] == "converged").mean())
out = {"total": total, "repeat": repeat, "fit_again": fit_again}
print(json.dumps(out | {"se": se, "converged": converged}))
"""


def scipy_bootstrap(frame, start, refits, seed=0, delta=1e-3):
    """Epoch's bootstrap: resample rows, refit with BFGS from the full-data optimum, one by one."""
    log_n, log_d = np.log(frame["N"].to_numpy()), np.log(frame["D"].to_numpy())
    log_l = np.log(frame["loss"].to_numpy())
    rng = np.random.default_rng(seed)
    x0 = np.array(
        [np.log(start["A"]), np.log(start["B"]), np.log(start["E"]), start["alpha"], start["beta"]]
    )
    out = []
    t0 = time.perf_counter()
    for _ in range(refits):
        idx = rng.integers(0, len(log_l), len(log_l))

        def objective(theta, idx=idx):
            a, b, e, alpha, beta = theta
            pred = np.logaddexp(np.logaddexp(a - alpha * log_n[idx], b - beta * log_d[idx]), e)
            r = np.abs(pred - log_l[idx])
            return np.sum(np.where(r <= delta, 0.5 * r * r, delta * (r - 0.5 * delta)))

        out.append(scipy.optimize.minimize(objective, x0, method="BFGS").x)
    return time.perf_counter() - t0, np.array(out)


def main():
    import warnings

    from slaws import bayes, data
    from slaws.fitting import fit
    from slaws.recipes import get_recipe

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scipy-refits", type=int, default=200)
    parser.add_argument("--scipy-starts", type=int, default=450)
    args = parser.parse_args()
    warnings.simplefilter("ignore", bayes.PosteriorWarning)
    rows = {}

    with tempfile.TemporaryDirectory() as cache:
        cold = fresh_process(NUTS_RUN, cache)
        warm = fresh_process(NUTS_RUN, cache)
    ess = cold["diagnostics"]["min_ess_bulk"]
    for label, run in (("nuts_cold", cold), ("nuts_warm_cache", warm)):
        rows[label] = {
            "seconds": round(run["total"], 2),
            "seconds_in_sample": round(run["sample"], 2),
            "min_ess_bulk": round(run["diagnostics"]["min_ess_bulk"], 1),
            "ess_per_second": round(run["diagnostics"]["min_ess_bulk"] / run["total"], 1),
            "max_r_hat": round(run["diagnostics"]["max_r_hat"], 4),
            "divergences": run["diagnostics"]["divergences"],
        }
        print(f"{label}: {rows[label]}", flush=True)

    for guide in ("laplace", "multivariate_normal"):
        t0 = time.perf_counter()
        bayes.sample(
            "chinchilla",
            "epoch-chinchilla",
            recipe="epoch2024",
            method="svi",
            svi_guide=guide,
            draws=4000,
        )
        seconds = time.perf_counter() - t0
        rows[f"svi_{guide}"] = {
            "seconds": round(seconds, 2),
            "ess_per_second": round(4000 / seconds, 1),
        }
        print(f"svi_{guide}: {rows[f'svi_{guide}']}", flush=True)

    with tempfile.TemporaryDirectory() as cache:
        boot_cold = fresh_process(BOOTSTRAP_RUN, cache)
        boot_warm = fresh_process(BOOTSTRAP_RUN, cache)
    for label, seconds in (
        ("bootstrap_cold", boot_cold["total"]),
        ("bootstrap_warm_cache", boot_warm["total"]),
        ("bootstrap_compiled", boot_warm["repeat"]),
        ("bootstrap_refits_only_compiled", boot_warm["repeat"] - boot_warm["fit_again"]),
    ):
        rows[label] = {"seconds": round(seconds, 2), "ess_per_second": round(4000 / seconds, 1)}
        print(f"{label}: {rows[label]}", flush=True)
    rows["bootstrap_compiled"] |= {"se": boot_warm["se"], "converged": boot_warm["converged"]}

    frame = get_recipe("epoch2024").apply_selection(data.load("epoch-chinchilla"))
    point = fit("chinchilla", frame, recipe="epoch2024")
    loop_seconds, refits = scipy_bootstrap(frame, point.params, args.scipy_refits)
    scaled = loop_seconds * 4000 / args.scipy_refits
    rows["bootstrap_scipy_bfgs_loop"] = {
        "seconds": round(scaled, 1),
        "timed_refits": args.scipy_refits,
        "timed_seconds": round(loop_seconds, 2),
        "note": f"{args.scipy_refits} seeded refits timed, scaled to 4,000",
        "ess_per_second": round(4000 / scaled, 1),
        "se_of_timed_subset": {
            "alpha": float(refits[:, 3].std(ddof=1)),
            "beta": float(refits[:, 4].std(ddof=1)),
            "E": float(np.exp(refits[:, 2]).std(ddof=1)),
        },
    }
    print(f"bootstrap_scipy_bfgs_loop: {rows['bootstrap_scipy_bfgs_loop']}", flush=True)
    grid = epoch_grid()
    subset = [grid[i] for i in np.random.default_rng(0).choice(len(grid), args.scipy_starts, False)]
    log_inputs = [np.log(frame[k].to_numpy()) for k in ("N", "D", "loss")]
    fit_seconds = epoch_scipy(subset, *log_inputs)[0] * len(grid) / args.scipy_starts
    whole = fit_seconds + scaled
    rows["scipy_fit_and_bootstrap"] = {
        "seconds": round(whole, 1),
        "fit_seconds": round(fit_seconds, 1),
        "note": f"L-BFGS-B from {args.scipy_starts} seeded starts of Epoch's 4,500, scaled; "
        "then the refit loop above",
    }
    print(f"scipy_fit_and_bootstrap: {rows['scipy_fit_and_bootstrap']}", flush=True)

    ratios = {  # like for like: the fit and the refits, or the refits alone
        label: round(whole / rows[label]["seconds"], 1)
        for label in ("bootstrap_cold", "bootstrap_warm_cache", "bootstrap_compiled")
    }
    ratios["refits_only_compiled"] = round(
        scaled / rows["bootstrap_refits_only_compiled"]["seconds"], 1
    )
    ratio = ratios["bootstrap_warm_cache"]
    result = {
        "machine": machine(),
        "baseline": "Epoch's procedure in SciPy: the 4,500-start L-BFGS-B fit, then 4,000 BFGS "
        "refits one by one (both timed on seeded subsets and scaled)",
        "ratio_vs_baseline": ratio,
        "ratio_vs_baseline_by_run": ratios,
        "goals": {"nuts_seconds": 20, "bootstrap_speedup": 50},
        "nuts_min_ess_bulk": ess,
        "methods": rows,
    }
    print(f"\nvmapped bootstrap vs SciPy loop: {ratios} (goal >= 50x)")
    print(
        f"NUTS cold {rows['nuts_cold']['seconds']} s, warm {rows['nuts_warm_cache']['seconds']} s"
    )
    path = write_result("uncertainty_speed", result)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
