"""Choosing the next runs by expected information per FLOP, on epoch-chinchilla.

The split of the benchmark task (``slaws.bench_tasks``): Epoch's 240 points (the 5 highest losses
dropped), the 217 runs below 1e21 FLOPs fitted, the 23 runs from 1e21 to 1.3e22 FLOPs held out as
the menu of candidate runs, their losses hidden until a strategy pays for them. The quantity a
user cares about: the compute-optimal N at 1e25 FLOPs (6ND), through the 90% interval of its log.

Each strategy picks one run at a time, reveals its true loss, refits the posterior (NUTS, law
chinchilla, Student-t likelihood, ``--chains`` x (``--warmup`` + ``--draws``), seed 0 every time)
and records the interval's width against the FLOPs spent, until it has spent ``--budget``:

- information: the best run of ``slaws.design.next_run`` (target ``optimal_N@1e25``, expected
  reduction of the width per FLOP, ``--outcomes`` simulated outcomes), from the current posterior;
- cheapest first; largest first (by FLOPs).

Reported per strategy: the width at a few budgets, the mean width over [0, budget] (the area under
the width-vs-FLOPs step curve over the budget; lower is better), and for every pick the reduction
next_run predicted beside the one the refit realised. ``ratio_vs_baseline``: the better baseline's
mean width over information's (above 1: information narrows the interval faster per FLOP).

Two checks put the figures in context. Noise: the starting posterior refitted with ``--seeds``
seeds; the spread of its width is what one NUTS run's width is known to. Calibration under the
model: for the information strategy's first pick and for the largest run, ``--simulations``
outcomes drawn from the posterior predictive (not the true loss), each refitted; their mean
realised reduction (against the mean width over the seeds) is what next_run predicts if the law
and its noise model hold.

Writes benchmarks/results/run_selection.json (run_selection_quick.json with --quick). Needs
SLAWS_DATA_DIR (or the dataset cache).
"""

import argparse
import json
import time
import warnings

import numpy as np
import pandas as pd
from _common import machine, write_result

TARGET = "optimal_N@1e25"
COMPUTE = 1e25
HELD_OUT = 1e21  # runs at or above this many FLOPs are the candidates


def split():
    from slaws import data
    from slaws.recipes import drop_highest_loss

    frame = drop_highest_loss(data.load("epoch-chinchilla"), 5)[["N", "D", "loss"]]
    frame = pd.DataFrame(frame.to_dict("list"))  # plain: index labels name the runs
    cost = 6 * frame["N"] * frame["D"]
    pool = frame[cost >= HELD_OUT].assign(cost=cost[cost >= HELD_OUT])
    return frame[cost < HELD_OUT].reset_index(drop=True), pool


def posterior(runs, args, seed=0):
    """NUTS on ``runs`` and the 90% interval width of log N_opt(1e25) from its draws."""
    from slaws import allocation, bayes, design

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayes.PosteriorWarning)  # recorded below instead
        tree = bayes.sample(
            "chinchilla",
            runs,
            draws=args.draws,
            warmup=args.warmup,
            chains=args.chains,
            seed=seed,
        )
    log_n = allocation.optimal_draws("chinchilla", tree, [COMPUTE])["log_N"][:, 0]
    lo, hi = design.interval(log_n, 0.9)
    diagnostics = json.loads(tree.attrs["slaws"])["diagnostics"]
    return tree, hi - lo, diagnostics


def rank(tree, remaining, args, step):
    """next_run's table for the remaining candidates (index labels as rows)."""
    from slaws import design

    menu = pd.DataFrame(remaining[["N", "D", "cost"]].to_dict("list"), index=remaining.index)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", design.DesignWarning)
        table = design.next_run(tree, menu, TARGET, outcomes=args.outcomes, seed=step)
    return table.set_index("row"), [str(w.message) for w in caught]


PICKS = {
    "information": lambda table, remaining: table.index[0],  # next_run's best per FLOP
    "cheapest": lambda table, remaining: remaining["cost"].idxmin(),
    "largest": lambda table, remaining: remaining["cost"].idxmax(),
}


def run_strategy(name, fitted, pool, start, args):
    tree, width, _ = start
    remaining, revealed = pool.copy(), []
    steps = [{"spent": 0.0, "width": width}]
    spent = 0.0
    while len(remaining) and spent < args.budget:
        t0 = time.perf_counter()
        table, notes = rank(tree, remaining, args, len(revealed))
        pick = PICKS[name](table, remaining)
        predicted = table.loc[pick]
        revealed.append(pick)
        remaining = remaining.drop(pick)
        spent += float(pool.loc[pick, "cost"])
        runs = pd.concat([fitted, pool.loc[revealed, ["N", "D", "loss"]]], ignore_index=True)
        tree, after, diagnostics = posterior(runs, args)
        steps.append(
            {
                "run": int(pick),
                "N": float(pool.loc[pick, "N"]),
                "D": float(pool.loc[pick, "D"]),
                "cost": float(pool.loc[pick, "cost"]),
                "spent": spent,
                "width": after,
                "predicted_reduction": float(predicted["reduction"]),
                "predicted_se": float(predicted["expected_width_se"]),
                "realised_reduction": steps[-1]["width"] - after,
                "predicted_rank": int(predicted["rank"]),
                "ess_median": float(predicted["ess_median"]),
                "design_warnings": notes,
                "posterior_warnings": diagnostics["warnings"],
            }
        )
        print(
            f"{name:>11} {len(revealed):2d}: run {pick:3d} N={steps[-1]['N']:.3g} "
            f"C={steps[-1]['cost']:.3g} spent {spent:.3g}  width {steps[-2]['width']:.4f} -> "
            f"{after:.4f} (predicted {-steps[-1]['predicted_reduction']:+.4f}, rank "
            f"{steps[-1]['predicted_rank']})  {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
    return steps


def simulated_reductions(tree, fitted, candidate, baseline, args):
    """Reductions of the width when ``candidate``'s loss is drawn from the posterior predictive
    (a draw, then the Student-t noise with its sigma) instead of revealed, each refitted."""
    import jax

    from slaws import allocation, get_law

    law = get_law("chinchilla")
    draws = allocation.parameter_draws(tree, law)
    sigma = tree["posterior"]["sigma"].values.reshape(-1)
    with jax.enable_x64(True):
        mu = np.asarray(law.log_loss(draws, {"N": candidate["N"], "D": candidate["D"]}))
    rng = np.random.default_rng(int(candidate.name))
    out = []
    for _ in range(args.simulations):
        s = rng.integers(len(mu))
        loss = np.exp(mu[s] + sigma[s] * rng.standard_t(4))
        run = pd.DataFrame({"N": [candidate["N"]], "D": [candidate["D"]], "loss": [loss]})
        out.append(baseline - posterior(pd.concat([fitted, run], ignore_index=True), args)[1])
    return out


def width_at(steps, budget):
    """The width after the last run paid for within ``budget``."""
    return [s["width"] for s in steps if s["spent"] <= budget][-1]


def mean_width(steps, budget):
    """The mean over [0, budget] of the width-vs-FLOPs step curve."""
    edges = [s["spent"] for s in steps if s["spent"] < budget] + [budget]
    widths = [s["width"] for s in steps if s["spent"] < budget]
    return float(np.dot(np.diff(edges), widths) / budget)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=3e22, help="FLOPs each strategy spends")
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--outcomes", type=int, default=128)
    parser.add_argument("--seeds", type=int, default=4, help="refits of the start (noise)")
    parser.add_argument("--simulations", type=int, default=6, help="outcomes per checked run")
    parser.add_argument("--quick", action="store_true", help="2 x (300 + 300), budget 1.5e22")
    args = parser.parse_args()
    if args.quick:
        args.budget, args.draws, args.warmup, args.chains = 1.5e22, 300, 300, 2
        args.seeds, args.simulations = 2, 2

    t_start = time.perf_counter()
    fitted, pool = split()
    print(
        f"fitted {len(fitted)} runs below {HELD_OUT:.0e} FLOPs; {len(pool)} candidates, "
        f"{pool['cost'].sum():.3g} FLOPs in all; budget {args.budget:.3g}",
        flush=True,
    )
    start = posterior(fitted, args)
    seeds = [start[1]] + [posterior(fitted, args, seed)[1] for seed in range(1, args.seeds)]
    baseline = float(np.mean(seeds))
    print(
        f"width of log N_opt(1e25) now: {start[1]:.4f} (seeds 0-{args.seeds - 1}: mean "
        f"{baseline:.4f}, sd {np.std(seeds, ddof=1):.4f})",
        flush=True,
    )
    strategies = {name: run_strategy(name, fitted, pool, start, args) for name in PICKS}

    checks = {}
    table, _ = rank(start[0], pool, args, 0)  # what every strategy saw first
    for label, steps in (
        ("information", strategies["information"]),
        ("largest", strategies["largest"]),
    ):
        run = steps[1]["run"]
        realised = simulated_reductions(start[0], fitted, pool.loc[run], baseline, args)
        checks[label] = {
            "run": run,
            "predicted_reduction": float(table.loc[run, "reduction"]),
            "simulated_reductions": realised,
            "simulated_mean": float(np.mean(realised)),
            "simulated_se": float(np.std(realised, ddof=1) / np.sqrt(len(realised))),
            "true_loss_reduction": baseline - steps[1]["width"],
        }
        c = checks[label]
        print(
            f"check: {label}'s first pick (run {run}): predicted {c['predicted_reduction']:.4f}, "
            f"simulated outcomes {c['simulated_mean']:.4f} +- {c['simulated_se']:.4f}, true loss "
            f"{c['true_loss_reduction']:.4f}",
            flush=True,
        )

    levels = [b for b in (5e21, 1e22, 2e22, 3e22) if b < args.budget] + [args.budget]
    summary = {}
    for name, steps in strategies.items():
        picks = steps[1:]
        summary[name] = {
            "runs": len(picks),
            "spent": steps[-1]["spent"],
            "mean_width": mean_width(steps, args.budget),
            "width_at": {f"{b:.0e}": width_at(steps, b) for b in levels},
            "predicted_reduction": float(sum(s["predicted_reduction"] for s in picks)),
            "realised_reduction": float(sum(s["realised_reduction"] for s in picks)),
        }
    info = summary["information"]["mean_width"]
    best_baseline = min(summary[name]["mean_width"] for name in ("cheapest", "largest"))
    seconds = time.perf_counter() - t_start

    print(f"\nwidth of the 90% interval of log N_opt(1e25) (start {start[1]:.4f})")
    header = "strategy     runs   spent    mean width  " + "  ".join(f"@{b:.0e}" for b in levels)
    print(header)
    for name, s in summary.items():
        widths = "  ".join(f"{s['width_at'][f'{b:.0e}']:6.4f}" for b in levels)
        print(f"{name:<11} {s['runs']:5d}  {s['spent']:.3g}  {s['mean_width']:10.4f}  {widths}")
    print(f"ratio (better baseline / information, mean width): {best_baseline / info:.3f}")
    print(f"wall time {seconds:.0f} s")

    result = {
        "machine": machine(),
        "settings": {
            "target": TARGET,
            "held_out": f"C >= {HELD_OUT:.0e} FLOPs ({len(pool)} runs)",
            "fitted_runs": len(fitted),
            "budget": args.budget,
            "nuts": f"{args.chains} x ({args.warmup} + {args.draws}), student_t, seed 0",
            "outcomes": args.outcomes,
            "quick": args.quick,
        },
        "start_width": start[1],
        "start_width_seeds": seeds,
        "start_width_sd": float(np.std(seeds, ddof=1)),
        "calibration": checks,
        "summary": summary,
        "steps": strategies,
        "baseline": "the better of cheapest-first and largest-first, by mean width over the budget",
        "ratio_vs_baseline": round(best_baseline / info, 3),
        "seconds": round(seconds, 1),
    }
    path = write_result("run_selection_quick" if args.quick else "run_selection", result)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
