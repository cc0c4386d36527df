"""slaws: neural scaling laws as pure JAX functions, fitted fast and honestly.

The public names below are imported lazily so that ``import slaws`` (and the CLI's ``--help``)
stays fast: jax is only loaded when a law is evaluated or a fit is run.

Numerics: importing slaws never changes JAX's global configuration. ``slaws.fit`` runs in float64
inside a scoped ``jax.enable_x64(True)`` context; evaluating a law keeps the dtype of its inputs.
"""

import importlib

__version__ = "0.1.0"

_LAZY = {
    "Law": "slaws.law",
    "Param": "slaws.law",
    "get_law": "slaws.law",
    "law_names": "slaws.law",
    "register_law": "slaws.law",
    "fit": "slaws.fitting",
    "FitResult": "slaws.fitting",
    "FitError": "slaws.fitting",
    "FitWarning": "slaws.fitting",
    "Objective": "slaws.objectives",
    "load": "slaws.data",
    "DataError": "slaws.data",
    "DataWarning": "slaws.data",
}
_MODULES = (
    "allocation",
    "baselines",
    "bayes",
    "bench",
    "calibration",
    "compare",
    "data",
    "datasets",
    "design",
    "fitting",
    "flops",
    "grid",
    "hierarchical",
    "law",
    "objectives",
    "plot",
    "presets",
    "recipes",
    "revisiting",
    "solver",
    "synthetic",
)


def __getattr__(name):
    if name in _MODULES:
        return importlib.import_module(f"slaws.{name}")
    if name not in _LAZY:
        raise AttributeError(f"module 'slaws' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_LAZY) + list(_MODULES))


__all__ = sorted(_LAZY)
