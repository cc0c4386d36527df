"""slaws.grid: streaming statistics against in-memory ones, sharding over 8 forced devices and
over two processes joined by jax.distributed, the memory bound, resumable atomic output."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from slaws import grid
from slaws.allocation import parameter_draws
from slaws.law import get_law

ROOT = Path(__file__).resolve().parents[1]
CHINCHILLA_AXES = ["N=1e8:1e12:23:log", "D=1e9:1e13:17:log"]
DISTILLATION_AXES = ["N=1e8:1e11:9:log", "D=1e9:1e13:7:log", "L_T=1.8:3.0:5"]


def draws(law, n, seed=0):
    preset = "busbridge2025" if law == "distillation" else "epoch2024"
    return parameter_draws(preset, get_law(law), sample=n, seed=seed)


def in_memory(law, params, axes, dtype=np.float64):
    """The whole draws x grid tensor, in numpy: the reference the streaming run must match."""
    law = get_law(law)
    axes = [grid.Axis.parse(a) if isinstance(a, str) else a for a in axes]
    k = len(axes)
    with jax.enable_x64(dtype == np.float64):
        x = {}
        for i, a in enumerate(axes):
            shape = [1] * (k + 1)
            shape[i + 1] = len(a)
            x[a.name] = jnp.asarray(a.values.reshape(shape), dtype)
        p = {
            n: jnp.asarray(np.asarray(v).reshape((-1,) + (1,) * k), dtype)
            for n, v in params.items()
        }
        return np.asarray(law.loss(p, x))


def point_quantiles(full, levels):
    """numpy quantiles at a different level per grid point (levels shaped like a grid)."""
    flat = full.reshape(full.shape[0], -1)
    return np.array([np.quantile(flat[:, i], lv) for i, lv in enumerate(levels.reshape(-1))])


def assert_quantiles_within_rank_error(ds, full, n):
    info = json.loads(ds.attrs["slaws"])
    tol = max(info["quantile_tol"], 2 / (n - 1)) * (1 + 1e-6)
    for stat in ds.level.values:
        q = grid.quantile_level(str(stat))
        value = ds.loss.sel(stat=stat).values.reshape(-1)
        error = ds.quantile_rank_error.sel(level=stat).values.reshape(-1)
        assert np.all(error <= tol), (stat, error.max())
        lower = point_quantiles(full, np.clip(q - error, 0, 1))
        upper = point_quantiles(full, np.clip(q + error, 0, 1))
        slack = 4 * np.finfo(value.dtype).eps * np.abs(value)
        assert np.all(value >= lower - slack), (stat, np.min(value - lower))
        assert np.all(value <= upper + slack), (stat, np.max(value - upper))


# ---------------------------------------------------------------------------------------------
# Axes and options
# ---------------------------------------------------------------------------------------------


def test_axis_specs():
    a = grid.Axis.parse("N=1e8:1e12:5:log")
    np.testing.assert_allclose(a.values, [1e8, 1e9, 1e10, 1e11, 1e12], rtol=1e-12)
    assert a.log
    b = grid.Axis.parse("L_T=1.5:2.5:3")
    np.testing.assert_allclose(b.values, [1.5, 2.0, 2.5])
    assert not b.log
    assert list(grid.Axis.parse("D=1e9,3e9").values) == [1e9, 3e9]
    assert list(grid.Axis.parse("L_T=2.1").values) == [2.1]


@pytest.mark.parametrize(
    "spec",
    [
        "N",
        "N=",
        "N=1e8:1e12",
        "N=1e8:1e12:x:log",
        "N=a,b",
        "N=-1,2",
        "N=0:1:3",
        "2N=1,2",
        "N=1e8:1e12:2.5:log",
        "N=1:1:3",
    ],
)
def test_bad_axis_specs_are_one_line_errors(spec):
    with pytest.raises(grid.GridError) as err:
        grid.Axis.parse(spec)
    assert "\n" not in str(err.value)


def test_stats_and_memory_parsing():
    assert grid.parse_stats("mean,sd,q05,q975") == ("mean", "sd", "q05", "q975")
    assert grid.quantile_level("q05") == 0.05 and grid.quantile_level("q975") == 0.975
    assert grid.quantile_level("q5") == 0.5
    for bad in ("", "median", "q0", "mean,mean"):
        with pytest.raises(grid.GridError):
            grid.parse_stats(bad)
    assert grid.parse_memory("2GB") == 2_000_000_000
    assert grid.parse_memory("512MiB") == 512 * 2**20
    with pytest.raises(grid.GridError):
        grid.parse_memory("lots")


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"axes": ["N=1e8:1e9:3:log"]}, "needs axes for D"),
        ({"axes": CHINCHILLA_AXES + ["U=1e9,1e10"]}, "does not read axis 'U'"),
        ({"argmin": "C"}, "argmin axis 'C'"),
        ({"dtype": "float16"}, "dtype"),
        ({"quantile_tol": 0.7}, "quantile tolerance"),
        ({"below": [float("nan")]}, "finite"),
        ({"max_memory": "100B", "stats": "mean,q05"}, "max memory"),
        ({"axes": ["N=1e8,1e9", "N=1e8,1e9"]}, "repeated"),
    ],
)
def test_bad_options_are_one_line_errors(kwargs, fragment):
    kwargs = {"axes": CHINCHILLA_AXES, **kwargs}
    axes = kwargs.pop("axes")
    with pytest.raises(grid.GridError) as err:
        grid.evaluate("chinchilla", "hoffmann2022", axes, **kwargs)
    assert fragment in str(err.value) and "\n" not in str(err.value)


# ---------------------------------------------------------------------------------------------
# Streaming statistics equal the in-memory ones
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "law, axes", [("chinchilla", CHINCHILLA_AXES), ("distillation", DISTILLATION_AXES)]
)
def test_streaming_statistics_equal_in_memory(law, axes, dtype):
    n = 800
    params = draws(law, n, seed=3)
    ds = grid.evaluate(
        law, params, axes, stats="mean,sd,q05,q50,q95", below=[2.3, 2.6], dtype=dtype
    )
    assert ds.loss.dtype == np.dtype(dtype)
    full = in_memory(law, params, axes, np.dtype(dtype).type)
    exact = full.astype(np.float64)  # numpy's float32 sum along axis 0 is not pairwise
    rtol = 1e-6 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(ds.loss.sel(stat="mean"), exact.mean(axis=0), rtol=rtol)
    sd = exact.std(axis=0)
    np.testing.assert_allclose(
        ds.loss.sel(stat="sd"), sd, rtol=1e-3 if dtype == "float32" else 1e-9, atol=1e-6 * sd.max()
    )
    for i, t in enumerate((2.3, 2.6)):
        share = (full <= t).mean(axis=0)
        if dtype == "float64":
            np.testing.assert_allclose(ds.p_below.values[i], share, rtol=0, atol=1e-12)
        else:  # a draw within float32 rounding of t may fall either side
            assert np.abs(ds.p_below.values[i] - share).max() <= 2 / n
    assert_quantiles_within_rank_error(ds, full, n)


@pytest.mark.parametrize("z", [-8.0, 0.0, 8.0])
def test_quantiles_hold_their_bound_when_every_guess_misses(monkeypatch, z):
    """Guesses placed far off (z of 8 sds either side, or the anchors' mean) leave every bracket
    open on one side at first: the far probes must still close them within the rank bound."""
    zhat = grid._zhat
    monkeypatch.setattr(grid, "_zhat", lambda *args: np.full_like(zhat(*args), z))
    n = 600
    params = draws("distillation", n, seed=5)
    ds = grid.evaluate("distillation", params, DISTILLATION_AXES, stats="mean,q02,q50,q98")
    beyond = json.loads(ds.attrs["slaws"])["quantile_points_beyond_tol"]
    assert set(beyond.values()) == {0}, beyond
    assert_quantiles_within_rank_error(
        ds, in_memory("distillation", params, DISTILLATION_AXES, np.float32), n
    )


def test_quantiles_of_point_parameters_are_the_value():
    ds = grid.evaluate("chinchilla", "hoffmann2022", CHINCHILLA_AXES, stats="mean,sd,q05,q95")
    for stat in ("q05", "q95"):
        np.testing.assert_array_equal(ds.loss.sel(stat=stat), ds.loss.sel(stat="mean"))
    assert np.all(ds.loss.sel(stat="sd").values == 0)


def test_isoflop_argmin_matches_the_closed_form_per_draw():
    """Axes C and N (D = C / 6N): each draw's minimiser along N, refined by a parabola in log N,
    against Chinchilla's closed form for that draw."""
    n = 400
    params = draws("chinchilla", n)
    budgets = [1e19, 1e21, 1e23, 1e25]
    ds = grid.evaluate(
        "chinchilla",
        params,
        ["C=" + ",".join(map(str, budgets)), "N=1e6:1e14:600:log"],
        stats="mean,q05,q50,q95",
        argmin="N",
        dtype="float64",
    )
    a, b = params["alpha"], params["beta"]
    g = (a * params["A"] / (b * params["B"])) ** (1 / (a + b))
    exact = g[:, None] * (np.asarray(budgets)[None, :] / 6) ** (b / (a + b))[:, None]
    for stat, value in (
        ("mean", exact.mean(0)),
        ("q05", np.quantile(exact, 0.05, 0)),
        ("q50", np.quantile(exact, 0.5, 0)),
        ("q95", np.quantile(exact, 0.95, 0)),
    ):
        np.testing.assert_allclose(ds.N_opt.sel(stat=stat), value, rtol=2e-3, err_msg=stat)
    assert np.all(ds.N_opt_at_bound.values == 0)
    # The minimum loss is the loss at the minimiser.
    d_opt = np.asarray(budgets)[None] / (6 * exact)
    p = {k: v[:, None] for k, v in params.items()}
    loss = p["E"] + p["A"] / exact ** p["alpha"] + p["B"] / d_opt ** p["beta"]
    np.testing.assert_allclose(ds.loss_opt.sel(stat="q50"), np.quantile(loss, 0.5, 0), rtol=1e-6)


def test_argmin_at_the_edge_is_reported():
    ds = grid.evaluate("chinchilla", "hoffmann2022", ["C=1e24", "N=1e6:1e8:20:log"], argmin="N")
    assert ds.N_opt_at_bound.values.tolist() == [1.0]
    assert ds.N_opt.sel(stat="mean").item() == pytest.approx(1e8, rel=1e-6)


# ---------------------------------------------------------------------------------------------
# Sharding: 8 forced host devices, and two processes under jax.distributed
# ---------------------------------------------------------------------------------------------

RUN = """
import sys
import numpy as np
import slaws.grid as grid
from slaws.allocation import parameter_draws
from slaws.law import get_law
params = parameter_draws("epoch2024", get_law("chinchilla"), sample=600, seed=1)
ds = grid.evaluate("chinchilla", params, ["C=1e20,1e22,1e24", "N=1e7:1e13:97:log"],
                   stats="mean,sd,q05,q95", below=[2.4], argmin="N", max_memory="4MB", out=OUT)
"""


def reference_result(stats="mean,sd,q05,q95"):
    params = parameter_draws("epoch2024", get_law("chinchilla"), sample=600, seed=1)
    return grid.evaluate(
        "chinchilla",
        params,
        ["C=1e20,1e22,1e24", "N=1e7:1e13:97:log"],
        stats=stats,
        below=[2.4],
        argmin="N",
        max_memory="4MB",
    )


def assert_same(ds, ref):
    for name in ref.data_vars:
        np.testing.assert_allclose(ds[name].values, ref[name].values, rtol=1e-6, err_msg=name)


def run_python(code, env, timeout=240):
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def test_eight_forced_devices_give_the_one_device_result(tmp_path):
    import xarray as xr

    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
    out = tmp_path / "eight.nc"
    code = f"OUT = {str(out)!r}\n" + RUN + "import jax; assert jax.device_count() == 8\n"
    proc = run_python(code, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with xr.open_dataset(out) as ds:
        assert_same(ds.load(), reference_result())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_under_jax_distributed_give_the_one_process_result(tmp_path):
    """`slaws grid --distributed` in two processes of two CPU devices each, joined over loopback
    (gloo collectives): every process computes its tiles, process 0 writes the file. Moments,
    a threshold and an argmin: quantiles are tile-local like them (the eight-device test runs
    them sharded) and would triple the three compilations here."""
    import xarray as xr

    out = tmp_path / "two.nc"
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "slaws",
        "grid",
        "--law",
        "chinchilla",
        "--params",
        "epoch2024",
        "--sample",
        "600",
        "--seed",
        "1",
        "--axis",
        "C=1e20,1e22,1e24",
        "--axis",
        "N=1e7:1e13:97:log",
        "--stats",
        "mean,sd",
        "--below",
        "2.4",
        "--argmin",
        "N",
        "--max-memory",
        "4MB",
        "--out",
        str(out),
        "--json",
    ]
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", SLAWS_JAX_CACHE="")
    procs = [
        subprocess.Popen(
            command + ["--distributed", f"127.0.0.1:{port},2,{i}"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        results = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err[-3000:]
    # gloo logs its connections on stdout; the summary is the JSON line, from process 0 only.
    reports = [[x for x in out.splitlines() if x.startswith("{")] for out, _ in results]
    summary = json.loads(reports[0][-1])
    assert summary["devices"] == 4 and summary["processes"] == 2
    assert reports[1] == []
    with xr.open_dataset(out) as ds:
        assert_same(ds.load(), reference_result("mean,sd"))


# ---------------------------------------------------------------------------------------------
# Memory bound
# ---------------------------------------------------------------------------------------------

MEMORY = """
import threading, time, os
import numpy as np
import slaws.grid as grid
from slaws.allocation import parameter_draws
from slaws.law import get_law

params = parameter_draws("epoch2024", get_law("chinchilla"), sample=2000, seed=0)
axes = ["N=1e7:1e13:1500:log", "D=1e8:1e14:1500:log"]  # draws x grid: 2000 x 2.25e6 x 4 B = 18 GB
budget = 256 * 2**20
kwargs = dict(stats="mean,sd,q05,q95", max_memory=budget)
page = os.sysconf("SC_PAGE_SIZE")

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page

grid.evaluate("chinchilla", params, axes, **kwargs)  # compiles; the programs stay cached
peak, stop = [0], threading.Event()

def watch():
    while not stop.is_set():
        peak[0] = max(peak[0], rss())
        time.sleep(0.002)

base = rss()
thread = threading.Thread(target=watch)
thread.start()
ds = grid.evaluate("chinchilla", params, axes, **kwargs)
stop.set()
thread.join()
print(base, peak[0], budget, ds.loss.nbytes)
"""


def test_memory_stays_within_the_budget():
    """A grid whose draws x grid tensor (18 GB) is 70 times the budget (256 MiB): the resident
    memory a run adds stays below the budget. The result itself (36 MB here) is part of it."""
    proc = run_python(MEMORY, dict(os.environ), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    base, peak, budget, result = map(int, proc.stdout.split())
    assert peak - base <= budget, (peak - base) / 2**20


# ---------------------------------------------------------------------------------------------
# Files: atomic, never overwritten, resumable
# ---------------------------------------------------------------------------------------------


class Interrupt(Exception):
    pass


def test_a_killed_run_resumes_without_recomputing_what_was_written(tmp_path):
    import xarray as xr

    params = draws("chinchilla", 300)
    out = tmp_path / "grid.nc"
    axes = ["N=1e8:1e12:200:log", "D=1e9:1e13:100:log"]
    kwargs = dict(stats="mean,q05,q95", below=[2.5], max_memory="1MB")
    calls = []

    def stop_after_two_blocks(done, total):
        calls.append((done, total))
        if len(calls) == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        grid.evaluate("chinchilla", params, axes, out=out, progress=stop_after_two_blocks, **kwargs)
    assert not out.exists()
    parts = sorted(p.name for p in (tmp_path / "grid.nc.parts").iterdir())
    assert len([p for p in parts if p.startswith("part-")]) == 2
    written, total = calls[-1]
    assert 0 < written < total

    seen = []
    ds = grid.evaluate(
        "chinchilla",
        params,
        axes,
        out=out,
        progress=lambda d, t: seen.append(d),
        **kwargs,
    )
    assert seen[0] == written  # resumed: nothing already written is computed again
    assert not (tmp_path / "grid.nc.parts").exists()
    with ds:
        resumed = ds.load()
    fresh = grid.evaluate("chinchilla", params, axes, **kwargs)
    for name in fresh.data_vars:
        np.testing.assert_array_equal(resumed[name].values, fresh[name].values, err_msg=name)
    with xr.open_dataset(out) as again:
        assert json.loads(again.attrs["slaws"])["law"] == "chinchilla"


def test_parts_of_a_different_run_are_not_mixed_in(tmp_path):
    params = draws("chinchilla", 100)
    out = tmp_path / "grid.nc"
    axes = ["N=1e8:1e12:200:log", "D=1e9:1e13:100:log"]

    def stop(done, total):
        if done:
            raise Interrupt

    with pytest.raises(Interrupt):
        grid.evaluate("chinchilla", params, axes, out=out, max_memory="1MB", progress=stop)
    with pytest.raises(grid.GridError, match="different run"):
        grid.evaluate("chinchilla", params, axes, stats="mean", out=out)
    grid.evaluate("chinchilla", params, axes, stats="mean", out=out, force=True).close()
    assert out.exists()


def test_an_existing_file_is_never_overwritten_without_force(tmp_path):
    out = tmp_path / "grid.nc"
    out.write_text("precious")
    with pytest.raises(FileExistsError):
        grid.evaluate("chinchilla", "hoffmann2022", CHINCHILLA_AXES, out=out)
    assert out.read_text() == "precious"
    grid.evaluate("chinchilla", "hoffmann2022", CHINCHILLA_AXES, out=out, force=True).close()
    import xarray as xr

    with xr.open_dataset(out) as ds:
        assert ds.loss.shape == (2, 23, 17)
