"""Bayesian fits: a numpyro model built from any registered law, NUTS and SVI behind one call,
and an arviz 1.x ``DataTree`` with every group arviz needs.

The model: each free parameter gets its law's documented prior (``Param.prior``, natural scale),
and log loss is observed with a ``normal``, ``student_t`` (robust, nu = 4) or ``huber`` likelihood
(the Huber-shaped density with free scale of Besiroglu et al. 2024) around the law's log loss.
:func:`make_model` returns the model function so users can change priors or the likelihood in
numpyro's own terms.

Inference runs in float64 inside ``jax.enable_x64(True)``; NUTS chains run in parallel when there
are enough devices, else side by side on the host's cores (CPU) or vectorised on one accelerator.
NUTS starts every chain at the posterior mode found from the multi-start optimum (so no chain
begins in a bad basin), with the inverse Hessian there as its first mass matrix. Diagnostics
(r_hat, bulk and tail ESS, divergences, BFMI) are stored in the tree's attributes and turned into
warnings; nothing is hidden.
"""

from __future__ import annotations

import functools
import json
import math
import os
import tempfile
import threading
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from slaws import data as _data
from slaws.law import Law, get_law

# numpyro's effect handlers live on one global stack shared by all threads, so two threads tracing
# a model at once interleave their handlers ("all sites must have unique names"). Programs compile
# on a second thread while the start is found: every trace of a model holds this lock.
_TRACING = threading.Lock()


def _compile(program, *args):
    """``program`` lowered for ``args`` under :data:`_TRACING`, then compiled without it."""
    with _TRACING:
        lowered = program.lower(*args)
    return lowered.compile()


LIKELIHOODS = ("normal", "student_t", "huber")
METHODS = ("nuts", "svi", "bootstrap")
STUDENT_NU = 4.0
SIGMA_PRIOR = ("HalfNormal", 0.05)  # noise on log loss: about 5% at most
RHAT_MAX, ESS_MIN = 1.01, 400
TARGET_ACCEPT = 0.95  # numpyro's 0.8 leaves a few divergences in the Student-t tails


class PosteriorWarning(UserWarning):
    """A failed convergence diagnostic."""


def _distribution(spec):
    import numpyro.distributions as dist

    kind, *args = spec
    return getattr(dist, kind)(*args)


def _import_numpyro():
    """Import numpyro in full in this thread, and give ``numpyro.distributions`` back any
    submodule attribute it lacks.

    Programs are traced on a second thread while the first finds the start. In CI, a worker that
    had run other tests twice met a ``numpyro.distributions`` without its ``distribution``
    attribute there (``numpyro.factor`` reads it); a package object re-created while its
    submodules stayed in ``sys.modules`` looks like that, as does a first import from two threads
    at once (numpyro's modules import each other in a circle). The cause was not found; the
    attributes are restored from ``sys.modules`` so tracing does not depend on it."""
    import sys

    import numpyro
    import numpyro.distributions
    import numpyro.infer  # noqa: F401

    prefix = "numpyro.distributions."
    for name, module in list(sys.modules.items()):
        child = name[len(prefix) :]
        if name.startswith(prefix) and "." not in child and module is not None:
            if not hasattr(numpyro.distributions, child):
                setattr(numpyro.distributions, child, module)


def huber_distribution(loc, scale, delta):
    """The Huber-shaped density exp(-huber(t, delta)) / (scale Z(delta)), t = (x - loc) / scale.

    A numpyro distribution: normal within ``delta`` scales of ``loc``, exponential tails beyond.

    >>> from slaws.bayes import huber_distribution
    >>> d = huber_distribution(0.0, 1.0, 1.0)  # loc, scale, delta
    >>> round(float(d.log_prob(0.0)), 3), round(float(d.log_prob(3.0)), 3)  # 3.0: huber 2.5
    (-1.073, -3.573)
    """
    import jax
    import jax.numpy as jnp
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    from slaws.objectives import huber

    core = math.sqrt(2 * math.pi) * math.erf(delta / math.sqrt(2))
    tails = 2 * math.exp(-0.5 * delta * delta) / delta
    log_norm = math.log(core + tails)

    class Huber(dist.Distribution):
        support = constraints.real

        def __init__(self):
            batch_shape = jnp.broadcast_shapes(jnp.shape(loc), jnp.shape(scale))
            super().__init__(batch_shape=batch_shape)

        def log_prob(self, value):
            t = (value - loc) / scale
            return -huber(t, delta) - jnp.log(scale) - log_norm

        def sample(self, key, sample_shape=()):
            # A mixture: a normal truncated to [-delta, delta], and exponential tails beyond.
            shape = sample_shape + self.batch_shape
            k_pick, k_core, k_tail, k_sign = jax.random.split(key, 4)
            in_core = jax.random.uniform(k_pick, shape) < core / (core + tails)
            t_core = jax.random.truncated_normal(k_core, -delta, delta, shape)
            t_tail = delta + jax.random.exponential(k_tail, shape) / delta
            sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, shape), 1.0, -1.0)
            return loc + scale * jnp.where(in_core, t_core, sign * t_tail)

    return Huber()


def make_model(
    law: str | Law,
    *,
    likelihood: str = "student_t",
    fixed: Mapping[str, float] | str | None = None,
    priors: Mapping[str, tuple] | None = None,
    delta: float = 1e-3,
):
    """A numpyro model ``model(inputs, log_obs=None, mask=None)`` for ``law``.

    ``priors`` overrides a parameter's prior, e.g. ``{"alpha": ("Uniform", 0.1, 0.6)}``, or the
    noise scale's (``"sigma"``, ``("HalfNormal", 0.05)`` by default); ``fixed``
    holds parameters at values, or at a preset's, as in ``fit`` (the law's own ``fixed`` are held
    unless listed in ``priors``).
    The observation site is ``log_loss``; the noise scale is ``sigma``; points where ``mask`` is
    False add nothing to the likelihood (padding, so data of similar sizes share compiled
    programs). The same options give the same model object, so its compiled programs are reused
    within a process.

    >>> import numpy as np
    >>> from numpyro import handlers
    >>> from slaws import bayes
    >>> model = bayes.make_model("chinchilla", priors={"alpha": ("Uniform", 0.1, 0.6)})
    >>> inputs = {"N": np.array([1e8, 1e9]), "D": np.array([2e9, 2e10])}
    >>> trace = handlers.trace(handlers.seed(model, 0)).get_trace(inputs)  # a prior draw
    >>> sorted(name for name, site in trace.items() if site["type"] == "sample")
    ['A', 'B', 'E', 'alpha', 'beta', 'log_loss', 'sigma']
    >>> trace["log_loss"]["value"].shape
    (2,)
    >>> 0.1 < float(trace["alpha"]["value"]) < 0.6
    True
    >>> bayes.make_model("chinchilla", likelihood="normal", fixed={"E": 1.69}).fixed
    {'E': 1.69}
    """
    from slaws.fitting import _resolve_fixed

    law = get_law(law)
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {likelihood!r} (known: {', '.join(LIKELIHOODS)})")
    priors = {name: tuple(spec) for name, spec in (priors or {}).items()}
    for name in priors:
        if name != "sigma":
            law.param(name)  # raises KeyError naming the law's parameters
    held = {k: v for k, v in _resolve_fixed(law, None, fixed).items() if k not in priors}
    _require_priors(law, [p.name for p in law.params if p.name not in held], priors)
    return _model(law, likelihood, tuple(held.items()), tuple(sorted(priors.items())), delta)


def _require_priors(law: Law, free, priors: Mapping[str, tuple]) -> None:
    """One-line error for a free parameter with neither a law prior nor one in ``priors``."""
    for name in free:
        if not priors.get(name, law.param(name).prior):
            raise ValueError(
                f"parameter {name!r} of law {law.name!r} has no prior: give one with "
                f"priors={{{name!r}: ('Uniform', low, high)}}, or fix it"
            )


@functools.lru_cache(maxsize=32)
def _model(law, likelihood, held, priors, delta):
    import numpyro

    _import_numpyro()

    held, priors = dict(held), dict(priors)

    def model(inputs, log_obs=None, mask=None):
        params = {}
        for p in law.params:
            if p.name in held:
                params[p.name] = held[p.name]
            else:
                params[p.name] = numpyro.sample(p.name, _distribution(priors.get(p.name, p.prior)))
        sigma = numpyro.sample("sigma", _distribution(priors.get("sigma", SIGMA_PRIOR)))
        mu = law.log_loss(params, inputs)
        noise = _noise(likelihood, mu, sigma, delta)
        with numpyro.plate("points", mu.shape[-1]):
            numpyro.sample("log_loss", noise if mask is None else noise.mask(mask), obs=log_obs)

    model.law, model.likelihood, model.fixed, model.delta = law, likelihood, held, delta
    return model


def _padded(inputs, log_obs):
    """``(inputs, log_obs, mask)`` padded to :func:`slaws.data.bucket` points, ``mask`` marking
    the real ones, so data of similar sizes share compiled programs."""
    columns, mask = _data.padded({**inputs, "log_loss": log_obs}, len(log_obs))
    return {k: columns[k] for k in inputs}, columns["log_loss"], mask


_PROGRAMS: OrderedDict = OrderedDict()
PROGRAMS_KEPT = 64  # a notebook comparing many laws and data sizes must not grow without end


def _compiled(name, build, *args):
    """``build()`` (a jitted function) lowered for the shapes of ``args`` and compiled, once per
    process for each ``name`` (a hashable naming the program, its model and static options) as
    long as it is among the :data:`PROGRAMS_KEPT` most recently used; older ones are dropped
    (a later call compiles again, or reads JAX's persistent cache)."""
    import jax

    leaves, tree = jax.tree.flatten(args)
    key = (name, tree, tuple((np.shape(v), str(getattr(v, "dtype", type(v)))) for v in leaves))
    if key in _PROGRAMS:
        _PROGRAMS.move_to_end(key)
        return _PROGRAMS[key]
    program = _PROGRAMS[key] = _compile(build(), *args)
    while len(_PROGRAMS) > PROGRAMS_KEPT:
        _PROGRAMS.popitem(last=False)
    return program


@dataclass(frozen=True)
class Diagnostics:
    """Convergence diagnostics of a posterior: the worst r_hat, bulk and tail ESS and BFMI over
    the parameters, the number of divergent transitions, and a message for each failed check
    (NaN where the method has no such diagnostic). ``sample`` stores them as ``diagnostics``
    in the JSON of ``tree.attrs["slaws"]``.

    >>> from slaws.bayes import ESS_MIN, RHAT_MAX, Diagnostics
    >>> d = Diagnostics(1.002, 1450.0, 1210.0, 0, 0.93, ())
    >>> d.max_r_hat <= RHAT_MAX and d.min_ess_bulk >= ESS_MIN and not d.warnings
    True
    """

    max_r_hat: float
    min_ess_bulk: float
    min_ess_tail: float
    divergences: int
    min_bfmi: float
    warnings: tuple[str, ...]


def sample(
    law: str | Law,
    data,
    *,
    method: str = "nuts",
    likelihood: str = "student_t",
    draws: int = 1000,
    warmup: int = 1000,
    chains: int = 4,
    chain_method: str = "auto",
    seed: int = 0,
    columns: Mapping[str, str] | None = None,
    recipe: str | None = None,
    fixed: Mapping[str, float] | str | None = None,
    priors: Mapping[str, tuple] | None = None,
    svi_guide: str = "laplace",
    svi_steps: int = 5000,
    grid: Mapping | None = None,
):
    """Posterior of ``law``'s parameters given ``data``, as an arviz ``DataTree``.

    ``method`` is ``nuts``, ``svi`` (``svi_guide`` ``laplace`` or ``multivariate_normal``,
    fitted with optax's Adam) or ``bootstrap`` (``draws`` vmapped refits, see ``_bootstrap``).
    A ``recipe`` applies its data selection (``epoch2024`` keeps Epoch's 240 points) and, for
    the bootstrap, its objective. ``grid`` is the multi-start grid of the point fit that NUTS and
    SVI start from and the bootstrap's refits start at (the law's own by default); ``priors``
    do not apply to the bootstrap, which says so. ``chain_method`` says how NUTS's ``chains`` run
    (``auto``, ``concurrent``, ``vectorized`` or ``parallel``; see ``_chain_runner``). ``seed``
    makes the result reproducible (for a given chain method and machine). The tree has the
    groups posterior, sample_stats, observed_data, log_likelihood and posterior_predictive;
    ``tree.attrs["slaws"]`` holds the law, method, likelihood, inputs and diagnostics as JSON.
    Failed diagnostics are also raised as :class:`PosteriorWarning`.

    A short NUTS chain on synthetic data from Hoffmann et al.'s law (alpha = 0.34), and a
    bootstrap of the same data:

    >>> import warnings
    >>> from slaws import bayes, synthetic
    >>> frame = synthetic.chinchilla_like(n_models=8, n_budgets=5, noise=0.005)
    >>> grid = {"A": [300.0, 1000.0], "B": [300.0, 1000.0]}  # NUTS's start: a small grid
    >>> with warnings.catch_warnings():  # one short chain: too few draws for the ESS checks
    ...     warnings.simplefilter("ignore", bayes.PosteriorWarning)
    ...     tree = bayes.sample("chinchilla", frame, draws=100, warmup=100, chains=1, grid=grid)
    >>> tree.posterior["alpha"].shape
    (1, 100)
    >>> sorted(tree.children)
    ['log_likelihood', 'observed_data', 'posterior', 'posterior_predictive', 'sample_stats']
    >>> 0.3 < float(tree.posterior["alpha"].mean()) < 0.42
    True
    >>> boot = bayes.sample("chinchilla", frame, method="bootstrap", draws=50)
    >>> boot.posterior["alpha"].shape
    (1, 50)
    """
    import jax

    from slaws.fitting import FitWarning, fit
    from slaws.recipes import get_recipe

    law = get_law(law)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r} (known: {', '.join(METHODS)})")
    if method == "bootstrap":
        if priors:
            raise ValueError(
                "priors: the bootstrap refits point estimates and has no prior; "
                "use method 'nuts' or 'svi'"
            )
        return _bootstrap(law, data, likelihood, draws, seed, columns, recipe, fixed, grid)
    frame = _data.load(data, columns=columns, required=(*law.inputs, "loss"))
    if recipe is not None:
        frame = get_recipe(recipe).apply_selection(frame)
    model = make_model(law, likelihood=likelihood, fixed=fixed, priors=priors)
    chain_method = _resolve_chain_method(chain_method, chains)
    _data.require_points(frame, len(law.params) - len(model.fixed), what=f"law {law.name!r}")
    with jax.enable_x64(True):
        inputs = {k: np.asarray(frame[k], float) for k in law.used_inputs(frame)}
        log_obs = np.log(np.asarray(frame["loss"], float))

        def find_start():
            with warnings.catch_warnings():  # the posterior shows what the point fit cannot
                warnings.simplefilter("ignore", FitWarning)
                start = fit(law, frame, fixed=model.fixed or None, grid=grid)
            init = {k: v for k, v in start.params.items() if k not in model.fixed}
            residual = np.asarray(law.jit_log_loss(start.params, inputs)) - log_obs
            return init | {"sigma": max(float(np.std(residual)), 1e-4)}

        key = jax.random.key(seed)
        if method == "nuts":
            tree = _nuts(
                model, inputs, log_obs, find_start, key, draws, warmup, chains, chain_method
            )
        else:
            tree = _svi(model, inputs, log_obs, find_start(), key, draws, svi_guide, svi_steps)
        diagnostics = _diagnose(tree, method)
    info = {"law": law.name, "method": method, "likelihood": likelihood, "fixed": model.fixed}
    return _finish(tree, info, recipe, seed, frame, inputs, diagnostics)


def _finish(tree, info, recipe, seed, frame, inputs, diagnostics):
    """Record what was done in ``tree.attrs["slaws"]`` and warn about failed diagnostics."""
    tree.attrs["slaws"] = json.dumps(
        info
        | {
            "recipe": recipe,
            "seed": seed,
            "n_points": len(frame),
            "input_ranges": {k: [float(v.min()), float(v.max())] for k, v in inputs.items()},
            "diagnostics": diagnostics.__dict__ | {"warnings": list(diagnostics.warnings)},
        }
    )
    for message in diagnostics.warnings:
        warnings.warn(message, PosteriorWarning, stacklevel=3)
    return tree


def _bootstrap(law, data, likelihood, draws, seed, columns, recipe, fixed, grid):
    """The bootstrap as a method: ``draws`` vmapped refits (``slaws.fitting.bootstrap``) with the
    recipe's objective (Huber on log residuals by default). Its log_likelihood group scores each
    refit under ``likelihood`` with the noise scale of that refit's residuals (1.4826 MAD)."""
    import jax
    import jax.numpy as jnp

    from slaws.fitting import _bootstrap

    point, table, frame = _bootstrap(
        law, data, draws, seed, recipe=recipe, fixed=fixed, columns=columns, grid=grid
    )
    with jax.enable_x64(True):
        inputs = {k: np.asarray(frame[k], float) for k in law.used_inputs(frame)}
        log_obs = np.log(np.asarray(frame["loss"], float))
        params = {name: jnp.asarray(table[name].to_numpy())[:, None] for name in law.param_names}
        mu = np.asarray(law.log_loss(params, {k: v[None, :] for k, v in inputs.items()}))
        residual = log_obs[None, :] - mu
        spread = np.median(np.abs(residual - np.median(residual, 1, keepdims=True)), 1)
        sigma = np.maximum(1.4826 * spread, 1e-12)[:, None]
        noise = _noise(likelihood, mu, sigma)
        loglik = np.asarray(noise.log_prob(log_obs[None, :]))
        predicted = np.asarray(noise.sample(jax.random.key(seed + 1)))
    posterior = {name: table[name].to_numpy()[None] for name in point.free}
    posterior["sigma"] = sigma[:, 0][None]
    status = table["status"].map({"converged": 0, "max_steps": 1, "failed": 2}).to_numpy()
    stats = {"objective": table["objective"].to_numpy()[None], "status": status[None]}
    tree = _tree(posterior, loglik[None], predicted[None], log_obs, stats)
    failed = int((status != 0).sum())
    messages = (f"{failed} of {draws} bootstrap refits did not converge",) if failed else ()
    diagnostics = Diagnostics(math.nan, math.nan, math.nan, 0, math.nan, messages)
    info = {
        "law": law.name,
        "method": "bootstrap",
        "likelihood": likelihood,
        "fixed": point.fixed,
        "objective": point.objective_name,
    }
    return _finish(tree, info, recipe, seed, frame, inputs, diagnostics)


def _noise(likelihood, mu, sigma, delta=1e-3):
    import numpyro.distributions as dist

    if likelihood == "normal":
        return dist.Normal(mu, sigma)
    if likelihood == "student_t":
        return _student_t4(mu, sigma)
    return huber_distribution(mu, sigma, delta)


def _student_t4(loc, scale):
    """numpyro's StudentT with 4 degrees of freedom, sampled as z / sqrt(chi2_4 / 4) with
    chi2_4 = -2 log(u1 u2): exact, and no rejection loop (numpyro's gamma sampler loops until
    every one of a million draws is accepted, which is most of a posterior predictive's cost)."""
    import jax
    import jax.numpy as jnp
    import numpyro.distributions as dist

    class StudentT4(dist.StudentT):
        def __init__(self):
            super().__init__(4.0, loc, scale)

        def sample(self, key, sample_shape=()):
            shape = sample_shape + self.batch_shape
            k_z, k_u = jax.random.split(key)
            z = jax.random.normal(k_z, shape)
            u = jax.random.uniform(k_u, (2, *shape), minval=jnp.finfo(z.dtype).tiny)
            chi2 = -2.0 * jnp.log(u[0] * u[1])
            return self.loc + self.scale * z * jnp.sqrt(4.0 / chi2)

    assert STUDENT_NU == 4.0
    return StudentT4()


def _nuts(model, inputs, log_obs, find_start, key, draws, warmup, chains, chain_method):
    """NUTS for a model of :func:`make_model` from ``find_start()``, the multi-start optimum
    (natural scale, with ``sigma``). The mode search, the sampler and the pointwise program
    only need shapes, so they compile on a second thread while the start is found (XLA compiles
    without the GIL)."""
    import jax

    _import_numpyro()  # before the second thread starts
    k_run, k_pred = jax.random.split(key)
    keys = jax.random.split(k_run, chains)
    sites = _site_shapes(model)
    n = len(log_obs)
    data = _padded(inputs, log_obs)

    def compile_modes():
        with jax.enable_x64(True):
            rows = {k: np.zeros((1, *shape)) for k, shape in sites.items()}
            build = lambda: _modes_program(model, MODE_STEPS)
            return _compiled(("modes", model), build, rows, data[0], data[1][None], data[2])

    def compile_sampler():
        with jax.enable_x64(True):
            size = sum(math.prod(shape) for shape in sites.values())
            like = ({k: np.zeros(shape) for k, shape in sites.items()}, np.eye(size), data)
            run = _chain_runner(model, draws, warmup, like, keys, chain_method)
            flat = {k: np.zeros((chains * draws, *shape)) for k, shape in sites.items()}
            build = lambda: _pointwise_program(model)
            return run, _compiled(("pointwise", model), build, flat, *data, k_pred)

    with ThreadPoolExecutor(1) as pool:
        modes = pool.submit(compile_modes)  # first: needed as soon as the start is found
        ahead = pool.submit(compile_sampler)
        # Chains start at the posterior mode nearest the multi-start optimum. Exponents and
        # log-scales are strongly correlated in every law: a dense mass matrix, started at the
        # inverse Hessian so the first warm-up window does not crawl along the log A / alpha
        # ridge with trees of 1,023 steps. Stan's regularisation of the adapted matrix
        # (shrinking it toward 1e-3 I) would swamp the ridge's width (variance ~1e-6) and cut
        # the step size sevenfold.
        init = find_start()
        rows = {k: np.reshape(v, (1, *sites[k])) for k, v in init.items()}
        z = unconstrained(model, inputs, rows)
        z, inverse_hessian = posterior_modes(
            model, data[0], data[1][None], z, mask=data[2], program=modes.result()
        )
        run, pointwise = ahead.result()
    samples, stats = run(({k: v[0] for k, v in z.items()}, inverse_hessian[0], data), keys)
    flat = {k: v.reshape((-1, *v.shape[2:])) for k, v in samples.items()}
    loglik, predicted = (np.asarray(v)[:, :n] for v in pointwise(flat, *data, k_pred))
    stats["tree_depth"] = np.log2(stats["n_steps"] + 1).astype(int)
    shape = (chains, draws, -1)
    dims = getattr(model, "dims", {})
    return _tree(samples, loglik.reshape(shape), predicted.reshape(shape), log_obs, stats, dims)


def _site_shapes(model) -> dict:
    """The shape of each sampled site (scalars for :func:`make_model`'s models; a model may say
    otherwise in ``model.site_shapes``, as the hierarchical one does for per-family sites)."""
    shapes = getattr(model, "site_shapes", None)
    if shapes is None:
        names = [p.name for p in model.law.params if p.name not in model.fixed]
        shapes = dict.fromkeys([*names, "sigma"], ())
    return dict(sorted(shapes.items()))


def nuts_chain(model, draws: int, warmup: int):
    """One NUTS chain of ``model`` as a pure function ``chain(z0, inverse_mass_matrix, data,
    key) -> (draws, sample_stats)``, where ``data`` is the model's arguments, such as
    ``(inputs, log_obs)`` or ``(inputs, log_obs, mask)``: arrays traced, not baked in, so one
    compiled chain serves any data of the same shapes. Built on numpyro's functional ``hmc``:
    dense mass matrix starting at ``inverse_mass_matrix``, Stan's windowed adaptation without its
    regularisation, target acceptance ``TARGET_ACCEPT``. Warm-up and sampling are one scan (one
    copy of the NUTS tree to compile, not two). ``draws`` maps each site to its constrained
    values, ``(draws, ...)``; ``sample_stats`` uses arviz's names. vmap it for many chains or
    datasets at once.

    ``jax.jit(chain)(z0, inverse_mass_matrix, data, key)`` runs it; here only its output
    shapes are traced (compiling NUTS takes seconds):

    >>> import jax
    >>> import numpy as np
    >>> from slaws import bayes, synthetic
    >>> frame = synthetic.chinchilla_like(n_models=8, n_budgets=5, noise=0.005)
    >>> inputs = {"N": frame["N"].to_numpy(), "D": frame["D"].to_numpy()}
    >>> model = bayes.make_model("chinchilla")
    >>> start = {"E": 1.7, "A": 400.0, "B": 400.0, "alpha": 0.34, "beta": 0.28, "sigma": 0.005}
    >>> z = bayes.unconstrained(model, inputs, {k: [v] for k, v in start.items()})
    >>> z0 = {k: v[0] for k, v in z.items()}  # one chain's start
    >>> chain = bayes.nuts_chain(model, draws=100, warmup=100)
    >>> key, log_obs = jax.random.key(0), np.log(frame["loss"].to_numpy())
    >>> draws, stats = jax.eval_shape(chain, z0, np.eye(6), (inputs, log_obs), key)  # 6 x 6 mass
    >>> draws["alpha"].shape, sorted(stats)
    ((100,), ['acceptance_rate', 'diverging', 'energy', 'lp', 'n_steps', 'step_size'])
    """
    import jax
    from numpyro.infer.hmc import hmc
    from numpyro.infer.util import constrain_fn, potential_energy

    def potential_for(*data):
        return lambda z: potential_energy(model, data, {}, z)

    init_kernel, sample_kernel = hmc(potential_fn_gen=potential_for, algo="NUTS")

    def chain(z0, inverse_mass_matrix, data, key):
        state = init_kernel(
            z0,
            num_warmup=warmup,
            inverse_mass_matrix=inverse_mass_matrix,
            dense_mass=True,
            target_accept_prob=TARGET_ACCEPT,
            regularize_mass_matrix=getattr(model, "regularize_mass_matrix", False),
            model_args=tuple(data),
            rng_key=key,
        )

        def step(state, _):
            state = sample_kernel(state, model_args=tuple(data))
            stats = {
                "diverging": state.diverging,
                "energy": state.energy,
                "lp": -state.potential_energy,
                "n_steps": state.num_steps,
                "acceptance_rate": state.accept_prob,
                "step_size": state.adapt_state.step_size,
            }
            return state, (state.z, stats)

        _, (z, stats) = jax.lax.scan(step, state, None, length=warmup + draws)
        z, stats = jax.tree.map(lambda v: v[warmup:], (z, stats))
        natural = jax.vmap(lambda v: constrain_fn(model, tuple(data), {}, v))(z)
        return natural, stats

    return chain


CHAIN_METHODS = ("auto", "concurrent", "vectorized", "parallel")


def _resolve_chain_method(method: str, chains: int) -> str:
    """``auto``: parallel with a device per chain, else concurrent on CPU, else vectorized."""
    import jax

    devices = jax.local_device_count()
    if method not in CHAIN_METHODS:
        raise ValueError(f"unknown chain method {method!r} (known: {', '.join(CHAIN_METHODS)})")
    if method == "parallel" and devices < chains:
        raise ValueError(f"chain method 'parallel' needs {chains} devices, found {devices}")
    if method != "auto":
        return method
    if devices >= chains > 1:
        return "parallel"
    return "concurrent" if jax.default_backend() == "cpu" else "vectorized"


def _chain_runner(model, draws, warmup, args, keys, method):
    """Compile :func:`nuts_chain` for ``args`` (arrays, or arrays of the same shapes and dtypes)
    and ``keys`` (once per process for a model, shapes and method); return ``run(args, keys)``
    giving numpy arrays with a leading chain axis.

    ``vectorized``: one program vmapped over chains on one device (the way on an accelerator);
    every chain then waits for the deepest tree of the step. ``parallel``: one chain per device
    with ``shard_map`` (needs as many devices as chains). ``concurrent``: one compiled chain,
    called for each key from a pool of host threads (on CPU, where cores run chains side by side
    and each chain stops at its own tree depth; vmapping NUTS's tree also takes ~12 s to trace).
    ``auto`` is resolved by :func:`_resolve_chain_method`."""
    import jax

    n = len(keys)
    chain = nuts_chain(model, draws, warmup)
    name = ("nuts", model, draws, warmup, method)
    if method == "concurrent":
        program = _compiled(name, lambda: jax.jit(chain), *args, keys[0])

        def run(args, keys):
            args = jax.device_put(args)
            with ThreadPoolExecutor(min(len(keys), os.cpu_count() or 1)) as pool:
                outs = list(pool.map(lambda key: program(*args, key), keys))
            return jax.tree.map(lambda *v: np.stack(v), *outs)

        return run

    def build():
        if method == "vectorized":
            return jax.jit(jax.vmap(chain, (*(None,) * len(args), 0)))
        from jax.sharding import Mesh, PartitionSpec

        def one(*block):  # each device holds one key: no vmap, so no batched NUTS tree
            return jax.tree.map(lambda v: v[None], chain(*block[:-1], block[-1][0]))

        return jax.jit(
            jax.shard_map(
                one,
                mesh=Mesh(np.array(jax.local_devices()[:n]), ("chain",)),
                in_specs=(*(PartitionSpec(),) * len(args), PartitionSpec("chain")),
                out_specs=PartitionSpec("chain"),
                check_vma=False,  # numpyro's tree mixes replicated starts and per-chain keys
            )
        )

    program = _compiled(name, build, *args, keys)
    return lambda args, keys: jax.tree.map(np.asarray, program(*args, keys))


def _interior(model, inputs, values):
    """``values`` (one per site) moved just inside their priors' supports: a fit can end on a
    bound, where a uniform prior's density vanishes and SVI cannot start."""
    import jax
    from numpyro.infer.util import constrain_fn

    z = unconstrained(model, inputs, {k: np.atleast_1d(v) for k, v in values.items()})
    z = {k: np.clip(np.nan_to_num(v[0], posinf=30.0, neginf=-30.0), -30, 30) for k, v in z.items()}
    placeholder = np.zeros(len(next(iter(inputs.values()))))
    with _TRACING:
        out = jax.jit(lambda v: constrain_fn(model, (inputs, placeholder), {}, v))(z)
    return {k: float(v) for k, v in out.items()}


def unconstrained(model, inputs, values):
    """``values`` (natural scale, one array per site, one row per dataset) in numpyro's
    unconstrained coordinates, where NUTS moves.

    A log-normal prior's coordinate is the log, a ``Uniform(0, 3)`` prior's the logit of x / 3:

    >>> import numpy as np
    >>> from slaws import bayes
    >>> model = bayes.make_model("chinchilla")
    >>> inputs = {"N": np.array([1e8, 1e9]), "D": np.array([2e9, 2e10])}
    >>> values = {"E": [1.69], "A": [406.4], "B": [410.7], "alpha": [0.34], "beta": [0.28]}
    >>> z = bayes.unconstrained(model, inputs, values | {"sigma": [0.01]})
    >>> {name: round(float(z[name][0]), 3) for name in ("E", "alpha", "sigma")}
    {'E': 0.525, 'alpha': -2.057, 'sigma': -4.605}
    """
    import jax
    from numpyro.infer.util import unconstrain_fn

    placeholder = np.zeros(len(next(iter(inputs.values()))))  # transforms ignore the data
    one = jax.jit(jax.vmap(lambda v: unconstrain_fn(model, (inputs, placeholder), {}, v)))
    with _TRACING:
        out = one({k: np.asarray(v) for k, v in values.items()})
    return {k: np.asarray(v) for k, v in out.items()}


MODE_STEPS = 60  # damped Newton steps of the posterior-mode search


def posterior_modes(model, inputs, log_obs, z, steps: int = MODE_STEPS, *, mask=None, program=None):
    """Posterior modes and the inverse Hessians there, one per row of ``log_obs``, by damped
    Newton steps in numpyro's unconstrained coordinates from the matching row of ``z``
    (``mask``, if given, marks the points that count, as in :func:`make_model`).

    A step uses the Hessian's eigenvalues by magnitude (so it descends at saddles too) plus a
    Levenberg damping that shrinks tenfold after a step that lowers the potential and grows
    tenfold after one that does not (which is not taken): no line search, a fixed number of
    steps, so it compiles fast and vmaps over rows at no tracing cost.

    NUTS starts at the mode, with the inverse Hessian as its first mass matrix, rather than at
    the least-squares optimum: where the likelihood has flat ridges (distillation's B' and beta'
    on Busbridge's design) that optimum can sit far along one, where the prior is negligible.
    Returns ``(modes, inverse_hessians)``, the inverse Hessians with their eigenvalues made
    positive, in numpyro's order (sorted site names). ``program`` is a compiled
    :func:`_modes_program` for these shapes (built here if not given).

    >>> import jax
    >>> import numpy as np
    >>> from slaws import bayes, synthetic
    >>> frame = synthetic.chinchilla_like(n_models=8, n_budgets=5, noise=0.005)
    >>> inputs = {"N": frame["N"].to_numpy(), "D": frame["D"].to_numpy()}
    >>> log_obs = np.log(frame["loss"].to_numpy())[None]  # one dataset
    >>> model = bayes.make_model("chinchilla")
    >>> start = {"E": [2.0], "A": [300.0], "B": [300.0], "alpha": [0.3], "beta": [0.3]}
    >>> with jax.enable_x64(True):
    ...     z = bayes.unconstrained(model, inputs, start | {"sigma": [0.01]})
    ...     modes, inverse_hessians = bayes.posterior_modes(model, inputs, log_obs, z)
    >>> inverse_hessians.shape
    (1, 6, 6)
    >>> round(float(np.exp(modes["E"][0])), 2)  # E has a log-normal prior: z = log E
    1.75
    """
    import jax
    from jax.flatten_util import ravel_pytree

    if program is None:
        program = _modes_program(model, steps)
    _, unravel = ravel_pytree({k: v[0] for k, v in z.items()})
    flat, hess = program(z, inputs, np.asarray(log_obs), mask)
    modes = jax.vmap(unravel)(flat)
    return {k: np.asarray(v) for k, v in modes.items()}, _positive_inverse(np.asarray(hess))


def _modes_program(model, steps: int):
    """The jitted ``(z, inputs, log_obs, mask) -> (flat modes, Hessians)`` of
    :func:`posterior_modes`, over rows of ``z`` and ``log_obs``."""
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree
    from numpyro.infer.util import potential_energy

    @jax.jit  # traced once: the value, gradient and Hessian below reuse its jaxpr
    def potential(z, inputs, y, mask):
        return potential_energy(model, (inputs, y, mask), {}, z)

    def one(z0, inputs, y, mask):
        v0, unravel = ravel_pytree(z0)

        def f(v):
            return potential(unravel(v), inputs, y, mask)

        def step(carry, _):
            v, value, damping = carry
            w, u = jnp.linalg.eigh(jax.hessian(f)(v))
            w = jnp.abs(w)
            trial = v - u @ ((u.T @ jax.grad(f)(v)) / (w + damping * w.max() + 1e-300))
            new = f(trial)
            better = new < value  # False for NaN
            damping = jnp.where(better, damping / 10, damping * 10)
            return (jnp.where(better, trial, v), jnp.where(better, new, value), damping), None

        start = (v0, jnp.nan_to_num(f(v0), nan=jnp.inf), 1e-3)
        (v, _, _), _ = jax.lax.scan(step, start, None, length=steps)
        return v, jax.hessian(f)(v)

    return jax.jit(jax.vmap(one, (0, None, 0, None)))


def _positive_inverse(hess):
    """Inverses of symmetric matrices with their eigenvalues replaced by their magnitudes."""
    w, u = np.linalg.eigh(np.where(np.isfinite(hess), hess, 0.0))
    w = np.abs(w)
    w = np.maximum(w, 1e-12 * w.max(-1, keepdims=True) + 1e-300)
    return (u / w[..., None, :]) @ np.swapaxes(u, -1, -2)


def _pointwise_program(model):
    """``program(posterior, inputs, log_obs, mask, key)``: pointwise log likelihood and
    posterior predictive draws of ``log_loss`` for flat draws, in one jit."""
    import jax
    from numpyro.infer import Predictive, log_likelihood

    @jax.jit
    def program(posterior, inputs, log_obs, mask, key):
        data = (inputs, log_obs, mask)
        loglik = log_likelihood(model, posterior, *data, parallel=True)["log_loss"]
        predicted = Predictive(model, posterior, parallel=True)(key, inputs, None, mask)
        return loglik, predicted["log_loss"]

    return program


def _tree(posterior, loglik, predicted, log_obs, sample_stats, dims=None):
    """A DataTree from (chain, draw)-shaped arrays, without arviz's creation timestamps (the
    same seed gives the same file, byte for byte). ``dims`` names the extra dimensions of
    posterior variables that have them."""
    import arviz as az

    tree = az.from_dict(
        {
            "posterior": posterior,
            "log_likelihood": {"log_loss": loglik},
            "posterior_predictive": {"log_loss": predicted},
            "observed_data": {"log_loss": np.asarray(log_obs)},
            "sample_stats": sample_stats,
        },
        dims={"log_loss": ["points"], **(dims or {})},
    )
    for node in tree.subtree:
        node.attrs.pop("created_at", None)
    return tree


def _svi(model, inputs, log_obs, init, key, draws, guide_name, steps):
    import jax

    _import_numpyro()
    import optax
    from numpyro.infer import SVI, Trace_ELBO, init_to_value
    from numpyro.infer.autoguide import AutoLaplaceApproximation, AutoMultivariateNormal

    guides = {"laplace": AutoLaplaceApproximation, "multivariate_normal": AutoMultivariateNormal}
    if guide_name not in guides:
        raise ValueError(f"unknown SVI guide {guide_name!r} (known: {', '.join(guides)})")
    init = _interior(model, inputs, init)
    guide = guides[guide_name](model, init_loc_fn=init_to_value(values=init))
    svi = SVI(model, guide, optax.adam(1e-3), Trace_ELBO())
    k_fit, k_draw, k_pred = jax.random.split(key, 3)
    n, data = len(log_obs), _padded(inputs, log_obs)
    result = svi.run(k_fit, steps, *data, progress_bar=False)
    # One compiled call: the Laplace guide's Hessian, run eagerly, costs seconds of dispatch.
    posterior = jax.jit(
        lambda params: guide.sample_posterior(k_draw, params, sample_shape=(draws,))
    )(result.params)
    posterior = {k: v for k, v in posterior.items() if k != "log_loss"}
    pointwise = _pointwise_program(model)
    loglik, predicted = (np.asarray(v)[:, :n] for v in pointwise(posterior, *data, k_pred))
    return _tree(
        {k: np.asarray(v)[None] for k, v in posterior.items()},
        loglik[None],
        predicted[None],
        log_obs,
        {"elbo_loss": np.asarray(result.losses)[None, -draws:]},
    )


def _diagnose(tree, method) -> Diagnostics:
    import arviz as az

    posterior = tree["posterior"].to_dataset()
    messages = []
    if method == "nuts":
        rhat = float(az.rhat(posterior).to_array().max())
        ess_bulk = float(az.ess(posterior, method="bulk").to_array().min())
        ess_tail = float(az.ess(posterior, method="tail").to_array().min())
        stats = tree["sample_stats"].to_dataset()
        divergences = int(stats["diverging"].sum()) if "diverging" in stats else 0
        bfmi = (
            float(np.min(stats["energy"].pipe(az.bfmi).values)) if "energy" in stats else math.nan
        )
        if rhat > RHAT_MAX:
            messages.append(f"r_hat {rhat:.3f} > {RHAT_MAX}: chains disagree")
        if ess_bulk < ESS_MIN:
            messages.append(f"bulk ESS {ess_bulk:.0f} < {ESS_MIN}")
        if ess_tail < ESS_MIN:
            messages.append(f"tail ESS {ess_tail:.0f} < {ESS_MIN}")
        if divergences:
            messages.append(f"{divergences} divergent transitions")
        if bfmi < 0.3:
            messages.append(f"BFMI {bfmi:.2f} < 0.3: poor exploration of the energy")
    else:
        rhat = ess_bulk = ess_tail = bfmi = math.nan
        divergences = 0
    return Diagnostics(rhat, ess_bulk, ess_tail, divergences, bfmi, tuple(messages))


def save(tree, path, *, force: bool = False) -> None:
    """Write ``tree`` to netCDF atomically; an existing file is kept unless ``force``.

    >>> from slaws import bayes, synthetic
    >>> frame = synthetic.chinchilla_like(n_models=8, n_budgets=5, noise=0.005)
    >>> tree = bayes.sample("chinchilla", frame, method="bootstrap", draws=50)
    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = os.path.join(tmp.name, "fit.nc")
    >>> bayes.save(tree, path)
    >>> bayes.save(tree, path)
    Traceback (most recent call last):
    ...
    FileExistsError: ...fit.nc exists; pass force=True (--force) to replace it
    >>> bayes.save(tree, path, force=True)
    >>> bayes.load(path).posterior["alpha"].shape
    (1, 50)
    >>> tmp.cleanup()
    """
    path = os.fspath(path)
    if os.path.exists(path) and not force:
        raise FileExistsError(f"{path} exists; pass force=True (--force) to replace it")
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".nc.tmp")
    os.close(fd)
    try:
        tree.to_netcdf(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load(path):
    """Read a tree written by :func:`save`. A file that is missing, not netCDF, cut short or not
    written by slaws raises one ``ValueError`` line naming the file.

    >>> from slaws import bayes, synthetic
    >>> frame = synthetic.chinchilla_like(n_models=8, n_budgets=5, noise=0.005)
    >>> tree = bayes.sample("chinchilla", frame, method="bootstrap", draws=50)
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     bayes.save(tree, os.path.join(tmp, "fit.nc"))
    ...     again = bayes.load(os.path.join(tmp, "fit.nc"))
    ...     same = bool((again.posterior["alpha"] == tree.posterior["alpha"]).all())
    >>> same, bayes.summarize(again)["method"]
    (True, 'bootstrap')
    """
    import arviz as az

    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file")
    try:
        tree = az.from_netcdf(path)
        json.loads(tree.attrs["slaws"])["law"]
        tree["posterior"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        reason = str(exc).split("\n")[0]
        if "IO backends" in reason:  # xarray's multi-sentence "no engine can open it"
            reason = "not a netCDF file"
        elif isinstance(exc, KeyError):
            reason = f"no {exc} in it"
        raise ValueError(f"{path}: not a posterior written by slaws ({reason[:160]})") from None
    return tree


def summarize(tree) -> dict:
    """The JSON summary of ``slaws fit --method ...``: per parameter mean, sd, 5/50/95% quantiles,
    r_hat and bulk ESS (None where one chain makes them undefined), and the diagnostics.

    >>> from slaws import bayes, synthetic
    >>> frame = synthetic.chinchilla_like(n_models=8, n_budgets=5, noise=0.005)
    >>> tree = bayes.sample("chinchilla", frame, method="bootstrap", draws=50)
    >>> summary = bayes.summarize(tree)
    >>> summary["law"], summary["method"], summary["status"], summary["n_points"]
    ('chinchilla', 'bootstrap', 'ok', 40)
    >>> alpha = summary["params"]["alpha"]
    >>> sorted(alpha)
    ['ess_bulk', 'mean', 'q05', 'q50', 'q95', 'r_hat', 'sd']
    >>> alpha["q05"] < alpha["q50"] < alpha["q95"], alpha["r_hat"]
    (True, None)
    """
    import arviz as az

    info = json.loads(tree.attrs["slaws"])
    posterior = tree["posterior"].to_dataset()
    several_chains = posterior.sizes["chain"] > 1
    params = {}
    for name in posterior.data_vars:
        variable = posterior[name]
        extra = [d for d in variable.dims if d not in ("chain", "draw")]
        # a per-family variable of a hierarchical posterior: one entry per family, "alpha[c4]"
        labels = variable[extra[0]].values if extra else [None]
        for label in labels:
            one = variable.sel({extra[0]: label}) if extra else variable
            values = one.values.reshape(-1)
            q05, q50, q95 = np.quantile(values, [0.05, 0.5, 0.95])
            params[name if label is None else f"{name}[{label}]"] = {
                "mean": float(values.mean()),
                "sd": float(values.std(ddof=1)),
                "q05": float(q05),
                "q50": float(q50),
                "q95": float(q95),
                "r_hat": float(az.rhat(one)) if several_chains else None,
                "ess_bulk": float(az.ess(one, method="bulk")) if several_chains else None,
            }
    diagnostics = info["diagnostics"]
    return {
        "law": info["law"],
        "method": info["method"],
        "recipe": info["recipe"],
        "likelihood": info["likelihood"],
        "params": params,
        "fixed": info["fixed"],
        "n_points": info["n_points"],
        "status": "ok" if not diagnostics["warnings"] else "warnings",
        "seed": info["seed"],
        "diagnostics": diagnostics,
    }


def _require_single(info: dict) -> None:
    """One-line error for a hierarchical posterior where one law's draws are needed."""
    if "families" in info:
        raise ValueError(
            f"a hierarchical posterior of families {', '.join(info['families'])}: pick one "
            "with hierarchical.family_posterior(tree, family) (or 'population' for a new one)"
        )


def _posterior_law(info: dict, law: str | Law | None = None) -> Law:
    """The law of a posterior whose ``attrs["slaws"]`` is ``info``: ``law`` when given (a user's
    ``Law`` outside the registry), checked against the name the posterior records; else that
    name looked up."""
    law = get_law(law if law is not None else info["law"])
    if law.name != info["law"]:
        raise ValueError(f"the posterior is of law {info['law']!r}, not {law.name!r}")
    return law


def forecast(tree, at, *, prob: float = 0.9, seed: int = 0, law: str | Law | None = None):
    """Posterior forecasts of the loss at new inputs, as a pandas DataFrame.

    ``at`` maps input names to arrays (or is a DataFrame). For each row: ``mean`` and ``median``
    of the law's loss over the posterior and the ``prob`` credible interval of that mean law
    (``credible_lo``, ``credible_hi``); the predictive interval of a new run's loss, noise
    included (``predictive_lo``, ``predictive_hi``); and ``extrapolation``, True where an input
    lies outside the range the posterior was fitted on, with ``extrapolation_distance``, how far
    beyond in units of the observed log range (0 inside). ``law`` is the posterior's law, looked
    up by the name the tree records when not given: pass a user's ``Law`` that is not registered.

    >>> from slaws import bayes, synthetic
    >>> frame = synthetic.chinchilla_like(n_models=8, n_budgets=5, noise=0.005)
    >>> tree = bayes.sample("chinchilla", frame, method="bootstrap", draws=50)
    >>> out = bayes.forecast(tree, {"N": [1e9, 70e9], "D": [2e10, 1.4e12]})
    >>> list(out.columns)  # doctest: +NORMALIZE_WHITESPACE
    ['N', 'D', 'mean', 'median', 'credible_lo', 'credible_hi', 'predictive_lo',
     'predictive_hi', 'extrapolation', 'extrapolation_distance']
    >>> out["extrapolation"].tolist()  # 70B parameters: beyond the fitted range
    [False, True]
    >>> bool((out["predictive_lo"] < out["credible_lo"]).all())  # noise widens the band
    True
    >>> round(float(out["median"][0]), 2)  # the law that made the data says 2.58
    2.57
    """
    import jax
    import jax.numpy as jnp
    import pandas as pd

    if not 0 < prob < 1:
        raise ValueError(f"prob must be in (0, 1), not {prob!r}")
    info = json.loads(tree.attrs["slaws"])
    _require_single(info)
    law = _posterior_law(info, law)
    frame = pd.DataFrame(at).reset_index(drop=True)
    needed = [k for k in info["input_ranges"] if k not in frame]
    if needed:
        raise ValueError(f"forecast inputs lack column(s) {', '.join(needed)} for law {law.name!r}")
    posterior = tree["posterior"].to_dataset()
    draws = {k: posterior[k].values.reshape(-1) for k in posterior.data_vars}
    with jax.enable_x64(True):
        params = {
            name: jnp.asarray(draws[name])[:, None] if name in draws else info["fixed"][name]
            for name in law.param_names
        }
        inputs = {k: np.asarray(frame[k], float)[None, :] for k in info["input_ranges"]}
        mu = np.asarray(law.log_loss(params, inputs))
        sigma = draws["sigma"][:, None]
        noisy = np.asarray(_noise(info["likelihood"], mu, sigma).sample(jax.random.key(seed)))
    tail = (1 - prob) / 2
    loss, new_run = np.exp(mu), np.exp(noisy)
    out = frame.copy()
    out["mean"] = loss.mean(0)
    out["median"] = np.median(loss, 0)
    out["credible_lo"], out["credible_hi"] = np.quantile(loss, [tail, 1 - tail], axis=0)
    out["predictive_lo"], out["predictive_hi"] = np.quantile(new_run, [tail, 1 - tail], axis=0)
    distance = np.zeros(len(frame))
    for name, (lo, hi) in info["input_ranges"].items():
        span = max(math.log(hi / lo), 1e-12)
        x = np.log(np.asarray(frame[name], float))
        beyond = np.maximum(x - math.log(hi), math.log(lo) - x) / span
        distance = np.maximum(distance, np.maximum(beyond, 0.0))
    out["extrapolation"] = distance > 0
    out["extrapolation_distance"] = distance
    return out
