"""The benchmark's methods (see :mod:`slaws.bench`): slaws's multi-start fit under each of its
objectives, its posteriors (NUTS, SVI, bootstrap), and the procedures users and papers run
instead (:mod:`slaws.baselines`: SciPy's curve_fit and L-BFGS-B as users write them, Gadre's
recipe, Caballero's BNSL recipe, Hoffmann's Approach 2; :mod:`slaws.revisiting`: the official
M1-M4 estimators). Each sees the training frame and the held-out inputs only."""

from __future__ import annotations

import json

import numpy as np

from slaws.bench import Method, Prediction, register_method

BAYES_DRAWS = 500


def law_loss(law_name, params, inputs):
    """Law ``law_name``'s loss at ``inputs`` (a frame or mapping) in float64.

    >>> from slaws.bench_methods import law_loss
    >>> from slaws.presets import get_preset
    >>> params = get_preset("epoch2024")["params"]
    >>> loss = law_loss("chinchilla", params, {"N": [7e10], "D": [1.4e12]})
    >>> loss.dtype, round(float(loss[0]), 4)
    (dtype('float64'), 1.9739)
    """
    import jax

    from slaws.law import get_law

    law = get_law(law_name)
    with jax.enable_x64(True):
        x = {k: np.asarray(inputs[k], np.float64) for k in law.used_inputs(inputs)}
        return np.asarray(law.jit_loss(params, x))


def _slaws(objective):
    def run(train, test, case, seed):
        from slaws.fitting import fit

        result = fit(case.law, train, objective=objective)
        return Prediction(law_loss(case.law, result.params, test), result.params, result.status)

    return run


for _objective, _what, _quick in (
    ("huber", "Huber (delta 1e-3) on log residuals, summed: Hoffmann's and Epoch's", True),
    ("squared_log", "least squares on log loss", False),
    ("squared", "least squares on loss", False),
    ("huber_likelihood", "Epoch's Huber likelihood with a fitted scale", False),
):
    register_method(
        Method(
            f"slaws-{_objective}",
            f"slaws multi-start Levenberg-Marquardt from the law's grid, {_what} objective",
            _slaws(_objective),
            quick=_quick,
        )
    )


def _posterior(method, **options):
    def run(train, test, case, seed):
        from slaws import bayes

        tree = bayes.sample(case.law, train, method=method, seed=seed, **options)
        summary = bayes.summarize(tree)
        params = {k: v["q50"] for k, v in summary["params"].items()} | summary["fixed"]
        inputs = list(json.loads(tree.attrs["slaws"])["input_ranges"])
        forecast = bayes.forecast(tree, test[inputs], prob=0.9, seed=seed)
        status = "converged" if summary["status"] == "ok" else "warnings"
        lo, hi = forecast["predictive_lo"].to_numpy(), forecast["predictive_hi"].to_numpy()
        return Prediction(forecast["median"].to_numpy(), params, status, lo, hi)

    return run


register_method(
    Method(
        "slaws-nuts",
        "slaws NUTS posterior (Student-t likelihood on log loss, 4 chains x 500 draws); "
        "median forecast and 90% predictive interval",
        _posterior("nuts", draws=BAYES_DRAWS, warmup=BAYES_DRAWS),
        intervals=True,
        quick=False,
    )
)
register_method(
    Method(
        "slaws-svi",
        "slaws SVI (Laplace guide) posterior; median forecast and 90% predictive interval",
        _posterior("svi", draws=BAYES_DRAWS),
        intervals=True,
        quick=False,
    )
)
register_method(
    Method(
        "slaws-bootstrap",
        "slaws bootstrap: 200 vmapped refits on resampled runs; median forecast and 90% interval",
        _posterior("bootstrap", draws=200),
        intervals=True,
        quick=False,
    )
)


def _needs_chinchilla(case):
    if case.law != "chinchilla":
        return f"fits E + A/N^alpha + B/D^beta only (this task's law is {case.law})"
    return None


def _needs_curve(case):
    return None if case.inputs == ["x"] else "fits a one-dimensional learning curve only"


def _chinchilla_baseline(fitter):
    def run(train, test, case, seed):
        result = fitter(train)
        loss = law_loss("chinchilla", result.params, test)
        return Prediction(loss, result.params, result.status)

    return run


def _curve_fit(train):
    from slaws import baselines

    return baselines.curve_fit_chinchilla(train)


def _lbfgsb(train):
    from slaws import baselines

    return baselines.lbfgsb_chinchilla(train, grid="coarse")


def _gadre(train):
    from slaws import baselines

    n, d = train["N"].to_numpy(float), train["D"].to_numpy(float)
    return baselines.gadre_overtrain(n, d / n, train["loss"].to_numpy(float))


register_method(
    Method(
        "scipy-curve_fit",
        "scipy.optimize.curve_fit on raw loss from ColPret's starting point (TRF with "
        "alpha, beta >= 0; dogbox on failure), as users write it",
        _chinchilla_baseline(_curve_fit),
        _needs_chinchilla,
    )
)
register_method(
    Method(
        "scipy-lbfgsb",
        "scipy L-BFGS-B on Huber (1e-3) of log residuals with its gradient, from a coarse grid "
        "of starts (Hoffmann's and Epoch's objective, as users run it with SciPy)",
        _chinchilla_baseline(_lbfgsb),
        _needs_chinchilla,
    )
)
register_method(
    Method(
        "gadre-curve_fit",
        "Gadre et al. 2024's recipe: L = a N^b + c 6^(b/2) D^b + E by curve_fit from 128 "
        "starts, best by residual standard error",
        _chinchilla_baseline(_gadre),
        _needs_chinchilla,
    )
)


def _bnsl(train, test, case, seed):
    from slaws import baselines

    result = baselines.bnsl_caballero(train["x"].to_numpy(float), train["loss"].to_numpy(float))
    x = test["x"].to_numpy(float)
    return Prediction(baselines.bnsl_predict(result.params, x), result.params, result.status)


register_method(
    Method(
        "bnsl-caballero",
        "Caballero et al. 2023's recipe: a brute-force grid on MSLE(+1) then curve_fit of the "
        "one-break BNSL",
        _bnsl,
        _needs_curve,
    )
)


def _official(kind):
    def run(train, test, case, seed):
        from slaws import revisiting

        x, y = train["x"].to_numpy(float), train["loss"].to_numpy(float)
        result = revisiting.fit(kind, x, y, case.info.get("domain", "LM"))
        return Prediction(result.predict(test["x"].to_numpy(float)), result.params, result.status)

    return run


for _kind in ("M1", "M2", "M3", "M4"):
    register_method(
        Method(
            f"official-{_kind}",
            f"{_kind} by the official estimator of Alabdulmohsin et al. 2022 (its own "
            "alternating least squares and gradient steps), with its per-domain settings",
            _official(_kind),
            _needs_curve,
        )
    )


def _approach2(train, test, case, seed):
    from slaws import baselines

    result = baselines.approach2(baselines.isoflop_parabolas(train))
    return Prediction(None, {"exponent": result["a"]}, result["status"])


register_method(
    Method(
        "approach2",
        "Hoffmann et al. 2022's Approach 2: a parabola in log N per IsoFLOP budget, then "
        "N_opt ~ C^a by least squares (the compute-optimal exponent only, no loss forecast)",
        _approach2,
        lambda case: None if case.info.get("isoflop") else "needs IsoFLOP profiles",
    )
)
