"""A scaling law: a pure JAX function of (params, inputs) plus the facts needed to fit it.

Every law is written in log space: ``log_loss(params, inputs)`` returns ``log L``. Writing laws as
log-sum-exp of log terms keeps them finite from N=1e3 to 1e15 and D up to 1e17 in float32, and
makes the log-residual objectives of the published recipes exact.

Parameters live on their natural scale (A, not log A). ``Param`` says how an optimiser should see
each one: ``log=True`` optimises log(x); finite bounds are enforced by a logistic
reparameterisation, so no optimiser ever needs box constraints.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp

# Starts placed exactly on a bound (published grids contain 0 for exponents) are nudged inside by
# this fraction of the interval, or to this floor for log-scale parameters bounded by 0.
_START_MARGIN = 1e-4
_LOG_FLOOR = 1e-3


@dataclass(frozen=True)
class Param:
    """One parameter of a law.

    ``prior`` names a numpyro distribution and its arguments on the natural scale, e.g.
    ``("LogNormal", 6.0, 2.0)`` or ``("Uniform", 0.0, 2.0)``; Bayesian fits use it as the default.

    >>> from slaws import Param
    >>> alpha = Param("alpha", 0.0, 3.0, prior=("Uniform", 0.0, 3.0), doc="model-size exponent")
    >>> z = alpha.to_internal(0.34)  # unconstrained coordinate the optimiser sees
    >>> round(float(alpha.from_internal(z)), 4)
    0.34
    >>> Param("A", log=True).lower  # log-scale parameters are bounded below by 0
    0.0
    """

    name: str
    lower: float = -math.inf
    upper: float = math.inf
    log: bool = False
    prior: tuple = ()
    doc: str = ""

    def __post_init__(self):
        if self.log and self.lower == -math.inf:
            object.__setattr__(self, "lower", 0.0)
        if self.log and self.lower < 0:
            raise ValueError(f"parameter {self.name!r}: log scale needs lower >= 0")
        if not self.lower < self.upper:
            raise ValueError(f"parameter {self.name!r}: lower must be below upper")

    def _bounds(self):
        """Bounds in the optimiser's coordinate before any logistic map."""
        if self.log:
            lo = math.log(self.lower) if self.lower > 0 else -math.inf
            return lo, math.log(self.upper) if math.isfinite(self.upper) else math.inf
        return self.lower, self.upper

    def to_internal(self, x):
        """Natural value -> unconstrained optimiser coordinate (starts on a bound are nudged in)."""
        lo, hi = self._bounds()
        if self.log:
            floor = self.lower if self.lower > 0 else _LOG_FLOOR
            x = jnp.log(jnp.where(x > self.lower, x, floor))
        if math.isfinite(lo) and math.isfinite(hi):
            margin = _START_MARGIN * (hi - lo)
            u = (jnp.clip(x, lo + margin, hi - margin) - lo) / (hi - lo)
            return jnp.log(u) - jnp.log1p(-u)
        if math.isfinite(lo):
            return jnp.log(jnp.where(x > lo, x - lo, _START_MARGIN))
        if math.isfinite(hi):
            return -jnp.log(jnp.maximum(hi - x, _START_MARGIN))
        return x

    def from_internal(self, z):
        """Unconstrained optimiser coordinate -> natural value, always inside the bounds."""
        lo, hi = self._bounds()
        if math.isfinite(lo) and math.isfinite(hi):
            x = lo + (hi - lo) * jax.nn.sigmoid(z)
        elif math.isfinite(lo):
            x = lo + jnp.exp(z)
        elif math.isfinite(hi):
            x = hi - jnp.exp(-z)
        else:
            x = z
        # exp(log(bound)) can round past the bound; clip so results stay inside.
        return jnp.clip(jnp.exp(x), self.lower, self.upper) if self.log else x


@dataclass(frozen=True, eq=False)  # identity equality and hash: a Law can key caches
class Law:
    """A registered scaling law.

    Attributes:
      name: registry name, e.g. ``"chinchilla"``.
      log_loss: pure function ``(params: dict, inputs: dict) -> log L``, jit- and vmap-able.
      params: the parameters, in a fixed order.
      inputs: input columns the law reads. An entry may be a tuple of alternatives, each a name
        or a tuple of names (the distillation law takes ``L_T`` or ``(N_T, D_T)``).
      citation: where the law comes from.
      optional_inputs: columns used when present (``U`` for the data-constrained law).
      init_grid: default multi-start grid, ``{name: values on the natural scale}``, or a function of
        the data frame returning one (for laws whose sensible starts depend on the data's scale).
      fixed: parameters held fixed by default (a fit may free them), e.g. the supervised
        coefficients inside the distillation law.
      natural: optionally the same law on the natural scale, ``(params, inputs) -> L``. Laws that
        are sums of positive terms evaluate several times faster this way (no log of a sum per
        point), which is what grids of 1e9 evaluations need; ``loss`` uses it when given, and a
        test checks it against ``exp(log_loss)`` for every law that has one.

    A law of one input, ``L = a x^(-b)``, written in log space:

    >>> import jax.numpy as jnp
    >>> from slaws import Law, Param
    >>> power = Law(
    ...     name="power",
    ...     log_loss=lambda p, x: jnp.log(p["a"]) - p["b"] * jnp.log(x["x"]),
    ...     params=(Param("a", log=True), Param("b", 0.0, 2.0)),
    ...     inputs=("x",),
    ... )
    >>> power.param_names
    ('a', 'b')
    >>> round(float(power({"a": 2.0, "b": 0.5}, x=16.0)), 4)
    0.5
    """

    name: str
    log_loss: Callable
    params: tuple[Param, ...]
    inputs: tuple = ("N", "D")
    optional_inputs: tuple[str, ...] = ()
    citation: str = ""
    doc: str = ""
    init_grid: Mapping[str, Sequence[float]] | Callable = field(default_factory=dict)
    fixed: Mapping[str, float] = field(default_factory=dict)
    natural: Callable | None = None

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(
            f"law {self.name!r} has no parameter {name!r} ({', '.join(self.param_names)})"
        )

    def loss(self, params, inputs):
        """Predicted loss ``L = exp(log_loss(params, inputs))`` (by ``natural`` when given)."""
        if self.natural is not None:
            return self.natural(params, inputs)
        return jnp.exp(self.log_loss(params, inputs))

    @functools.cached_property
    def jit_loss(self):
        """``loss`` compiled once per input shape and dtype."""
        return jax.jit(self.loss)

    @functools.cached_property
    def jit_log_loss(self):
        return jax.jit(self.log_loss)

    def input_names(self) -> tuple[str, ...]:
        """Every column name the law can read (all alternatives flattened)."""
        names = []
        for entry in self.inputs:
            for alt in entry if isinstance(entry, tuple) else (entry,):
                names.extend(alt if isinstance(alt, tuple) else (alt,))
        return tuple(dict.fromkeys(names + list(self.optional_inputs)))

    def used_inputs(self, columns) -> tuple[str, ...]:
        """The columns the law reads when ``columns`` are available: for each input, the first
        alternative that is present in full, and the optional inputs that are present."""
        columns = set(columns)
        names = []
        for entry in self.inputs:
            for alt in entry if isinstance(entry, tuple) else (entry,):
                alt = alt if isinstance(alt, tuple) else (alt,)
                if set(alt) <= columns:
                    names.extend(alt)
                    break
        return tuple(dict.fromkeys(names + [n for n in self.optional_inputs if n in columns]))

    def __call__(self, params, **inputs):
        return self.loss(params, inputs)


_REGISTRY: dict[str, Law] = {}


class UnknownLawError(ValueError):
    pass


def register_law(law: Law, *, overwrite: bool = False) -> Law:
    """Add a law to the registry; fitting, posteriors and allocation then work on it by name.

    Registering the same object again is harmless; a different law under a taken name needs
    ``overwrite=True``.

    >>> import jax.numpy as jnp
    >>> import slaws
    >>> law = slaws.Law(
    ...     name="doc_power",
    ...     log_loss=lambda p, x: jnp.log(p["a"]) - p["b"] * jnp.log(x["x"]),
    ...     params=(
    ...         slaws.Param("a", log=True, prior=("LogNormal", 0.0, 2.0)),
    ...         slaws.Param("b", 0.0, 2.0, prior=("Uniform", 0.0, 2.0)),
    ...     ),
    ...     inputs=("x",),
    ... )
    >>> slaws.register_law(law, overwrite=True) is law
    True
    >>> slaws.get_law("doc_power") is law
    True
    >>> from slaws import law as registry
    >>> del registry._REGISTRY["doc_power"]  # keep the example out of other code's registry
    """
    _load_builtin()
    if law.name in _REGISTRY and not overwrite and _REGISTRY[law.name] is not law:
        raise ValueError(f"a law named {law.name!r} is already registered")
    _REGISTRY[law.name] = law
    return law


def get_law(name: str | Law) -> Law:
    """Look a law up by name. ``"package.module:attribute"`` imports a user's ``Law`` object.

    >>> import slaws
    >>> law = slaws.get_law("chinchilla")
    >>> law.param_names, law.inputs
    (('E', 'A', 'B', 'alpha', 'beta'), ('N', 'D'))
    >>> slaws.get_law("chinchila")
    Traceback (most recent call last):
    ...
    slaws.law.UnknownLawError: unknown law 'chinchila'; did you mean 'chinchilla'? ...
    """
    if isinstance(name, Law):
        return name
    _load_builtin()
    if name in _REGISTRY:
        return _REGISTRY[name]
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            obj = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as err:
            raise UnknownLawError(f"cannot import law {name!r}: {err}") from None
        if not isinstance(obj, Law):
            raise UnknownLawError(f"{name!r} is not a slaws.Law")
        return obj
    close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise UnknownLawError(
        f"unknown law {name!r}{hint} (known laws: {', '.join(sorted(_REGISTRY))})"
    )


def law_names() -> list[str]:
    """Names of the registered laws, sorted.

    >>> import slaws
    >>> slaws.law_names()
    ['bnsl', 'bnsl2', 'chinchilla', 'chinchilla_gamma', 'data_constrained', 'distillation', ...]
    """
    _load_builtin()
    return sorted(_REGISTRY)


def _load_builtin():
    if not _REGISTRY:
        importlib.import_module("slaws.laws")


def lse(*terms):
    """log(sum(exp(terms))) of broadcastable arrays, finite where each term is.

    >>> import math
    >>> from slaws.law import lse
    >>> round(float(lse(math.log(1.0), math.log(2.0), math.log(3.0))), 4)  # log 6
    1.7918
    >>> round(float(lse(-1000.0, -1000.0)), 2)  # exp(-1000) underflows; the result does not
    -999.31
    """
    return functools.reduce(jnp.logaddexp, terms)


def log_grid(start: float, stop: float, step: float) -> list[float]:
    """exp of an inclusive arithmetic grid: published grids list log A, log B, log E.

    >>> from slaws.law import log_grid
    >>> [round(v, 2) for v in log_grid(0.0, 10.0, 5.0)]  # A in {e^0, e^5, e^10}
    [1.0, 148.41, 22026.47]
    """
    n = round((stop - start) / step) + 1
    return [math.exp(start + i * step) for i in range(n)]


def grid(start: float, stop: float, step: float) -> list[float]:
    """Inclusive arithmetic grid, free of floating-point drift.

    >>> from slaws.law import grid
    >>> grid(0.0, 2.0, 0.5)
    [0.0, 0.5, 1.0, 1.5, 2.0]
    >>> len(grid(0.0, 1.0, 0.1))  # the stop is included despite 0.1's rounding
    11
    """
    n = round((stop - start) / step) + 1
    return [start + i * step for i in range(n)]
