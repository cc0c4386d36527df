"""Hierarchical fits across families: structure, recovery of each family's parameters, shrinkage
of a family with few runs toward the population, and per-family posteriors that the rest of
slaws takes like any other."""

import json
import warnings

import numpy as np
import pytest

from slaws import allocation, bayes, data, fitting, hierarchical, synthetic

POOLED = ("E", "alpha", "beta")


@pytest.fixture(scope="module")
def frame():
    return synthetic.families(noise=0.01, seed=0)


@pytest.fixture(scope="module")
def tree(frame):
    # The settings of the module's examples, so the two share compiled programs.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayes.PosteriorWarning)  # short chains
        return hierarchical.sample(
            "chinchilla", frame, pooled=POOLED, draws=200, warmup=200, chains=2, seed=0
        )


def test_examples_run(tree):
    """The module's examples (not in test_doctests.py): they sample this fixture's model with its
    settings, so here they reuse its compiled programs instead of building them again."""
    import doctest

    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(hierarchical, optionflags=flags, raise_on_error=False)
    assert result.attempted > 20 and result.failed == 0, result


def test_tree_holds_population_and_family_posteriors(tree, frame):
    info = json.loads(tree.attrs["slaws"])
    assert info["method"] == "nuts-hierarchical"
    assert info["families"] == ["a", "b", "c"] and info["pooled"] == list(POOLED)
    assert info["centring"] == dict.fromkeys(POOLED, dict.fromkeys("abc", hierarchical.CENTRING))
    assert info["point_families"] == list(frame["family"])
    posterior = tree.posterior
    for name in POOLED:
        assert posterior[name].dims == ("chain", "draw", "family")
        assert posterior[f"z_{name}"].dims == ("chain", "draw", "family")
        assert posterior[f"mu_{name}"].dims == ("chain", "draw")
        assert bool((posterior[f"tau_{name}"] > 0).all())
    for name in ("A", "B", "sigma"):  # shared by every family
        assert posterior[name].dims == ("chain", "draw")
    assert tree.log_likelihood["log_loss"].shape == (2, 200, len(frame))
    assert info["diagnostics"]["divergences"] <= 3


def test_each_family_is_recovered(tree, frame):
    """The true E and alpha of the two families with 30 runs lie inside their 98% intervals,
    and the families are told apart where the truth separates them (alpha_b > alpha_a)."""
    posterior = tree.posterior
    for family in ("a", "b"):
        truth = frame.attrs["params"][family]
        for name in ("E", "alpha"):
            draws = posterior[name].sel(family=family).values.ravel()
            lo, hi = np.quantile(draws, [0.01, 0.99])
            assert lo < truth[name] < hi, (family, name, lo, truth[name], hi)
    difference = posterior["alpha"].sel(family="b") - posterior["alpha"].sel(family="a")
    assert float((difference > 0).mean()) > 0.95


def test_a_family_with_few_runs_borrows_strength(tree, frame):
    """Family c has 6 runs for 5 parameters: alone it pins alpha down poorly; pooled, its
    interval is narrower than a new family's (the population's), and its estimate sits nearer
    the truth than its own point fit's."""
    truth = frame.attrs["params"]["c"]["alpha"]
    c = hierarchical.family_posterior(tree, "c")
    new = hierarchical.family_posterior(tree, "population", seed=0)
    width = lambda t: np.subtract(*np.quantile(t.posterior["alpha"].values, [0.95, 0.05]))
    assert width(c) < width(new)
    runs = frame[frame["family"] == "c"].reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fitting.FitWarning)  # 6 runs, 5 parameters: it warns
        alone = fitting.fit("chinchilla", runs)
    pooled = float(np.median(c.posterior["alpha"].values))
    assert abs(pooled - truth) < abs(alone.params["alpha"] - truth)


def test_family_posteriors_work_everywhere(tree, frame, tmp_path):
    c = hierarchical.family_posterior(tree, "c")
    assert c.posterior["alpha"].dims == ("chain", "draw")
    assert int(c.log_likelihood.sizes["points"]) == int((frame["family"] == "c").sum())
    out = bayes.forecast(c, {"N": [1e9, 1e10], "D": [2e10, 2e11]})
    assert (out["credible_lo"] < out["median"]).all() and (out["median"] < out["credible_hi"]).all()
    plan = allocation.compute_optimal("chinchilla", c, [1e22])
    assert plan["status"].tolist() == ["ok"] and plan["N_q05"][0] < plan["N"][0] < plan["N_q95"][0]
    bayes.save(c, tmp_path / "c.nc")
    again = bayes.load(tmp_path / "c.nc")
    np.testing.assert_array_equal(again.posterior["alpha"].values, c.posterior["alpha"].values)
    new = hierarchical.family_posterior(tree, "population", seed=0)
    assert int(new.log_likelihood.sizes["points"]) == 0
    same = hierarchical.family_posterior(tree, "population", seed=0)
    np.testing.assert_array_equal(new.posterior["alpha"].values, same.posterior["alpha"].values)


def test_centring_changes_coordinates_not_the_model():
    """Whatever the centring weight w, per parameter and family, the model is the same: at the
    same family values the likelihood is equal, and the joint densities differ by the Jacobian
    of z = w m + (theta - m) / tau^(1 - w), (1 - w) log tau for each (parameter, family)."""
    import jax
    from numpyro.infer.util import log_density

    from slaws.law import get_law

    inputs = {"N": np.array([1e8, 1e9, 3e8]), "D": np.array([2e9, 2e10, 1e10])}
    inputs["family"] = np.array([0.0, 1.0, 2.0])
    log_obs = np.log([3.1, 2.6, 2.9])
    mu = {"E": 1.7, "alpha": 0.34}
    tau = {"E": 0.2, "alpha": 0.3}
    theta = {"E": np.array([1.6, 1.8, 1.75]), "alpha": np.array([0.3, 0.36, 0.33])}
    shared = {"A": 400.0, "B": 410.0, "beta": 0.28, "sigma": 0.02}
    mixed = {"E": [1.0, 0.0, 0.5], "alpha": [0.0, 0.3, 1.0]}
    densities = []
    with jax.enable_x64(True):
        for centring in ([1.0] * 3, mixed):
            model = hierarchical.make_model("chinchilla", centring, pooled=list(mu))
            values = dict(shared)
            for name in mu:
                p = get_law("chinchilla").param(name)
                internal, location = p.to_internal(theta[name]), p.to_internal(mu[name])
                w = np.asarray(model.centring[name])
                z = w * location + (internal - location) / tau[name] ** (1 - w)
                values |= {f"mu_{name}": mu[name], f"tau_{name}": tau[name], f"z_{name}": z}
            joint, trace = log_density(model, (inputs, log_obs), {}, values)
            likelihood = trace["log_loss"]["fn"].log_prob(log_obs).sum()
            densities.append((float(joint), float(likelihood)))
    (joint_c, like_c), (joint_m, like_m) = densities
    assert like_m == pytest.approx(like_c, rel=1e-12)
    jacobian = sum(np.log(tau[n]) * (1 - np.asarray(mixed[n])).sum() for n in mixed)
    assert joint_m - joint_c == pytest.approx(jacobian, rel=1e-9)


def test_bad_requests_are_one_line_errors(tree, frame):
    with pytest.raises(ValueError, match="at least 2 families"):
        hierarchical.sample("chinchilla", frame[frame["family"] == "a"])
    with pytest.raises(data.DataError, match="family"):
        hierarchical.sample("chinchilla", frame.drop(columns="family"))
    with pytest.raises(ValueError, match="has no parameter 'gamma'"):
        hierarchical.make_model("chinchilla", [1.0, 0.0], pooled=["gamma"])
    with pytest.raises(ValueError, match="one weight per family for every pooled parameter"):
        hierarchical.make_model("chinchilla", {"E": [1.0, 0.0]}, pooled=["E", "alpha"])
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        hierarchical.make_model("chinchilla", [1.5, 0.0])
    with pytest.raises(ValueError, match=r"one weight per family \(a, b, c\)"):
        hierarchical.sample("chinchilla", frame, centring=[1.0, 0.0])
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        hierarchical.sample("chinchilla", frame, centring=-0.5)
    with pytest.raises(ValueError, match="unknown family 'd'"):
        hierarchical.family_posterior(tree, "d")


def test_command_line_fits_and_forecasts_families(capsys, tree, frame, monkeypatch, tmp_path):
    """``slaws fit --pool`` and ``slaws forecast --family``, in process; the warm-up is cut to
    the examples' 200 steps (the CLI keeps the default 1000) so compiled programs are shared."""
    import functools

    from cli_support import expect_error, run

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SLAWS_JAX_CACHE", "")
    short = functools.partial(hierarchical.sample, warmup=200)
    monkeypatch.setattr(hierarchical, "sample", short)
    frame.to_csv("runs.csv", index=False)
    argv = ["fit", "runs.csv", "--law", "chinchilla", "--method", "nuts", "--pool", "E,alpha,beta"]
    code, out, err = run(capsys, *argv, "--draws", 200, "--chains", 2, "--out", "fit.nc", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["method"] == "nuts-hierarchical"
    assert {"alpha[a]", "alpha[c]", "mu_alpha", "tau_alpha", "A"} <= set(summary["params"])
    mean = summary["params"]["alpha[b]"]["mean"]
    expected = float(tree.posterior["alpha"].sel(family="b").mean())
    assert mean == pytest.approx(expected, rel=0.02)  # the same model and seed as the fixture
    code, out, err = run(capsys, "forecast", "fit.nc", "--family", "c", "--at", "N=1e9,D=2e10")
    assert code == 0, err
    assert "credible_lo" in out
    expect_error(capsys, "forecast", "fit.nc", "--at", "N=1e9,D=2e10", fragments=["pick one"])
    expect_error(capsys, "forecast", "fit.nc", "--family", "z", "--at", "N=1e9,D=2e10")
    expect_error(capsys, *argv[:-2], "--pool", "gamma", fragments=["no parameter 'gamma'"])
    expect_error(capsys, *argv[:-4], "--method", "svi", "--pool", "all", fragments=["--pool"])
