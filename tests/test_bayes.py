"""Posteriors: numpyro models from laws, NUTS and SVI into arviz DataTrees, diagnostics, netCDF."""

import math
import warnings

import jax
import numpy as np
import pandas as pd
import pytest
import scipy.integrate
import scipy.stats

from slaws import bayes
from slaws.synthetic import chinchilla_like

GROUPS = {"posterior", "sample_stats", "observed_data", "log_likelihood", "posterior_predictive"}


def test_nuts_on_epoch_converges_and_covers_epoch(epoch_available, tmp_path):
    """Epoch's 240 points: r_hat <= 1.01, bulk ESS >= 400, at most one divergent transition of
    4,000 (seeds 0-3 give 1, 0, 0, 0), and the 90% intervals of alpha and beta contain Epoch's
    estimates (0.3478, 0.3658)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", bayes.PosteriorWarning)
        tree = bayes.sample("chinchilla", "epoch-chinchilla", recipe="epoch2024", seed=0)
    messages = [str(w.message) for w in caught if w.category is bayes.PosteriorWarning]
    assert all(m.endswith("divergent transitions") for m in messages), messages
    assert GROUPS <= set(tree.children)
    info = bayes.json.loads(tree.attrs["slaws"])
    assert info["n_points"] == 240
    diag = info["diagnostics"]
    assert diag["max_r_hat"] <= 1.01
    assert diag["min_ess_bulk"] >= 400
    assert diag["divergences"] <= 1
    posterior = tree["posterior"]
    for name, epoch in (("alpha", 0.3478), ("beta", 0.3658)):
        low, high = np.quantile(posterior[name].values, [0.05, 0.95])
        assert low < epoch < high, (name, low, high)

    path = tmp_path / "fit.nc"
    bayes.save(tree, path)
    again = bayes.load(path)
    for name in ("A", "B", "E", "alpha", "beta", "sigma"):
        np.testing.assert_array_equal(again["posterior"][name].values, posterior[name].values)
    assert again.attrs["slaws"] == tree.attrs["slaws"]
    with pytest.raises(FileExistsError):
        bayes.save(tree, path)


def _small(seed=0):
    frame = chinchilla_like(noise=0.01, seed=seed)
    return frame.iloc[::2].reset_index(drop=True)


def test_same_seed_same_draws():
    frame = _small()
    # 100 + 100 on under 48 points: the NUTS program of the doctests and the CLI fixture, so one
    # compilation (through the persistent cache) serves all three.
    kwargs = dict(draws=100, warmup=100, chains=2, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayes.PosteriorWarning)
        first = bayes.sample("chinchilla", frame, **kwargs)
        second = bayes.sample("chinchilla", frame, **kwargs)
        other = bayes.sample("chinchilla", frame, **{**kwargs, "seed": 4})
    a, b, c = (t["posterior"]["alpha"].values for t in (first, second, other))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_svi_laplace_agrees_with_nuts():
    frame = _small(seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayes.PosteriorWarning)
        nuts = bayes.sample("chinchilla", frame, draws=500, warmup=500, chains=2, seed=0)
    svi = bayes.sample("chinchilla", frame, method="svi", draws=2000, seed=0)
    assert GROUPS <= set(svi.children)
    for name in ("alpha", "beta"):
        mean_nuts = float(nuts["posterior"][name].mean())
        sd_nuts = float(nuts["posterior"][name].std())
        assert float(svi["posterior"][name].mean()) == pytest.approx(mean_nuts, abs=sd_nuts)
        assert float(svi["posterior"][name].std()) == pytest.approx(sd_nuts, rel=0.5)


def test_model_is_plain_numpyro_and_priors_can_change():
    import numpyro
    from numpyro.infer.util import log_density

    model = bayes.make_model("chinchilla", priors={"alpha": ("Uniform", 0.1, 0.6)})
    frame = _small()
    inputs = {"N": frame["N"].to_numpy(), "D": frame["D"].to_numpy()}
    with jax.enable_x64(True):
        trace = numpyro.handlers.trace(numpyro.handlers.seed(model, 0)).get_trace(inputs)
        assert trace["alpha"]["fn"].low == 0.1
        params = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28, "sigma": 0.01}
        value, _ = log_density(model, (inputs, np.log(frame["loss"].to_numpy())), {}, params)
    assert np.isfinite(float(value))
    with pytest.raises(ValueError, match="unknown likelihood"):
        bayes.make_model("chinchilla", likelihood="cauchy")
    with pytest.raises(KeyError, match="no parameter 'zeta'"):
        bayes.make_model("chinchilla", priors={"zeta": ("Normal", 0.0, 1.0)})


def test_models_traced_from_several_threads_at_once():
    """numpyro's handler stack is global: NUTS compiles its programs on a second thread while the
    main thread maps its start to unconstrained space. Unguarded, the traces interleave ("all
    sites must have unique names"; a CI failure); four threads tracing at once must all agree."""
    from concurrent.futures import ThreadPoolExecutor

    model = bayes.make_model("chinchilla")
    frame = _small()
    inputs = {"N": frame["N"].to_numpy(), "D": frame["D"].to_numpy()}
    values = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28, "sigma": 0.01}
    values = {k: np.atleast_1d(v) for k, v in values.items()}

    def trace(_):
        with jax.enable_x64(True):
            return [bayes.unconstrained(model, inputs, values) for _ in range(4)]

    with ThreadPoolExecutor(4) as pool:
        results = [z for batch in pool.map(trace, range(4)) for z in batch]
    for z in results:
        assert z.keys() == values.keys()
        np.testing.assert_allclose(z["A"], np.log(406.4), rtol=1e-12)


def test_every_law_has_priors_and_a_law_without_one_is_named():
    """Posteriors work for any registered law (the learning-curve forms once had none)."""
    from slaws.law import Law, Param, get_law, law_names

    for name in law_names():
        assert all(p.prior for p in get_law(name).params), name
        bayes.make_model(name)
    bare = Law(
        name="bare",
        log_loss=lambda p, x: p["a"] * x["x"],
        params=(Param("a", 0.0, 1.0),),
        inputs=("x",),
        citation="test",
    )
    with pytest.raises(ValueError, match="parameter 'a' of law 'bare' has no prior"):
        bayes.make_model(bare)
    assert bayes.make_model(bare, priors={"a": ("Uniform", 0.0, 1.0)})


def test_forecast_takes_a_users_unregistered_law():
    """A posterior of a ``Law`` outside the registry forecasts when given the law, and its
    forecast is the law's loss over the draws; another law is refused in one line."""
    import dataclasses

    from slaws.law import UnknownLawError, get_law
    from slaws.laws import chinchilla

    mine = dataclasses.replace(get_law("chinchilla"), name="my_chinchilla")
    frame = chinchilla_like(n_models=8, n_budgets=5, noise=0.005)
    tree = bayes.sample(mine, frame, method="bootstrap", draws=20, seed=0)
    at = {"N": [1e9, 7e10], "D": [2e10, 1.4e12]}
    with pytest.raises(UnknownLawError, match="my_chinchilla"):
        bayes.forecast(tree, at)
    out = bayes.forecast(tree, at, law=mine)
    draws = {k: tree.posterior[k].values.reshape(-1, 1) for k in mine.param_names}
    with jax.enable_x64(True):
        x = {k: np.asarray(v, float)[None, :] for k, v in at.items()}
        expected = np.median(np.exp(np.asarray(chinchilla.log_loss(draws, x))), axis=0)
    np.testing.assert_allclose(out["median"], expected, rtol=1e-12)
    with pytest.raises(ValueError, match="of law 'my_chinchilla', not 'chinchilla'"):
        bayes.forecast(tree, at, law="chinchilla")


def test_distillation_model_holds_supervised_coefficients():
    model = bayes.make_model("distillation")
    assert set(model.fixed) == {"E", "A", "B", "alpha", "beta", "gamma"}


@pytest.mark.parametrize("delta", [1e-3, 0.5, 2.0])
def test_huber_density_is_normalised_and_sampled_correctly(delta):
    with jax.enable_x64(True):
        d = bayes.huber_distribution(0.0, 1.0, delta)

        def pdf(t):
            return math.exp(float(d.log_prob(t)))

        edge = delta + 60.0 / delta
        total = sum(
            scipy.integrate.quad(pdf, a, b, limit=200)[0]
            for a, b in ((-edge, -delta), (-delta, delta), (delta, edge))
        )
        assert total == pytest.approx(1.0, rel=1e-6)
        draws = np.asarray(d.sample(jax.random.key(0), (200_000,)))
    # P(|t| <= delta) from the density against the draws.
    core = scipy.integrate.quad(pdf, -delta, delta)[0]
    assert np.mean(np.abs(draws) <= delta) == pytest.approx(core, abs=0.005)
    assert np.mean(draws) == pytest.approx(0.0, abs=0.05 * max(1.0, 1 / delta))


CHAIN_METHODS_RUN = """
import json, sys, warnings
import jax
from slaws import bayes
from slaws.synthetic import chinchilla_like
frame = chinchilla_like(noise=0.01, seed=0).iloc[::2].reset_index(drop=True)
warnings.simplefilter("ignore", bayes.PosteriorWarning)
out = {"devices": jax.local_device_count(), "auto": bayes._resolve_chain_method("auto", 2)}
for method in ("vectorized", "parallel"):  # "concurrent" is every other test's default
    tree = bayes.sample("chinchilla", frame, draws=300, warmup=300, chains=2, seed=1,
                        chain_method=method)
    a = tree["posterior"]["alpha"].values
    out[method] = [list(a.shape), float(a.mean()), float(a.std())]
try:
    bayes.sample("chinchilla", frame, chains=3, chain_method="parallel")
except ValueError as err:
    out["error"] = str(err)
print(json.dumps(out))
"""


def test_chain_methods_agree_on_two_forced_devices():
    """With two (forced host) devices, ``auto`` runs one chain per device (shard_map); chains
    vectorised under vmap and in parallel sample the same posterior: means within a third of a
    posterior sd (300 draws per chain). Concurrent host threads, the one-device default, run in
    every other NUTS test."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    proc = subprocess.run(
        [sys.executable, "-c", CHAIN_METHODS_RUN], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["devices"] == 2
    assert out["auto"] == "parallel"
    shapes = {tuple(out[m][0]) for m in ("vectorized", "parallel")}
    assert shapes == {(2, 300)}
    sd = out["parallel"][2]
    assert out["vectorized"][1] == pytest.approx(out["parallel"][1], abs=sd / 3)
    assert out["vectorized"][2] == pytest.approx(sd, rel=0.25)
    assert out["error"] == "chain method 'parallel' needs 3 devices, found 2"


def test_bad_method():
    frame = pd.DataFrame({"N": [1.0], "D": [1.0], "loss": [1.0]})
    with pytest.raises(ValueError, match="unknown method"):
        bayes.sample("chinchilla", frame, method="gibbs")
    with pytest.raises(ValueError, match="unknown chain method 'pmap'"):
        bayes.sample("chinchilla", _small(), chain_method="pmap")


def test_bootstrap_reproduces_epoch_standard_errors(epoch_available):
    """Besiroglu et al. 2024: bootstrap SEs alpha 0.0154, beta 0.0206, E 0.0257 (4,000 refits;
    1,000 here, whose SE estimates carry about 2% sampling error), within 20%."""
    from slaws.fitting import bootstrap

    point, table = bootstrap(
        "chinchilla", "epoch-chinchilla", recipe="epoch2024", resamples=1000, seed=0
    )
    assert (table["status"] == "converged").all()
    assert len(table) == 1000
    for name, se in (("alpha", 0.0154), ("beta", 0.0206), ("E", 0.0257)):
        assert table[name].std() == pytest.approx(se, rel=0.2), name
    assert table["alpha"].median() == pytest.approx(point.params["alpha"], rel=0.02)


def test_bootstrap_method_returns_a_full_tree():
    frame = _small(seed=2)
    tree = bayes.sample("chinchilla", frame, method="bootstrap", draws=200, seed=0)
    assert GROUPS <= set(tree.children)
    assert tree["posterior"]["alpha"].shape == (1, 200)
    assert tree["log_likelihood"]["log_loss"].shape == (1, 200, len(frame))
    assert np.isfinite(tree["log_likelihood"]["log_loss"].values).all()
    again = bayes.sample("chinchilla", frame, method="bootstrap", draws=200, seed=0)
    np.testing.assert_array_equal(
        again["posterior"]["beta"].values, tree["posterior"]["beta"].values
    )


def test_compiled_programs_are_kept_for_the_most_recent_uses_only(monkeypatch):
    from collections import OrderedDict

    monkeypatch.setattr(bayes, "_PROGRAMS", OrderedDict())
    monkeypatch.setattr(bayes, "PROGRAMS_KEPT", 2)
    built = []

    def build(name):
        built.append(name)
        return jax.jit(lambda x: x + 1.0)

    x = np.zeros(3, np.float32)
    for name in ["a", "b", "a", "c", "a", "b"]:
        program = bayes._compiled(name, lambda n=name: build(n), x)
        np.testing.assert_array_equal(program(x), x + 1.0)
    assert built == ["a", "b", "c", "b"]  # "a", used again before "c" came, was kept
    assert [key[0] for key in bayes._PROGRAMS] == ["a", "b"]


def test_bootstrap_takes_the_grid_and_refuses_priors():
    """The bootstrap's point fit starts from ``grid`` (a bad grid fails as in ``fit``), and
    ``priors``, which a bootstrap cannot use, are refused rather than ignored."""
    from slaws.fitting import FitError

    frame = _small(seed=2)
    with pytest.raises(FitError, match="grid names 'gamma'"):
        bayes.sample("chinchilla", frame, method="bootstrap", draws=20, grid={"gamma": [1.0]})
    with pytest.raises(ValueError, match="the bootstrap refits point estimates and has no prior"):
        bayes.sample("chinchilla", frame, method="bootstrap", priors={"E": ("LogNormal", 0, 1)})


def test_cli_posterior_json_netcdf_and_determinism(tmp_path, capsys, monkeypatch):
    from slaws.cli import main

    monkeypatch.setenv("SLAWS_JAX_CACHE", "")
    data = tmp_path / "runs.csv"
    _small(seed=5).to_csv(data, index=False)
    args = [
        "fit",
        str(data),
        "--law",
        "chinchilla",
        "--method",
        "bootstrap",
        "--draws",
        "100",
        "--seed",
        "7",
        "--json",
        "--quiet",
    ]
    assert main([*args, "--out", str(tmp_path / "fit.nc")]) == 0
    first = capsys.readouterr().out
    assert main(args) == 0
    assert capsys.readouterr().out == first  # same seed, byte for byte
    summary = bayes.json.loads(first)
    assert summary["method"] == "bootstrap"
    for stats in summary["params"].values():
        assert set(stats) == {"mean", "sd", "q05", "q50", "q95", "r_hat", "ess_bulk"}
        assert stats["q05"] <= stats["q50"] <= stats["q95"]
    assert "warnings" in summary["diagnostics"]
    tree = bayes.load(tmp_path / "fit.nc")
    assert GROUPS <= set(tree.children)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--method", "nuts", "--objective", "squared"], "--objective is for --method multistart"),
        (["--method", "bootstrap", "--chains", "2"], "--chains is for --method nuts"),
        (["--draws", "10"], "--draws needs --method"),
        (["--method", "svi", "--draws", "0"], "--draws must be >= 1"),
    ],
)
def test_cli_posterior_bad_options(extra, message, tmp_path, capsys):
    from slaws.cli import main

    data = tmp_path / "runs.csv"
    _small().to_csv(data, index=False)
    assert main(["fit", str(data), "--law", "chinchilla", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_forecast_intervals_and_extrapolation_flag(tmp_path, capsys):
    from slaws.cli import main

    frame = _small(seed=6)
    tree = bayes.sample("chinchilla", frame, method="bootstrap", draws=200, seed=0)
    inside = {"N": [float(frame["N"].median())], "D": [float(frame["D"].median())]}
    outside = {"N": [70e9, 1e13], "D": [1.4e12, 1e11]}
    table = bayes.forecast(tree, pd.DataFrame(inside))
    assert not table["extrapolation"].any()
    assert (table["extrapolation_distance"] == 0).all()
    far = bayes.forecast(tree, pd.DataFrame(outside))
    assert far["extrapolation"].all()
    assert far["extrapolation_distance"].iloc[1] > far["extrapolation_distance"].iloc[0] > 0
    for t in (table, far):
        assert (t["predictive_lo"] <= t["credible_lo"]).all()
        assert (t["credible_lo"] <= t["median"]).all() and (t["median"] <= t["credible_hi"]).all()
        assert (t["credible_hi"] <= t["predictive_hi"]).all()
    # Wider uncertainty the further out the forecast goes.
    width = far["credible_hi"] - far["credible_lo"]
    assert (width > (table["credible_hi"] - table["credible_lo"]).iloc[0]).all()

    path = tmp_path / "fit.nc"
    bayes.save(tree, path)
    assert main(["forecast", str(path), "--at", "N=7e10:1e13,D=1.4e12", "--json"]) == 0
    rows = bayes.json.loads(capsys.readouterr().out)["rows"]
    assert len(rows) == 2 and all(row["extrapolation"] for row in rows)
    assert main(["forecast", str(path), "--at", "N=1e9"]) == 2
    assert "lack column(s) D" in capsys.readouterr().err


def test_distillation_posterior_and_forecast_on_the_paper_design():
    """NUTS on Busbridge's teacher-student layout, simulated from Table 6's coefficients: the 90%
    intervals hold the truth, and a forecast for a larger student is flagged as extrapolation.

    The priors are those of the calibration study (around Table 6): on this design the
    likelihood alone leaves B' and beta' nearly free (B' D^-beta' is under 1% of the student term
    at every run), so the law's weak default priors give a posterior NUTS cannot cross in a
    test's budget; it says so through r_hat and ESS warnings."""
    from slaws.calibration import PRIORS
    from slaws.presets import get_preset
    from slaws.synthetic import distillation_like

    frame = distillation_like(seed=0)
    grid = {
        "A_prime": [1e3, 1e4],
        "B_prime": [1e4, 1e5],
        "alpha_prime": [0.2, 0.5],
        "beta_prime": [0.4, 0.8],
        "gamma_prime": [0.5, 1.0],
        "c0": [1.5, 3.0],
        "c1": [100.0, 1000.0],
        "f1": [0.05, 0.2],
        "d1": [1.0, 1.5],
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayes.PosteriorWarning)
        tree = bayes.sample(
            "distillation",
            frame,
            draws=300,
            warmup=300,
            chains=2,
            seed=0,
            priors=PRIORS["distillation"],
            grid=grid,
        )
    assert GROUPS <= set(tree.children)
    info = bayes.json.loads(tree.attrs["slaws"])
    assert info["diagnostics"]["max_r_hat"] < 1.05
    assert info["diagnostics"]["divergences"] == 0
    truth = get_preset("busbridge2025")["params"]
    posterior = tree["posterior"]
    for name in (
        "A_prime",
        "B_prime",
        "alpha_prime",
        "beta_prime",
        "gamma_prime",
        "c0",
        "f1",
        "d1",
    ):
        low, high = np.quantile(posterior[name].values, [0.05, 0.95])
        assert low < truth[name] < high, (name, low, high)
    assert set(info["fixed"]) == {"E", "A", "B", "alpha", "beta", "gamma"}

    at = pd.DataFrame({"N": [1e9, 5e10], "D": [2e10, 1e12], "L_T": [2.3, 2.1]})
    table = bayes.forecast(tree, at, prob=0.9, seed=0)
    assert list(table["extrapolation"]) == [False, True]
    assert (table["predictive_lo"] < table["credible_lo"]).all()
    assert (table["credible_hi"] < table["predictive_hi"]).all()
    assert (table["mean"] > at["L_T"]).all()  # a student never beats its teacher under this law


def test_student_t_sampler_matches_scipy():
    """The rejection-free Student-t (4 d.o.f.) draws follow SciPy's t(4); log densities agree."""
    with jax.enable_x64(True):
        d = bayes._student_t4(0.5, 2.0)
        draws = np.asarray(d.sample(jax.random.key(0), (200_000,)))
        reference = scipy.stats.t(4, loc=0.5, scale=2.0)
        assert float(d.log_prob(1.3)) == pytest.approx(reference.logpdf(1.3), rel=1e-12)
    assert scipy.stats.kstest(draws, reference.cdf).pvalue > 0.01
