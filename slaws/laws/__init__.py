"""The built-in laws. Each module defines one ``LAW`` (or several); registering is the only step."""

from slaws.law import register_law
from slaws.laws import (
    bnsl,
    chinchilla,
    chinchilla_gamma,
    data_constrained,
    distillation,
    kaplan,
    learning_curves,
)

for _module in (
    chinchilla,
    chinchilla_gamma,
    kaplan,
    distillation,
    data_constrained,
    bnsl,
    learning_curves,
):
    for _law in _module.LAWS:
        register_law(_law)
