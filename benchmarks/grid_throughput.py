"""Huge-grid throughput: ``slaws.grid.evaluate`` against a chunked, vectorised NumPy loop.

Workloads (draws from a preset's published intervals, seed 0):

1. chinchilla: 4,000 draws (epoch2024) x N 1,000 x D 1,000 log-spaced = 4e9 law evaluations,
   reduced to mean and sd per point, then to mean, sd, q05 and q95.
2. distillation: 1,000 draws (busbridge2025) x N_S 100 x D_S 100 x L_T 20 = 2e8 evaluations
   (Busbridge et al. 2025 Eq. 8, teacher loss as an axis), mean and sd, then with q05 and q95.

The baseline is what a careful user writes in NumPy: float32, broadcasting over the grid axes,
chunked over draws so a chunk x grid fits in memory, running sums for mean and sd. For Chinchilla
it uses the separability (A/N^alpha per (draw, N), B/D^beta per (draw, D), then one broadcast
add per point), so it is memory-bound; the distillation law is evaluated in the log-space form
(Eq. 49) with numpy's ``logaddexp``. Quantiles in NumPy need every draw of a point at once:
``np.quantile`` over the draws of blocks of grid rows, timed on a slice of the rows and scaled.

slaws runs in this process with ``max_memory="2GB"``: the first call (tracing and compilation
included, not the import) and a second, compiled call. Peak memory is the resident set size a
call adds, sampled every 2 ms. ``ratio_vs_baseline`` is the distillation law's throughput ratio
(compiled call) over NumPy; ``ratio_chinchilla`` Chinchilla's. Goals (issue 5): distillation
>= 5x, Chinchilla >= 2x, 4e9 Chinchilla evaluations with mean and sd in <= 5 s and <= 2 GiB,
quantiles <= 3x the time of mean and sd (timed at the default rank tolerance 0.002, and at
0.01).

``--gpu`` evaluates a larger Chinchilla grid (10,000 draws x 3,000 x 3,000 = 9e10) on the default
JAX backend and records evaluations per second (goal on an H200: >= 1e11/s); it is for machines
with an accelerator and writes ``grid_throughput_gpu.json``. ``--quick`` shrinks everything and
writes nothing.
"""

import argparse
import math
import os
import threading
import time

import numpy as np
from _common import machine, write_result

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def measured(fn):
    """(result, seconds, peak bytes added to the resident set while ``fn`` ran)."""
    peak, stop = [0], threading.Event()

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.002)

    base = rss()
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    start = time.perf_counter()
    try:
        result = fn()
    finally:
        seconds = time.perf_counter() - start
        stop.set()
        thread.join()
    return result, seconds, max(peak[0] - base, 0)


# --- the NumPy baseline -----------------------------------------------------------------------


def numpy_chinchilla(p, n, d, chunk=16):
    """Mean and sd over draws at every (N, D): separable terms per axis, one broadcast per chunk."""
    log_n, log_d = np.log(n).astype(np.float32), np.log(d).astype(np.float32)
    s1 = np.zeros((len(n), len(d)), np.float64)
    s2 = np.zeros_like(s1)
    draws = len(p["E"])
    for start in range(0, draws, chunk):
        sl = slice(start, start + chunk)
        a = np.exp(np.log(p["A"][sl])[:, None] - p["alpha"][sl][:, None] * log_n[None])
        b = np.exp(np.log(p["B"][sl])[:, None] - p["beta"][sl][:, None] * log_d[None])
        loss = p["E"][sl][:, None, None] + a[:, :, None] + b[:, None, :]
        s1 += loss.sum(axis=0)
        s2 += np.einsum("ijk,ijk->jk", loss, loss)
    mean = s1 / draws
    return mean, np.sqrt(np.maximum(s2 / draws - mean**2, 0))


def numpy_distillation_loss(p, n, d, lt):
    """Busbridge Eq. 8 in Eq. 49's log-space form; p's arrays broadcast against n, d, lt."""
    log_n, log_d, log_lt = np.log(n), np.log(d), np.log(lt)
    inner = np.logaddexp(np.log(p["A"]) - p["alpha"] * log_n, np.log(p["B"]) - p["beta"] * log_d)
    log_sup = np.logaddexp(np.log(p["E"]), p["gamma"] * inner)
    student = p["gamma_prime"] * np.logaddexp(
        np.log(p["A_prime"]) - p["alpha_prime"] * log_n,
        np.log(p["B_prime"]) - p["beta_prime"] * log_d,
    )
    gap = log_lt - log_sup - np.log(p["d1"])
    log_break = -p["c1"] * p["f1"] * np.logaddexp(0, gap / p["f1"])
    return np.exp(np.logaddexp(log_lt, -p["c0"] * log_lt + log_break + student))


def numpy_distillation(p, n, d, lt, chunk=8):
    grid_n, grid_d, grid_lt = n[:, None, None], d[None, :, None], lt[None, None, :]
    s1 = np.zeros((len(n), len(d), len(lt)), np.float64)
    s2 = np.zeros_like(s1)
    draws = len(p["E"])
    for start in range(0, draws, chunk):
        q = {k: v[start : start + chunk].reshape(-1, 1, 1, 1) for k, v in p.items()}
        loss = numpy_distillation_loss(q, grid_n[None], grid_d[None], grid_lt[None])
        s1 += loss.sum(axis=0)
        s2 += (loss * loss).sum(axis=0)
    mean = s1 / draws
    return mean, np.sqrt(np.maximum(s2 / draws - mean**2, 0))


def numpy_chinchilla_quantiles(p, n, d, rows, block=8):
    """q05 and q95 over draws for the first ``rows`` N values, ``block`` rows at a time."""
    log_n, log_d = np.log(n).astype(np.float32), np.log(d).astype(np.float32)
    b = np.exp(np.log(p["B"])[:, None] - p["beta"][:, None] * log_d[None])
    out = []
    for start in range(0, rows, block):
        sl = slice(start, min(start + block, rows))
        a = np.exp(np.log(p["A"])[:, None] - p["alpha"][:, None] * log_n[None, sl])
        loss = p["E"][:, None, None] + a[:, :, None] + b[:, None, :]
        out.append(np.quantile(loss, [0.05, 0.95], axis=0))
    return np.concatenate(out, axis=1)


# --- the runs ---------------------------------------------------------------------------------


def slaws_runs(law, params, axes, evaluations):
    from slaws import grid

    def call(stats, tol=2e-3):
        return lambda: grid.evaluate(
            law, params, axes, stats=stats, max_memory="2GB", quantile_tol=tol
        )

    _, first, first_peak = measured(call("mean,sd"))
    ds, second, peak = measured(call("mean,sd"))
    call("mean,sd,q05,q95")()  # compile the quantile program
    qs, quantile_seconds, quantile_peak = measured(call("mean,sd,q05,q95"))
    call("mean,sd,q05,q95", 1e-2)()
    _, loose_seconds, _ = measured(call("mean,sd,q05,q95", 1e-2))
    import json

    info = json.loads(qs.attrs["slaws"])
    return (
        ds,
        qs,
        {
            "first_call_seconds": round(first, 3),
            "seconds": round(second, 3),
            "evaluations_per_second": evaluations / second,
            "peak_memory_mib": round(max(first_peak, peak) / 2**20, 1),
            "quantiles_seconds": round(quantile_seconds, 3),
            "quantiles_peak_memory_mib": round(quantile_peak / 2**20, 1),
            "quantiles_vs_mean_sd": round(quantile_seconds / second, 2),
            "quantiles_tol_0.01_seconds": round(loose_seconds, 3),
            "quantiles_tol_0.01_vs_mean_sd": round(loose_seconds / second, 2),
            "quantile_max_rank_error": info["quantile_max_rank_error"],
            "quantile_points_beyond_tol": info["quantile_points_beyond_tol"],
        },
    )


def chinchilla(quick):
    from slaws.allocation import parameter_draws
    from slaws.law import get_law

    draws, size = (400, 200) if quick else (4000, 1000)
    params = parameter_draws("epoch2024", get_law("chinchilla"), sample=draws, seed=0)
    n, d = np.geomspace(1e8, 1e12, size), np.geomspace(1e9, 1e13, size)
    axes = [f"N=1e8:1e12:{size}:log", f"D=1e9:1e13:{size}:log"]
    evaluations = draws * size * size
    ds, qs, result = slaws_runs("chinchilla", params, axes, evaluations)
    p32 = {k: v.astype(np.float32) for k, v in params.items()}
    (mean, sd), seconds, peak = measured(lambda: numpy_chinchilla(p32, n, d))
    rows = max(size // 50, 8)
    quantiles, q_seconds, _ = measured(lambda: numpy_chinchilla_quantiles(p32, n, d, rows))
    q_seconds *= size / rows
    got = ds.loss.sel(stat="mean").values
    result |= {
        "workload": f"{draws} draws x N {size} x D {size} = {evaluations:.3g} evaluations",
        "numpy_seconds": round(seconds, 3),
        "numpy_evaluations_per_second": evaluations / seconds,
        "numpy_peak_memory_mib": round(peak / 2**20, 1),
        "numpy_quantiles_seconds_scaled": round(q_seconds, 1),
        "numpy_quantiles_rows_timed": rows,
        "ratio": (evaluations / result["seconds"]) / (evaluations / seconds),
        "max_rel_diff_mean": float(np.max(np.abs(got - mean) / mean)),
        "max_rel_diff_sd": float(np.max(np.abs(ds.loss.sel(stat="sd").values - sd)) / sd.max()),
        "max_abs_diff_q05_vs_numpy": float(
            np.max(np.abs(qs.loss.sel(stat="q05").values[:rows] - quantiles[0]))
        ),
    }
    return result


def distillation(quick):
    from slaws.allocation import parameter_draws
    from slaws.law import get_law

    draws, size, teachers = (100, 40, 10) if quick else (1000, 100, 20)
    params = parameter_draws("busbridge2025", get_law("distillation"), sample=draws, seed=0)
    n, d = np.geomspace(1e8, 1e11, size), np.geomspace(1e9, 1e13, size)
    lt = np.linspace(1.8, 3.0, teachers)
    axes = [f"N=1e8:1e11:{size}:log", f"D=1e9:1e13:{size}:log", f"L_T=1.8:3.0:{teachers}"]
    evaluations = draws * size * size * teachers
    ds, _, result = slaws_runs("distillation", params, axes, evaluations)
    p32 = {k: v.astype(np.float32) for k, v in params.items()}
    grids = (n.astype(np.float32), d.astype(np.float32), lt.astype(np.float32))
    (mean, _), seconds, peak = measured(lambda: numpy_distillation(p32, *grids))
    result |= {
        "workload": f"{draws} draws x N_S {size} x D_S {size} x L_T {teachers} = "
        f"{evaluations:.3g} evaluations",
        "numpy_seconds": round(seconds, 3),
        "numpy_evaluations_per_second": evaluations / seconds,
        "numpy_peak_memory_mib": round(peak / 2**20, 1),
        "ratio": (evaluations / result["seconds"]) / (evaluations / seconds),
        "max_rel_diff_mean": float(np.max(np.abs(ds.loss.sel(stat="mean").values - mean) / mean)),
    }
    return result


def gpu(quick):
    import jax

    from slaws import grid
    from slaws.allocation import parameter_draws
    from slaws.law import get_law

    draws, size = (1000, 1000) if quick else (10000, 3000)
    params = parameter_draws("epoch2024", get_law("chinchilla"), sample=draws, seed=0)
    axes = [f"N=1e8:1e12:{size}:log", f"D=1e9:1e13:{size}:log"]
    evaluations = draws * size * size
    out = {"backend": jax.default_backend(), "devices": [str(x) for x in jax.devices()]}
    for stats in ("mean,sd", "mean,sd,q05,q95"):
        grid.evaluate("chinchilla", params, axes, stats=stats, max_memory="32GB")
        start = time.perf_counter()
        grid.evaluate("chinchilla", params, axes, stats=stats, max_memory="32GB")
        seconds = time.perf_counter() - start
        out[stats] = {"seconds": round(seconds, 3), "evaluations_per_second": evaluations / seconds}
    out["workload"] = f"{draws} draws x {size} x {size} = {evaluations:.3g} evaluations"
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--gpu", action="store_true")
    args = parser.parse_args()
    if args.gpu:
        result = gpu(args.quick)
        print(result)
        if not args.quick:
            write_result("grid_throughput_gpu", {"machine": machine(), **result})
        return
    chin = chinchilla(args.quick)
    dist = distillation(args.quick)
    for name, r in (("chinchilla", chin), ("distillation", dist)):
        print(f"{name}: {r['workload']}")
        print(
            f"  slaws  {r['seconds']:7.2f} s  {r['evaluations_per_second']:.3g}/s  "
            f"(first call {r['first_call_seconds']:.2f} s)  peak +{r['peak_memory_mib']} MiB"
        )
        print(
            f"  numpy  {r['numpy_seconds']:7.2f} s  {r['numpy_evaluations_per_second']:.3g}/s  "
            f"peak +{r['numpy_peak_memory_mib']} MiB   ratio {r['ratio']:.1f}x"
        )
        print(
            f"  quantiles (mean, sd, q05, q95): {r['quantiles_seconds']:.2f} s = "
            f"{r['quantiles_vs_mean_sd']}x mean and sd; rank error {r['quantile_max_rank_error']}"
        )
        print(
            f"  quantiles to rank 0.01: {r['quantiles_tol_0.01_seconds']:.2f} s = "
            f"{r['quantiles_tol_0.01_vs_mean_sd']}x"
        )
        if "numpy_quantiles_seconds_scaled" in r:
            print(f"  numpy quantiles (scaled): {r['numpy_quantiles_seconds_scaled']} s")
    result = {
        "ratio_vs_baseline": round(dist["ratio"], 2),
        "ratio_chinchilla": round(chin["ratio"], 2),
        "baseline": "chunked vectorised NumPy (float32, broadcasting over the grid axes, running "
        "sums over draw chunks; separable terms for Chinchilla), same process, same run",
        "chinchilla": chin,
        "distillation": dist,
        "machine": machine(),
    }
    if not args.quick:
        print("wrote", write_result("grid_throughput", result))
    assert math.isfinite(result["ratio_vs_baseline"])


if __name__ == "__main__":
    main()
