"""Compute-optimal distillation: slaws's vmapped L-BFGS against the SciPy SLSQP loop the paper ran.

The problem (Busbridge et al. 2025, Eqs. 9-10): for a student of N_S parameters (``--student``,
1e9) and a budget C, minimise L_S(N_S, D_S, L_T(N_T, D_T)) over (D_S, N_T, D_T), every variable in
[1e6, 1e17], subject to C = 3 F(N_S) D_S + F(N_T) (delta_lgt D_S + 3 delta_pre D_T) with the
paper's F(N) (``flops="busbridge"``). One problem per posterior draw x budget x scenario: 4,000
draws from the busbridge2025 preset's published 90% intervals (seed 0) x 16 budgets log-spaced
over 1e20..1e26 x the 4 costed scenarios of Table 2 = 256,000 constrained problems.

1. slaws: one public ``allocation.distill`` call over all of them (it also finds the supervised
   compute-optimal teacher for the best-case rows and summarises over draws), timed in this
   process twice: the first call (tracing and XLA compilation included, not the import of JAX or
   slaws) and the same call again (compiled).
2. The baseline, what the paper did: ``scipy.optimize.minimize(method="SLSQP")`` per problem, in
   log10 variables (so all three are O(10) and bounded by [6, 17]), the budget as the equality
   constraint log10(cost) - log10(C) = 0, finite-difference gradients, maxiter 200, ftol 1e-10
   (``--scipy-ftol``), from 4 starts per problem (teacher sizes N_S and 10 N_S x two splits of the
   budget, each start meeting the budget), keeping the best successful run. ftol 1e-10, not 1e-12:
   with finite-difference gradients the loss (log L_S ~ -0.3) is resolved to ~1e-10, so at 1e-12 a
   tenth of the runs stall at the iteration limit (counted unsuccessful, some problems then have
   no successful start) and SLSQP takes about three times as long for optima within ~1e-8 in L_S.
   The loss is plain Python ``math`` (Eq. 49's log-space form), checked against slaws's law at the
   optima. SLSQP is timed on a seeded random subset of the problems (``--scipy-problems``, 200)
   and scaled to the full count, which the output says.

On that subset slaws's per-problem optima (``distill`` reports summaries over draws only) come
from the solver ``distill`` vmaps, run on the subset (untimed), and are compared:
dL_S = L_S(slaws) - L_S(SLSQP), both evaluated by slaws's law; negative means slaws found the
lower loss. Goal: >= 100x with |dL_S| <= 1e-4.
``ratio_vs_baseline`` = scaled SLSQP seconds / slaws's first-call seconds (compilation included);
``ratio_vs_baseline_second_call`` uses the second call (``distill`` caches its compiled solvers,
so that call only solves).

``--quick`` (100 draws, 4 budgets, 20 SLSQP problems) is a smoke test: it prints the summary and
writes nothing. The full run writes benchmarks/results/allocation_speed.json. Needs no dataset.
"""

import argparse
import json
import math
import time

import numpy as np
import scipy.optimize
from _common import machine, write_result

BOUNDS_LOG10 = (6.0, 17.0)
SLSQP_OPTIONS = {"ftol": 1e-10, "maxiter": 200}


# --- the SciPy baseline -----------------------------------------------------------------------


def forward(n):
    """Busbridge's F(N) (Eq. 69; rho 128, omega 12, n_ctx 4096, n_vocab 32768), as slaws.flops."""
    rho, omega, n_ctx, n_vocab = 128.0, 12.0, 4096.0, 32768.0
    sigma1, sigma2 = (rho * omega**2) ** (-1 / 3), (rho / omega) ** (1 / 3)
    return 2 * n * (1 + sigma1 * n_ctx * n ** (-1 / 3) + sigma2 * n_vocab * n ** (-2 / 3))


def _lse(a, b):
    m = max(a, b)
    return m + math.log1p(math.exp(-abs(a - b)))


def _softplus(x):
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def log_student_loss(p, log_ns, log_ds, log_nt, log_dt):
    """log L_S of Busbridge Eq. 8 in the log-space form of Eq. 49 (natural logs of the inputs)."""

    def supervised(log_n, log_d):
        inner = _lse(p["logA"] - p["alpha"] * log_n, p["logB"] - p["beta"] * log_d)
        return _lse(p["logE"], p["gamma"] * inner)

    log_lt = supervised(log_nt, log_dt)
    gap = log_lt - supervised(log_ns, log_ds) - p["logd1"]
    log_break = -p["c1"] * p["f1"] * _softplus(gap / p["f1"])
    student = p["gamma_prime"] * _lse(
        p["logA_prime"] - p["alpha_prime"] * log_ns, p["logB_prime"] - p["beta_prime"] * log_ds
    )
    return _lse(log_lt, -p["c0"] * log_lt + log_break + student)


def _scalars(draw):
    p = {k: float(v) for k, v in draw.items()}
    for k in ("E", "A", "B", "A_prime", "B_prime", "d1"):
        p["log" + k] = math.log(p[k])
    return p


def _starts(n_s, c, delta_lgt, delta_pre):
    """4 starts (log10 D_S, N_T, D_T), each meeting the budget (clipped to the bounds):
    N_T in {N_S, 10 N_S} x {20% or 60% of C on teacher pretraining when it is costed, else
    D_T in {20 N_T, 1e15}}; D_S takes what is left."""
    lo, hi = BOUNDS_LOG10
    f_s = forward(n_s)
    out = []
    for n_t in (n_s, 10 * n_s):
        f_t = forward(n_t)
        for k in range(2):
            if delta_pre > 0:
                share = (0.2, 0.6)[k]
                d_t = share * c / (3 * delta_pre * f_t)
            else:
                share, d_t = 0.0, (20 * n_t, 1e15)[k]
            d_s = (1 - share) * c / (3 * f_s + delta_lgt * f_t)
            out.append(np.clip(np.log10([d_s, n_t, d_t]), lo, hi))
    return out


def slsqp_one(p, n_s, c, delta_lgt, delta_pre):
    """The paper's solver for one problem: SLSQP in log10 variables from 4 starts, the best
    successful run. Returns (log L_S, (log10 D_S, N_T, D_T), constraint residual, successes)."""
    ln10 = math.log(10.0)
    log_ns, f_s, log10_c = math.log(n_s), forward(n_s), math.log10(c)

    def objective(z):
        return log_student_loss(p, log_ns, z[0] * ln10, z[1] * ln10, z[2] * ln10)

    def budget(z):
        d_s, n_t, d_t = 10.0 ** z[0], 10.0 ** z[1], 10.0 ** z[2]
        cost = 3 * f_s * d_s + forward(n_t) * (delta_lgt * d_s + 3 * delta_pre * d_t)
        return math.log10(cost) - log10_c

    best, successes = None, 0
    for z0 in _starts(n_s, c, delta_lgt, delta_pre):
        res = scipy.optimize.minimize(
            objective,
            z0,
            method="SLSQP",
            bounds=[BOUNDS_LOG10] * 3,
            constraints=[{"type": "eq", "fun": budget}],
            options=SLSQP_OPTIONS,
        )
        if res.success:
            successes += 1
            if best is None or res.fun < best.fun:
                best = res
    if best is None:
        return math.nan, (math.nan,) * 3, math.nan, 0
    return float(best.fun), tuple(best.x), abs(budget(best.x)), successes


# --- slaws -------------------------------------------------------------------------------------


def per_problem(draws, n_s, compute, deltas):
    """slaws's optimum of each problem (one draw, budget and scenario per row), by the solver
    ``distill`` vmaps."""
    import jax

    from slaws import allocation
    from slaws.flops import get_flops

    solve = jax.jit(jax.vmap(allocation.distill_solver(get_flops("busbridge"))))
    with jax.enable_x64(True):
        log_ns = np.full(len(compute), math.log(n_s))
        out = solve(draws, log_ns, np.log(compute), deltas[:, 0], deltas[:, 1])
        return {k: np.asarray(v) for k, v in out.items()}


def law_log_loss(draws, n_s, d_s, n_t, d_t):
    """slaws's distillation law, one row per problem."""
    import jax

    from slaws.laws import distillation

    with jax.enable_x64(True):
        x = {"N": n_s, "D": d_s, "N_T": n_t, "D_T": d_t}
        return np.asarray(distillation.log_loss(draws, x))


def log10_cost(n_s, d_s, n_t, d_t, delta_lgt, delta_pre):
    f_s, f_t = forward(n_s), forward(n_t)
    return np.log10(3 * f_s * d_s + f_t * (delta_lgt * d_s + 3 * delta_pre * d_t))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 draws, 4 budgets, 20 SLSQP")
    parser.add_argument("--draws", type=int, help="posterior draws (4,000)")
    parser.add_argument("--budgets", type=int, help="budgets log-spaced over 1e20..1e26 (16)")
    parser.add_argument("--scipy-problems", type=int, help="problems SLSQP is timed on (200)")
    parser.add_argument("--student", type=float, default=1e9, help="N_S (1e9)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws and the subset")
    parser.add_argument("--scipy-ftol", type=float, default=1e-10, help="SLSQP ftol (1e-10)")
    args = parser.parse_args()
    SLSQP_OPTIONS["ftol"] = args.scipy_ftol
    defaults = (100, 4, 20) if args.quick else (4000, 16, 200)
    n_draws = args.draws or defaults[0]
    n_budgets = args.budgets or defaults[1]
    n_scipy = args.scipy_problems or defaults[2]

    import jax

    from slaws import allocation
    from slaws.law import get_law

    scenarios = list(allocation.SCENARIOS)
    compute = np.logspace(20, 26, n_budgets)
    n_s = float(args.student)
    n_problems = n_draws * n_budgets * len(scenarios)
    draws = allocation.parameter_draws(
        "busbridge2025", get_law("distillation"), sample=n_draws, seed=args.seed
    )
    print(
        f"{n_draws:,} draws x {n_budgets} budgets x {len(scenarios)} scenarios = "
        f"{n_problems:,} problems, N_S = {n_s:g}, {jax.default_backend()} backend",
        flush=True,
    )

    seconds, frames = [], []
    for label in ("first call (compilation included)", "second call"):
        t0 = time.perf_counter()
        frames.append(
            allocation.distill(draws, [n_s], compute, scenarios=scenarios, flops="busbridge")
        )
        seconds.append(time.perf_counter() - t0)
        print(f"slaws distill, {label}: {seconds[-1]:.2f} s", flush=True)
    frame = frames[-1]
    status_rows = {k: int(v) for k, v in frame["status"].value_counts().items()}
    not_ok = [
        {"scenario": r.scenario, "compute": float(r.compute), "status": r.status}
        | {"at_bound": r.at_bound}
        for r in frame.itertuples()
        if r.status != "ok"
    ]
    # The compared subset: (draw, scenario, budget) drawn without replacement, seeded.
    n_scipy = min(n_scipy, n_problems)
    pick = np.random.default_rng(args.seed).choice(n_problems, n_scipy, replace=False)
    draw_i, case_i = np.divmod(pick, len(scenarios) * n_budgets)
    scen_i, budget_i = np.divmod(case_i, n_budgets)
    sub = {k: v[draw_i] for k, v in draws.items()}
    deltas = np.array([allocation.SCENARIOS[scenarios[s]] for s in scen_i])
    c = compute[budget_i]

    print(f"SciPy SLSQP on {n_scipy} seeded problems of {n_problems:,} ...", flush=True)
    results = []
    t0 = time.perf_counter()
    for j in range(n_scipy):
        p = _scalars({k: v[j] for k, v in sub.items()})
        results.append(slsqp_one(p, n_s, c[j], *deltas[j]))
    scipy_seconds = time.perf_counter() - t0
    scipy_scaled = scipy_seconds * n_problems / n_scipy

    ours = per_problem(sub, n_s, c, deltas)
    z = np.array([r[1] for r in results])  # log10 D_S, N_T, D_T
    solved = np.isfinite(z[:, 0])
    ls_scipy = np.exp(law_log_loss(sub, n_s, *(10.0**z.T)))  # slaws's law at SLSQP's optimum
    ls_slaws = np.exp(ours["log_student_loss"])
    d_ls = ls_slaws - ls_scipy
    own = np.array([r[0] for r in results])
    objective_check = float(np.nanmax(np.abs(own - np.log(ls_scipy)))) if solved.any() else None
    slaws_x = [np.exp(ours[k]) for k in ("log_D_S", "log_N_T", "log_D_T")]
    slaws_budget = np.abs(log10_cost(n_s, *slaws_x, *deltas.T) - np.log10(c))
    subset_status = allocation._status(ours["feasible"], ours["grad_norm"])
    abs_d = np.abs(d_ls[solved])

    def stats(mask):
        a = np.abs(d_ls[mask & solved])
        if not len(a):
            return {"problems": int(mask.sum()), "solved_by_scipy": 0}
        signed = d_ls[mask & solved]
        return {
            "problems": int(mask.sum()),
            "solved_by_scipy": len(a),
            "max_abs_dL_S": float(a.max()),
            "median_abs_dL_S": float(np.median(a)),
            "share_within_1e-4": float((a <= 1e-4).mean()),
            "min_dL_S": float(signed.min()),
            "max_dL_S": float(signed.max()),
        }

    agreement = stats(np.ones(n_scipy, bool))
    by_scenario = {s: stats(scen_i == i) for i, s in enumerate(scenarios)}
    order = np.argsort(-np.where(solved, d_ls, -np.inf))
    worst = [
        {
            "scenario": scenarios[scen_i[j]],
            "compute": float(c[j]),
            "draw": int(draw_i[j]),
            "dL_S": float(d_ls[j]),
            "L_S_slaws": float(ls_slaws[j]),
            "L_S_scipy": float(ls_scipy[j]),
            "slaws_D_S_N_T_D_T": [float(x[j]) for x in slaws_x],
            "scipy_D_S_N_T_D_T": [float(10.0**v) for v in z[j]],
            "slaws_status": str(subset_status[j]),
        }
        for j in order[:5]
        if solved[j] and d_ls[j] > 0
    ]

    first, second = seconds
    result = {
        "benchmark": "allocation_speed",
        "baseline": "scipy.optimize.minimize(method='SLSQP') looped over the problems (the paper's "
        "solver): log10 variables, Eq. 9 as the equality constraint, bounds [1e6, 1e17], "
        f"finite-difference gradients, ftol {args.scipy_ftol:g}, maxiter 200, best successful of "
        "4 starts",
        "ratio_vs_baseline": round(scipy_scaled / first, 1),
        "ratio_definition": "scaled SLSQP seconds for all problems / slaws distill seconds, first "
        "call in the process (tracing and compilation included, imports not)",
        "ratio_vs_baseline_second_call": round(scipy_scaled / second, 1),
        "goals": {"speedup": 100, "max_abs_dL_S": 1e-4},
        "machine": machine(),
        "quick": args.quick,
        "problem": {
            "student_params": n_s,
            "draws": n_draws,
            "draws_source": f"busbridge2025 published 90% intervals, seed {args.seed}",
            "budgets": compute.tolist(),
            "scenarios": scenarios,
            "problems": n_problems,
            "flops": "busbridge",
        },
        "slaws": {
            "first_call_seconds": round(first, 3),
            "second_call_seconds": round(second, 3),
            "problems_per_second_first_call": round(n_problems / first, 1),
            "problems_per_second_second_call": round(n_problems / second, 1),
            "status_rows": status_rows,
            "rows_not_ok": not_ok,
            "rows": len(frame),
            "status_note": "a row is a (scenario, budget); its status is the worst over draws",
        },
        "scipy": {
            "seconds_scaled": round(scipy_scaled, 1),
            "problems_timed": n_scipy,
            "seconds_timed": round(scipy_seconds, 2),
            "problems_per_second": round(n_scipy / scipy_seconds, 2),
            "note": f"{n_scipy} seeded problems of {n_problems:,} timed, scaled to {n_problems:,}",
            "solved": int(solved.sum()),
            "successful_starts_mean": float(np.mean([r[3] for r in results])),
            "max_budget_residual_log10": float(np.nanmax([r[2] for r in results])),
            "objective_vs_slaws_law_max_abs": objective_check,
        },
        "agreement": agreement
        | {
            "dL_S": "L_S(slaws) - L_S(SLSQP), both by slaws's law; negative: slaws lower",
            "slaws_subset_status": {
                str(k): int((subset_status == k).sum()) for k in np.unique(subset_status)
            },
            "slaws_max_budget_residual_log10": float(slaws_budget.max()),
            "by_scenario": by_scenario,
            "worst_for_slaws": worst,
        },
    }

    print(f"\n{n_problems:,} problems ({n_draws:,} draws x {n_budgets} budgets x 4 scenarios)")
    print(f"{'method':52s} {'seconds':>9s} {'problems/s':>11s} {'speed-up':>9s}")
    table = [
        (f"SciPy SLSQP loop (timed on {n_scipy}, scaled)", scipy_scaled),
        ("slaws distill, first call (compilation included)", first),
        ("slaws distill, second call (compiled)", second),
    ]
    for name, sec in table:
        print(f"{name:52s} {sec:9.2f} {n_problems / sec:11.1f} {scipy_scaled / sec:8.1f}x")
    if abs_d.size:
        print(
            f"\n|dL_S| over {abs_d.size} compared problems: max {abs_d.max():.2e}, median "
            f"{np.median(abs_d):.2e}, {(abs_d <= 1e-4).mean():.1%} within 1e-4; dL_S from "
            f"{d_ls[solved].min():.2e} to {d_ls[solved].max():.2e} (negative: slaws lower)"
        )
    for s, st in by_scenario.items():
        if st.get("solved_by_scipy"):
            print(
                f"  {s:30s} n={st['problems']:4d} max|dL_S| {st['max_abs_dL_S']:.2e} "
                f"within 1e-4 {st['share_within_1e-4']:.0%}"
            )
    check = "n/a" if objective_check is None else f"{objective_check:.1e}"
    print(
        f"SLSQP solved {int(solved.sum())}/{n_scipy} (mean "
        f"{result['scipy']['successful_starts_mean']:.1f} of 4 starts successful); its loss vs "
        f"slaws's law: max |diff| {check}"
    )
    print(
        f"slaws row statuses {status_rows}; subset statuses "
        f"{result['agreement']['slaws_subset_status']}; budget residual (log10) "
        f"{slaws_budget.max():.1e}"
    )
    for r in not_ok:
        print(f"  row {r['status']}: {r['scenario']} C={r['compute']:.3g} at_bound={r['at_bound']}")
    for w in worst[:3]:
        print(f"  slaws higher: {w['scenario']} C={w['compute']:.3g} dL_S={w['dL_S']:.2e}")
    ok = result["ratio_vs_baseline"] >= 100 and agreement.get("max_abs_dL_S", 1) <= 1e-4
    print(
        f"\nratio_vs_baseline {result['ratio_vs_baseline']}x (second call, compiled: "
        f"{result['ratio_vs_baseline_second_call']}x); goal >= 100x with |dL_S| <= 1e-4: "
        f"{'met' if ok else 'not met'}"
    )
    if args.quick:
        json.dumps(result)  # what the full run writes must serialise
        print("--quick: nothing written")
    else:
        print(f"wrote {write_result('allocation_speed', result)}")


if __name__ == "__main__":
    main()
