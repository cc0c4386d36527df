"""Fault injection: optimisers that stop short, refits that cannot converge, stuck and divergent
chains, starts whose gradients are NaN. Each is reported in the result's status or diagnostics,
never hidden. (Starts where the law is NaN: tests/test_fitting.py; a grid run killed half-way:
tests/test_grid.py.)"""

import json
import warnings

import numpy as np
import pytest

import slaws
from slaws import bayes, fitting, synthetic

GRID = {"A": [300.0, 1000.0], "B": [300.0, 1000.0]}


@pytest.fixture(scope="module")
def frame():
    return synthetic.chinchilla_like(n_models=8, n_budgets=5, noise=0.005, seed=1)


def _nan_gradient_law():
    """Chinchilla plus a term that is always 0 but whose derivative is 0 * inf = NaN wherever
    alpha <= 0.3: the law's values stay finite, its gradients do not."""
    import jax.numpy as jnp

    from slaws.laws import chinchilla

    def log_loss(p, x):
        trap = 0.0 * jnp.sqrt(jnp.maximum(p["alpha"] - 0.3, 0.0))
        return chinchilla.log_loss(p, x) + trap

    return slaws.Law(name="nan_gradient", log_loss=log_loss, params=chinchilla.PARAMS)


def test_starts_with_nan_gradients_are_reported_and_skipped(frame):
    law = _nan_gradient_law()
    grid = {"alpha": [0.2, 0.5], "beta": [0.2, 0.5], **GRID}
    result = slaws.fit(law, frame, grid=grid)
    starts = result.starts
    failed = starts["status"] == "failed"
    assert failed.sum() == len(starts) // 2  # every start at alpha = 0.2, and only those
    assert np.allclose(starts["alpha"][failed], 0.2) and (starts["steps"][failed] == 0).all()
    assert result.status == "converged" and np.isfinite(result.objective)
    assert result.params["alpha"] > 0.3
    every = slaws.fit(law, frame, grid={"alpha": [0.2], "beta": [0.5], **GRID})
    assert every.status == "failed"


def test_an_optimiser_stopped_short_says_so(frame):
    result = slaws.fit("chinchilla", frame, grid=GRID, max_steps=2)
    assert result.status == "max_steps"
    assert set(result.starts["status"]) <= {"max_steps", "converged"}
    assert np.isfinite(result.objective)  # the best point reached is still returned


def test_bootstrap_refits_that_stop_short_are_counted(frame):
    point, table = fitting.bootstrap("chinchilla", frame, resamples=40, grid=GRID, max_steps=1)
    assert point.status == "max_steps"
    assert (table["status"] != "converged").any()
    tree = bayes.sample("chinchilla", frame, method="bootstrap", draws=40)  # converged: no warning
    assert json.loads(tree.attrs["slaws"])["diagnostics"]["warnings"] == []


def test_stuck_and_divergent_chains_are_reported(frame, monkeypatch):
    """The sampler is replaced by one whose first chain never moves and whose second diverges on
    a tenth of its transitions: r_hat, ESS and divergences must all say so."""

    def faulty_runner(model, draws, warmup, args, keys, method):
        def run(args, keys):
            start = {k: np.asarray(v) for k, v in args[0].items()}
            rng = np.random.default_rng(0)
            samples = {}
            for name, z in start.items():
                moving = z + 0.1 * rng.standard_normal(draws)
                samples[name] = np.stack([np.full(draws, z), moving])
            samples = _constrained(model, args, samples)
            stats = {
                "diverging": np.stack([np.zeros(draws, bool), np.arange(draws) % 10 == 0]),
                "energy": rng.standard_normal((2, draws)),
                "lp": rng.standard_normal((2, draws)),
                "n_steps": np.full((2, draws), 7),
                "acceptance_rate": np.full((2, draws), 0.9),
                "step_size": np.full((2, draws), 0.1),
            }
            return samples, stats

        return run

    monkeypatch.setattr(bayes, "_chain_runner", faulty_runner)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", bayes.PosteriorWarning)
        tree = bayes.sample("chinchilla", frame, draws=100, warmup=100, chains=2, grid=GRID)
    diagnostics = json.loads(tree.attrs["slaws"])["diagnostics"]
    assert diagnostics["divergences"] == 10
    assert diagnostics["max_r_hat"] > 1.1
    messages = " | ".join(str(w.message) for w in caught)
    assert "10 divergent transitions" in messages
    assert "r_hat" in messages


def _constrained(model, args, samples):
    """Unconstrained chain values -> natural scale, as numpyro's sampler returns them."""
    import jax
    from numpyro.infer.util import constrain_fn

    with jax.enable_x64(True):
        one = jax.vmap(lambda v: constrain_fn(model, tuple(args[2]), {}, v))
        flat = {k: v.reshape(-1) for k, v in samples.items()}
        out = one(flat)
    return {k: np.asarray(v).reshape(2, -1) for k, v in out.items()}
