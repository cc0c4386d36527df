"""Published fitting procedures, replayed by name: objective, data selection, start grid and the
parameters held fixed. Data, not code branches: a recipe is one entry of ``RECIPES``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field

from slaws.objectives import Objective


def drop_highest_loss(frame, n):
    """Besiroglu et al. 2024: keep rows with loss < the n-th highest loss (245 -> 240 rows).

    >>> import pandas as pd
    >>> from slaws.recipes import drop_highest_loss
    >>> frame = pd.DataFrame({"loss": [3.0, 1.0, 4.0, 1.5, 5.0]})
    >>> drop_highest_loss(frame, 2)["loss"].tolist()
    [3.0, 1.0, 1.5]
    """
    if len(frame) <= n:
        return frame
    threshold = frame["loss"].sort_values().iloc[-n]
    return frame[frame["loss"] < threshold].reset_index(drop=True)


SELECTIONS = {"drop_highest_loss": drop_highest_loss}


@dataclass(frozen=True)
class Recipe:
    """A published procedure.

    ``grids`` maps law names to a start grid (``None``: the law's default grid); a recipe only
    applies to the laws it lists. ``select`` is ``(name, *args)`` of a function in ``SELECTIONS``.
    ``fixed`` maps a law to the preset whose values it holds fixed.

    A procedure of one's own: squared log residuals after dropping the highest loss.

    >>> import pandas as pd
    >>> from slaws.objectives import Objective
    >>> from slaws.recipes import Recipe
    >>> mine = Recipe(
    ...     name="mine",
    ...     objective=Objective("squared_log"),
    ...     grids={"chinchilla": None},
    ...     select=("drop_highest_loss", 1),
    ... )
    >>> mine.apply_selection(pd.DataFrame({"loss": [3.0, 1.0, 4.0]}))["loss"].tolist()
    [3.0, 1.0]
    """

    name: str
    objective: Objective
    grids: Mapping[str, Mapping | None]
    select: tuple = ()
    fixed: Mapping[str, str] = field(default_factory=dict)
    citation: str = ""
    doc: str = ""

    def apply_selection(self, frame):
        if not self.select:
            return frame
        name, *args = self.select
        return SELECTIONS[name](frame, *args)


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            name="hoffmann2022",
            objective=Objective("huber", delta=1e-3, reduction="mean"),
            grids={"chinchilla": None},
            citation="Hoffmann et al. 2022, arXiv:2203.15556, App. D.2",
            doc="Huber (delta 1e-3) on log residuals, averaged over all rows; L-BFGS from the "
            "4,500-point grid of App. D.2 (here: the same grid, slaws' solver).",
        ),
        Recipe(
            name="epoch2024",
            objective=Objective("huber", delta=1e-3, reduction="sum"),
            grids={"chinchilla": None},
            select=("drop_highest_loss", 5),
            citation="Besiroglu et al. 2024, Chinchilla Scaling: A replication attempt, "
            "arXiv:2404.10102 (notebook cell 18)",
            doc="Huber (delta 1e-3) summed over log residuals of the 240 rows left after dropping "
            "the 5 highest losses; grid alpha, beta in {0,...,2}, e in {-1,...,1}, a, b in "
            "{0,5,...,25}: 4,500 starts; best objective kept.",
        ),
        Recipe(
            name="busbridge2025",
            objective=Objective("huber", delta=1e-4, reduction="sum"),
            grids={"chinchilla_gamma": None, "distillation": None},
            fixed={"distillation": "busbridge2025-supervised"},
            citation="Busbridge et al. 2025, Distillation Scaling Laws, arXiv:2502.08606, App. F",
            doc="Huber (delta 1e-4) summed over log residuals; 9,600 starts for the supervised "
            "law, 216,000 for the 9 distillation coefficients with the supervised ones fixed.",
        ),
    )
}


class UnknownRecipeError(ValueError):
    pass


def get_recipe(name: str) -> Recipe:
    """A published recipe by name; unknown names raise ``UnknownRecipeError``.

    >>> from slaws.recipes import get_recipe
    >>> recipe = get_recipe("epoch2024")
    >>> recipe.objective.describe(), recipe.select
    ('huber(delta=0.001, sum)', ('drop_highest_loss', 5))
    """
    if name in RECIPES:
        return RECIPES[name]
    close = difflib.get_close_matches(name, list(RECIPES), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise UnknownRecipeError(
        f"unknown recipe {name!r}{hint} (known recipes: {', '.join(sorted(RECIPES))})"
    )


def names() -> list[str]:
    """Names of the published recipes, sorted.

    >>> from slaws import recipes
    >>> recipes.names()
    ['busbridge2025', 'epoch2024', 'hoffmann2022']
    """
    return sorted(RECIPES)
