"""Hierarchical fits: one law over runs that come in families (architectures, datasets,
tokenisers: the ``family`` column), with its parameters partially pooled across families.

Each pooled parameter has a population location ``mu_<name>`` (with the law's own prior) and a
spread ``tau_<name>`` on the parameter's unconstrained scale (log for scales, logit for bounded
exponents: the coordinate the point fits optimise in); family ``f`` gets

    to_internal(theta_f) ~ Normal(to_internal(mu), tau).

A family with five runs then borrows strength from families with fifty: its parameters shrink
toward the population as far as its own data allow. Parameters not pooled are shared by every
family; the noise scale ``sigma`` is shared.

NUTS samples each family's value through a site ``z_f`` with centring weight ``w`` in [0, 1]
(the partially non-centred form of Papaspiliopoulos, Roberts and Skold 2007):

    z_f ~ Normal(w m, tau^w),  to_internal(theta_f) = m + tau^(1 - w) (z_f - w m),

where ``m = to_internal(mu)``. ``w = 1`` is the centred form (``z_f`` is the family's value),
which meets a funnel between tau and the family values as tau shrinks: families that share a
parameter almost exactly, as the exponents of one architecture on three datasets do, give
divergences there however many runs each has. ``w = 0`` is the non-centred form (``z_f`` the
standardised departure), which turns a family whose runs pin its value down into a narrow curved
ridge of (mu, tau, z_f) (Betancourt and Girolami 2015). :data:`CENTRING` = 0.5, for every family
and parameter, sits between the two: on Gadre et al.'s three training sets
(``benchmarks/hierarchical.py``) 10 of 12 fits have no divergent transitions and two have one,
where centring families by their run count gave 9-25 in every fit and one r_hat of 1.97.
``make_model`` and ``sample`` take any weights.

:func:`sample` returns an arviz ``DataTree`` whose posterior holds ``mu_*``, ``tau_*``, ``z_*``
and each pooled parameter per family (dimension ``family``); :func:`family_posterior` turns it
into an ordinary single-law posterior for one family, or for a new family drawn from the
population, which ``bayes.forecast``, ``allocation.compute_optimal`` and ``bayes.save`` take as
they take any posterior.
"""

from __future__ import annotations

import functools
import json
import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from slaws import bayes
from slaws import data as _data
from slaws.law import Law, get_law

TAU_PRIOR = ("HalfNormal", 0.5)  # spread between families on the unconstrained scale
CENTRING = 0.5
POINTS_PER_PARAM = 3  # a family with fewer runs per free parameter starts from the pooled fit
POPULATION = "population"


def make_model(
    law: str | Law,
    centring: Sequence[float] | Mapping[str, Sequence[float]],
    *,
    pooled: Sequence[str] | None = None,
    likelihood: str = "student_t",
    fixed: Mapping[str, float] | str | None = None,
    priors: Mapping[str, tuple] | None = None,
    delta: float = 1e-3,
):
    """A numpyro model ``model(inputs, log_obs=None, mask=None)`` of ``law`` over
    ``len(centring)`` families, ``inputs["family"]`` giving each point's family index.

    ``centring`` gives, per family, the weight ``w`` of the site ``z_<name>`` through which its
    pooled parameters are sampled (see the module's docstring): 1 for the family's value on the
    unconstrained scale itself (centred: best where the family's own runs pin it down and
    families differ), 0 for its standardised departure from the population (non-centred: best
    where they do not, since then the family and ``tau`` form a funnel that NUTS cannot enter),
    or between. One sequence serves every pooled parameter; a mapping gives each pooled
    parameter its own. :func:`sample` uses :data:`CENTRING` throughout.

    ``pooled`` lists the partially pooled parameters (every free parameter by default); the
    others are shared. ``priors`` may override a parameter's prior (its population location's,
    when pooled), a spread's (``"tau_alpha"``, :data:`TAU_PRIOR` by default) or the noise's
    (``"sigma"``).

    >>> import numpy as np
    >>> from numpyro import handlers
    >>> from slaws import hierarchical
    >>> centring = [1.0, 1.0, 0.0]  # centred: two families with many runs; not: one with few
    >>> model = hierarchical.make_model("chinchilla", centring, pooled=["E", "alpha", "beta"])
    >>> inputs = {"N": np.array([1e8, 1e9]), "D": np.array([2e9, 2e10]), "family": np.array([0, 2])}
    >>> trace = handlers.trace(handlers.seed(model, 0)).get_trace(inputs)
    >>> sorted(name for name, site in trace.items() if site["type"] == "sample")[:6]
    ['A', 'B', 'log_loss', 'mu_E', 'mu_alpha', 'mu_beta']
    >>> trace["z_alpha"]["value"].shape, model.site_shapes["z_alpha"]
    ((3,), (3,))
    """
    from slaws.fitting import _resolve_fixed

    law = get_law(law)
    if likelihood not in bayes.LIKELIHOODS:
        raise ValueError(
            f"unknown likelihood {likelihood!r} (known: {', '.join(bayes.LIKELIHOODS)})"
        )
    priors = {name: tuple(spec) for name, spec in (priors or {}).items()}
    held = _resolve_fixed(law, None, fixed)
    free = [p.name for p in law.params if p.name not in held or p.name in priors]
    held = {k: v for k, v in held.items() if k not in free}
    pooled = list(free if pooled is None else pooled)
    for name in pooled:
        if name not in law.param_names:
            raise ValueError(
                f"pooled: law {law.name!r} has no parameter {name!r} ({', '.join(law.param_names)})"
            )
        if name not in free:
            raise ValueError(f"parameter {name!r} is fixed; it cannot be pooled")
    known = {"sigma", *free, *(f"tau_{name}" for name in pooled)}
    for name in priors:
        if name not in known:
            raise ValueError(f"priors: {name!r} is not a prior of this model ({', '.join(known)})")
    bayes._require_priors(law, free, priors)
    pooled = tuple(n for n in free if n in pooled)
    if not isinstance(centring, Mapping):
        centring = dict.fromkeys(pooled, centring)
    if set(centring) != set(pooled) or len({len(centring[name]) for name in pooled}) > 1:
        raise ValueError(
            f"centring: one weight per family for every pooled parameter ({', '.join(pooled)})"
        )
    weights = {name: tuple(float(w) for w in centring[name]) for name in pooled}
    if not all(0.0 <= w <= 1.0 for ws in weights.values() for w in ws):
        raise ValueError("centring: weights must lie in [0, 1] (1 centred, 0 non-centred)")
    return _model(
        law,
        tuple(weights.items()),
        pooled,
        likelihood,
        tuple(held.items()),
        tuple(sorted(priors.items())),
        delta,
    )


@functools.lru_cache(maxsize=16)
def _model(law, centring, pooled, likelihood, held, priors, delta):
    import numpyro
    import numpyro.distributions as dist

    bayes._import_numpyro()
    held, priors, centring = dict(held), dict(priors), dict(centring)
    n_families = len(next(iter(centring.values()), ()))

    def model(inputs, log_obs=None, mask=None):
        family = inputs["family"].astype(int)
        params = {}
        for p in law.params:
            if p.name in held:
                params[p.name] = held[p.name]
                continue
            prior = bayes._distribution(priors.get(p.name, p.prior))
            if p.name not in pooled:
                params[p.name] = numpyro.sample(p.name, prior)
                continue
            mu = numpyro.sample(f"mu_{p.name}", prior)
            tau_prior = priors.get(f"tau_{p.name}", TAU_PRIOR)
            tau = numpyro.sample(f"tau_{p.name}", bayes._distribution(tau_prior))
            location, w = p.to_internal(mu), np.asarray(centring[p.name])
            with numpyro.plate("families", n_families):
                z = numpyro.sample(f"z_{p.name}", dist.Normal(w * location, tau**w))
            params[p.name] = p.from_internal(_internal(location, tau, z, w))[family]
        sigma = numpyro.sample("sigma", bayes._distribution(priors.get("sigma", bayes.SIGMA_PRIOR)))
        mu = law.log_loss(params, {k: v for k, v in inputs.items() if k != "family"})
        noise = bayes._noise(likelihood, mu, sigma, delta)
        with numpyro.plate("points", mu.shape[-1]):
            numpyro.sample("log_loss", noise if mask is None else noise.mask(mask), obs=log_obs)

    shared = [p.name for p in law.params if p.name not in held and p.name not in pooled]
    model.site_shapes = dict.fromkeys([*shared, "sigma"], ())
    for name in pooled:
        model.site_shapes |= {f"mu_{name}": (), f"tau_{name}": (), f"z_{name}": (n_families,)}
    model.dims = {f"z_{name}": ["family"] for name in pooled}
    model.law, model.likelihood, model.fixed, model.delta = law, likelihood, held, delta
    model.pooled = pooled
    model.centring = centring
    model.regularize_mass_matrix = True
    return model


def _internal(location, tau, z, centring):
    """Family values on the unconstrained scale from a site ``z`` of weight ``centring``: each
    family's value itself where 1, its standardised departure ``(value - location) / tau``
    where 0."""
    return location + tau ** (1.0 - centring) * (z - centring * location)


def _site(location, tau, internal, centring):
    """The inverse of :func:`_internal`: the site ``z`` of family values ``internal``."""
    return centring * location + (internal - location) / tau ** (1.0 - centring)


def sample(
    law: str | Law,
    data,
    *,
    pooled: Sequence[str] | None = None,
    likelihood: str = "student_t",
    draws: int = 1000,
    warmup: int = 1000,
    chains: int = 4,
    chain_method: str = "auto",
    seed: int = 0,
    columns: Mapping[str, str] | None = None,
    fixed: Mapping[str, float] | str | None = None,
    priors: Mapping[str, tuple] | None = None,
    grid: Mapping | None = None,
    centring: float | Sequence[float] | Mapping[str, Sequence[float]] | None = None,
):
    """NUTS posterior of ``law`` fitted to every family of ``data`` at once, parameters in
    ``pooled`` partially pooled (see the module's docstring and :func:`make_model`).

    NUTS starts at the posterior mode found from one point fit per family (the pooled fit's
    parameters for a family with too few runs of its own to fit), as ``bayes.sample`` starts at
    the mode near the multi-start optimum. The tree is ``bayes.sample``'s, with the posterior
    variables ``mu_*``, ``tau_*``, ``z_*`` and each pooled parameter per family (dimension
    ``family``, labelled by the family names); ``tree.attrs["slaws"]`` adds ``families``,
    ``pooled``, the ``centring`` weights per pooled parameter and family and each point's family
    (``point_families``). Diagnostics as in ``bayes.sample``. ``centring`` overrides
    :data:`CENTRING` (see :func:`make_model`): one weight for every family, or weights in the
    order of the sorted family names.

    Three families of Chinchilla-like runs whose exponent alpha differs by family, one of them
    with six runs only:

    >>> import warnings
    >>> from slaws import hierarchical, synthetic
    >>> frame = synthetic.families(seed=0)
    >>> frame.groupby("family").size().to_dict()
    {'a': 30, 'b': 30, 'c': 6}
    >>> pooled = ["E", "alpha", "beta"]  # A and B shared by every family
    >>> with warnings.catch_warnings():  # short chains: too few draws for the ESS checks
    ...     warnings.simplefilter("ignore")
    ...     tree = hierarchical.sample(
    ...         "chinchilla", frame, pooled=pooled, draws=200, warmup=200, chains=2
    ...     )
    >>> tree.posterior["alpha"].dims, tree.posterior["family"].values.tolist()
    (('chain', 'draw', 'family'), ['a', 'b', 'c'])
    >>> a, b = (tree.posterior["alpha"].sel(family=f) for f in "ab")
    >>> float((b > a).mean()) > 0.95  # the truth: alpha_b = 1.1 alpha_a
    True

    Family ``c`` as an ordinary posterior (its 6 points), and a family not yet trained:

    >>> from slaws import bayes
    >>> c = hierarchical.family_posterior(tree, "c")
    >>> c.posterior["alpha"].dims, int(c.log_likelihood.sizes["points"])
    (('chain', 'draw'), 6)
    >>> new = hierarchical.family_posterior(tree, "population")
    >>> list(bayes.forecast(new, {"N": [1e9], "D": [2e10]}).columns)[:4]
    ['N', 'D', 'mean', 'median']
    """
    import jax

    from slaws.fitting import FitWarning, _resolve_fixed, fit

    law = get_law(law)
    frame = _data.load(data, columns=columns, required=(*law.inputs, "loss", "family"))
    names = sorted(frame["family"].unique())
    if len(names) < 2:
        raise ValueError(
            f"a hierarchical fit needs runs of at least 2 families in column 'family', found "
            f"{len(names)}; fit one family with bayes.sample"
        )
    index = frame["family"].map({name: i for i, name in enumerate(names)}).to_numpy()
    n_law = len(law.params) - len(_resolve_fixed(law, None, fixed))
    if centring is None or isinstance(centring, int | float):
        centring = [CENTRING if centring is None else centring] * len(names)
    weights = centring.values() if isinstance(centring, Mapping) else [centring]
    if any(len(w) != len(names) for w in weights):
        raise ValueError(f"centring: one weight per family ({', '.join(names)})")
    model = make_model(
        law, centring, pooled=pooled, likelihood=likelihood, fixed=fixed, priors=priors
    )
    n_free = sum(math.prod(shape) for shape in model.site_shapes.values())
    _data.require_points(frame, n_free, what=f"hierarchical law {law.name!r}")
    chain_method = bayes._resolve_chain_method(chain_method, chains)
    with jax.enable_x64(True):
        inputs = {k: np.asarray(frame[k], float) for k in law.used_inputs(frame)}
        inputs["family"] = index.astype(float)  # float: padding and tracing treat every input alike
        log_obs = np.log(np.asarray(frame["loss"], float))

        def point_fit(part):
            with warnings.catch_warnings():  # the posterior shows what the point fit cannot
                warnings.simplefilter("ignore", FitWarning)
                return fit(law, part, fixed=model.fixed or None, grid=grid)

        def find_start():
            overall = point_fit(frame)
            per_family = []
            for name in names:
                part = frame[frame["family"] == name].reset_index(drop=True)
                enough = len(part) >= POINTS_PER_PARAM * n_law
                result = point_fit(part) if enough else None
                ok = result is not None and result.status == "converged"
                per_family.append(result.params if ok else overall.params)
            start = {k: v for k, v in overall.params.items() if k in model.site_shapes}
            for name in model.pooled:
                p = law.param(name)
                internal = np.asarray([p.to_internal(params[name]) for params in per_family])
                location, spread = internal.mean(), max(float(internal.std()), 0.05)
                centring = np.asarray(model.centring[name])
                start |= {
                    f"mu_{name}": float(p.from_internal(location)),
                    f"tau_{name}": spread,
                    f"z_{name}": _site(location, spread, internal, centring),
                }
            residual = np.asarray(law.jit_log_loss(overall.params, inputs)) - log_obs
            return start | {"sigma": max(float(np.std(residual)), 1e-4)}

        tree = bayes._nuts(
            model,
            inputs,
            log_obs,
            find_start,
            jax.random.key(seed),
            draws,
            warmup,
            chains,
            chain_method,
        )
        diagnostics = bayes._diagnose(tree, "nuts")
    tree = _with_family_values(tree, model, names)
    info = {
        "law": law.name,
        "method": "nuts-hierarchical",
        "likelihood": likelihood,
        "fixed": model.fixed,
        "families": names,
        "pooled": list(model.pooled),
        "centring": {
            name: dict(zip(names, weights, strict=True)) for name, weights in model.centring.items()
        },
        "point_families": [names[i] for i in index],
    }
    inputs.pop("family")
    return bayes._finish(tree, info, None, seed, frame, inputs, diagnostics)


def _with_family_values(tree, model, names):
    """Add each pooled parameter per family (natural scale) and label the families."""
    import jax

    posterior = tree["posterior"].to_dataset()
    with jax.enable_x64(True):
        for name in model.pooled:
            p = model.law.param(name)
            location = p.to_internal(posterior[f"mu_{name}"].values)[..., None]
            spread = posterior[f"tau_{name}"].values[..., None]
            z = posterior[f"z_{name}"].values
            centring = np.asarray(model.centring[name])
            values = p.from_internal(_internal(location, spread, z, centring))
            posterior[name] = (("chain", "draw", "family"), np.asarray(values))
    tree["posterior"] = posterior.assign_coords(family=names)
    return tree


def family_posterior(tree, family: str, *, seed: int = 0):
    """One family's posterior from a hierarchical ``tree`` as an ordinary posterior of the law
    (as ``bayes.sample`` makes), for ``bayes.forecast``, ``allocation`` or ``bayes.save``.

    ``family`` is a family's name, or ``"population"``: a new family drawn from the population
    (each draw's pooled parameters drawn once from ``Normal(to_internal(mu), tau)``, seeded by
    ``seed``), the prediction for a family not yet trained. The tree keeps that family's points
    (none for the population) in its log likelihood, predictions and observed data.

    Examples with a fitted tree are under :func:`sample`; a posterior of one law has no
    families to pick from:

    >>> from slaws import bayes, hierarchical, synthetic
    >>> frame = synthetic.families(seed=0)
    >>> boot = bayes.sample("chinchilla", frame[frame.family == "a"], method="bootstrap", draws=20)
    >>> hierarchical.family_posterior(boot, "a")
    Traceback (most recent call last):
    ValueError: family_posterior needs a posterior from hierarchical.sample
    """
    import jax

    info = json.loads(tree.attrs["slaws"])
    if info.get("method") != "nuts-hierarchical":
        raise ValueError("family_posterior needs a posterior from hierarchical.sample")
    families = info["families"]
    if family not in (*families, POPULATION):
        raise ValueError(
            f"unknown family {family!r} (families: {', '.join(families)}; or {POPULATION!r})"
        )
    law = get_law(info["law"])
    posterior = tree["posterior"].to_dataset()
    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
    values = {}
    for name in law.param_names:
        if name in info["pooled"] and family == POPULATION:
            p = law.param(name)
            key = jax.random.fold_in(jax.random.key(seed), law.param_names.index(name))
            shock = np.asarray(jax.random.normal(key, (chains, draws), dtype=float))
            with jax.enable_x64(True):
                internal = p.to_internal(posterior[f"mu_{name}"].values)
                drawn = p.from_internal(internal + posterior[f"tau_{name}"].values * shock)
            values[name] = np.asarray(drawn)
        elif name in info["pooled"]:
            values[name] = posterior[name].sel(family=family).values
        elif name in posterior:
            values[name] = posterior[name].values
    values["sigma"] = posterior["sigma"].values
    points = np.asarray(info["point_families"]) == family
    loglik = tree["log_likelihood"]["log_loss"].values[..., points]
    predicted = tree["posterior_predictive"]["log_loss"].values[..., points]
    observed = tree["observed_data"]["log_loss"].values[points]
    stats = {k: v.values for k, v in tree["sample_stats"].to_dataset().data_vars.items()}
    out = bayes._tree(values, loglik, predicted, observed, stats)
    single = {k: v for k, v in info.items() if k not in ("families", "pooled", "point_families")}
    out.attrs["slaws"] = json.dumps(
        single
        | {
            "method": f"nuts-hierarchical ({family})",
            "family": family,
            "n_points": int(points.sum()),
        }
    )
    return out
