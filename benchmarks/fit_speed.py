"""Multi-start fitting speed: slaws vs the SciPy loop the published code runs.

1. epoch2024 on epoch-chinchilla (240 points, 4,500 starts): slaws against SciPy L-BFGS-B looping
   over the same starts with numerical gradients, as Epoch's notebook (cell 18) does. slaws is
   timed three ways: a fresh process with an empty compilation cache (cold: import, data load,
   compilation and fit), a fresh process whose persistent cache is warm (what a repeated
   ``slaws fit`` costs), and a second fit in the same process.
2. busbridge2025 on seeded synthetic distillation data laid out like the paper's experiments
   (~690 points, 216,000 starts, 9 parameters); its objective is compared with the objective at the
   true parameters, which the global optimum can only undercut.

``--quick`` times SciPy on a seeded random 10% of the starts and scales to 4,500, saying so.
Writes benchmarks/results/fit_speed.json. Needs SLAWS_DATA_DIR (or the dataset cache).
"""

import argparse
import itertools
import os
import tempfile
import time

import numpy as np
import scipy.optimize
from _common import fresh_process, machine, write_result

SLAWS_FIT = """
import json
import slaws
r = slaws.fit("chinchilla", "epoch-chinchilla", recipe="epoch2024")
t1 = time.perf_counter()
r2 = slaws.fit("chinchilla", "epoch-chinchilla", recipe="epoch2024")
t2 = time.perf_counter()
print(json.dumps({"total": t1 - t0, "fit": r.seconds, "again": t2 - t1, "result": r.to_dict()}))
"""


def epoch_grid():
    """Epoch's 4,500 starts (log A, log B, log E, alpha, beta)."""
    return list(
        itertools.product(
            np.arange(0, 30, 5.0),  # a
            np.arange(0, 30, 5.0),  # b
            np.arange(-1, 1.5, 0.5),  # e
            np.arange(0, 2.5, 0.5),  # alpha
            np.arange(0, 2.5, 0.5),  # beta
        )
    )


def epoch_scipy(starts, log_n, log_d, log_l, delta=1e-3):
    """Epoch's notebook: L-BFGS-B from each start, numerical gradients, best successful run."""

    def objective(theta):
        a, b, e, alpha, beta = theta
        pred = np.logaddexp(np.logaddexp(a - alpha * log_n, b - beta * log_d), e)
        r = np.abs(pred - log_l)
        return np.sum(np.where(r <= delta, 0.5 * r * r, delta * (r - 0.5 * delta)))

    best = (np.inf, None)
    t0 = time.perf_counter()
    for start in starts:
        res = scipy.optimize.minimize(objective, start, method="L-BFGS-B")
        if res.success and res.fun < best[0]:
            best = (res.fun, res.x)
    return time.perf_counter() - t0, best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="time SciPy on 10%% of the starts")
    parser.add_argument("--skip-distillation", action="store_true")
    args = parser.parse_args()

    import slaws
    from slaws.recipes import drop_highest_loss

    frame = drop_highest_loss(slaws.load("epoch-chinchilla"), 5)
    log_n, log_d = np.log(frame["N"].to_numpy()), np.log(frame["D"].to_numpy())
    log_l = np.log(frame["loss"].to_numpy())
    grid = epoch_grid()
    fraction = 1.0
    if args.quick:
        rng = np.random.default_rng(0)
        grid = [grid[i] for i in rng.choice(len(grid), 450, replace=False)]
        fraction = 450 / 4500
    print(f"SciPy L-BFGS-B over {len(grid):,} starts ...", flush=True)
    scipy_seconds, (scipy_best, _) = epoch_scipy(grid, log_n, log_d, log_l)
    scipy_full = scipy_seconds / fraction

    with tempfile.TemporaryDirectory() as cache:
        cold = fresh_process(SLAWS_FIT, cache)
        warm = fresh_process(SLAWS_FIT, cache)
    ours = cold["result"]
    epoch = {
        "scipy_seconds_measured": round(scipy_seconds, 2),
        "scipy_starts_timed": len(grid),
        "scipy_seconds_4500": round(scipy_full, 2),
        "scipy_scaled": args.quick,
        "scipy_objective": scipy_best,
        "slaws_cold_process_seconds": round(cold["total"], 3),
        "slaws_warm_cache_process_seconds": round(warm["total"], 3),
        "slaws_fit_seconds_cold": round(cold["fit"], 3),
        "slaws_fit_seconds_in_process_again": round(cold["again"], 3),
        "slaws_objective": ours["objective"],
        "slaws_params": ours["params"],
        "ratio_cold": round(scipy_full / cold["total"], 1),
        "ratio_warm_cache": round(scipy_full / warm["total"], 1),
        "ratio_in_process": round(scipy_full / cold["again"], 1),
    }
    rows = [
        (
            "SciPy L-BFGS-B loop" + (" (scaled from 450)" if args.quick else ""),
            scipy_full,
            scipy_best,
        ),
        ("slaws, fresh process, cold compile", cold["total"], ours["objective"]),
        ("slaws, fresh process, warm cache", warm["total"], ours["objective"]),
        ("slaws, same process, again", cold["again"], ours["objective"]),
    ]
    print(f"\nepoch2024, 4,500 starts, 240 points ({os.cpu_count()} cores)")
    print(f"{'method':45s} {'seconds':>9s} {'speed-up':>9s} {'objective':>15s}")
    for name, sec, obj in rows:
        print(f"{name:45s} {sec:9.2f} {scipy_full / sec:8.1f}x {obj:15.10g}")

    result = {
        "benchmark": "fit_speed",
        "baseline": "scipy.optimize.minimize(method='L-BFGS-B') looped over the 4,500 epoch2024 "
        "starts, numerical gradients (Epoch's notebook)",
        "ratio_vs_baseline": epoch["ratio_cold"],
        "ratio_definition": "SciPy seconds / slaws seconds for a fresh process with an empty "
        "compilation cache (import, data load, compilation, fit)",
        "machine": machine(),
        "quick": args.quick,
        "epoch2024": epoch,
    }

    if not args.skip_distillation:
        result["busbridge2025_distillation"] = distillation()
    path = write_result("fit_speed", result)
    print(f"\nwrote {path}")


def distillation():
    import jax

    import slaws
    from slaws.objectives import Objective
    from slaws.presets import get_preset
    from slaws.synthetic import distillation_like

    frame = distillation_like(noise=0.005, seed=0)
    truth = get_preset("busbridge2025")["params"]
    print(
        f"\nbusbridge2025 distillation: 216,000 starts on {len(frame)} synthetic points", flush=True
    )
    t0 = time.perf_counter()
    fitted = slaws.fit("distillation", frame, recipe="busbridge2025", progress=print)
    seconds = time.perf_counter() - t0
    law = slaws.get_law("distillation")
    with jax.enable_x64(True):
        inputs = {k: frame[k].to_numpy() for k in ("N", "D", "L_T")}
        r = np.asarray(law.log_loss(truth, inputs)) - np.log(frame["loss"].to_numpy())
        at_truth = float(Objective("huber", delta=1e-4).value(r, np.zeros(0)))
    print(
        f"{seconds:.1f} s (goal <= 120 s); objective {fitted.objective:.6g}, "
        f"at the true parameters {at_truth:.6g}"
    )
    return {
        "seconds": round(seconds, 2),
        "goal_seconds": 120,
        "n_points": fitted.n_points,
        "n_starts": fitted.n_starts,
        "objective": fitted.objective,
        "objective_at_truth": at_truth,
        "status": fitted.status,
        "params": fitted.params,
    }


if __name__ == "__main__":
    main()
