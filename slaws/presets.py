"""Published coefficients, transcribed with their sources. Data only: no code depends on a name.

Each preset names its law, its parameters on the natural scale and, where the paper gives them,
intervals (``interval`` maps a parameter to (low, high) at level ``interval_level``) or standard
errors (``se``).
"""

import math

# Busbridge et al. 2025, Table 6, supervised column: the distillation law uses these too.
_BUSBRIDGE_SUPERVISED = {
    "E": 1.220,
    "A": 3355.0,
    "B": 18186.0,
    "alpha": 0.408,
    "beta": 0.431,
    "gamma": 0.452,
}
_BUSBRIDGE_SUPERVISED_90 = {
    "E": (1.190, 1.247),
    "A": (3346.0, 3360.0),
    "B": (18157.0, 18236.0),
    "alpha": (0.405, 0.411),
    "beta": (0.428, 0.433),
    "gamma": (0.442, 0.461),
}

PRESETS: dict[str, dict] = {
    "hoffmann2022": {
        "law": "chinchilla",
        "params": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28},
        "citation": "Hoffmann et al. 2022, arXiv:2203.15556, Eq. 10 (Approach 3, rounded)",
    },
    "hoffmann2022-unrounded": {
        "law": "chinchilla",
        "params": {
            "E": math.exp(0.5267228),
            "A": math.exp(6.0073404),
            "B": math.exp(6.0179186),
            "alpha": 0.33917084,
            "beta": 0.2849083,
        },
        "citation": "Hoffmann et al. 2022 Approach 3, unrounded values from the paper's TeX source "
        "(a=6.0073404, b=6.0179186, e=0.5267228) as used by Besiroglu et al. 2024",
    },
    "epoch2024": {
        "law": "chinchilla",
        "params": {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658},
        "se": {"E": 0.03, "A": 124.58, "B": 1293.23, "alpha": 0.02, "beta": 0.02},
        "interval_level": 0.95,
        "interval": {
            "A": (285.2, 743.6),
            "B": (1042.4, 5810.3),
            "E": (1.769, 1.871),
            "alpha": (0.317, 0.373),
            "beta": (0.331, 0.415),
        },
        "citation": "Besiroglu et al. 2024, Chinchilla Scaling: A replication attempt, "
        "arXiv:2404.10102 (headline estimates, bootstrap SEs and 95% intervals)",
    },
    "busbridge2025-supervised": {
        "law": "chinchilla_gamma",
        "params": _BUSBRIDGE_SUPERVISED,
        "interval_level": 0.90,
        "interval": _BUSBRIDGE_SUPERVISED_90,
        "citation": "Busbridge et al. 2025, Distillation Scaling Laws, arXiv:2502.08606, Table 6 "
        "(supervised; 90% intervals from a 4096-resample bootstrap)",
    },
    "busbridge2025": {
        "law": "distillation",
        "params": {
            "A_prime": 2243.0,
            "B_prime": 24181.0,
            "alpha_prime": 0.321,
            "beta_prime": 0.637,
            "gamma_prime": 0.764,
            "c0": 2.549,
            "c1": 522.6,
            "f1": 0.090,
            "d1": 1.315,
            **_BUSBRIDGE_SUPERVISED,
        },
        "interval_level": 0.90,
        "interval": {
            "A_prime": (2227.0, 2255.0),
            "B_prime": (24084.0, 24266.0),
            "alpha_prime": (0.319, 0.324),
            "beta_prime": (0.634, 0.640),
            "gamma_prime": (0.732, 0.788),
            "c0": (2.425, 2.615),
            "c1": (522.6, 522.6),
            "f1": (0.088, 0.093),
            "d1": (1.302, 1.327),
            **_BUSBRIDGE_SUPERVISED_90,
        },
        "citation": "Busbridge et al. 2025, Distillation Scaling Laws, arXiv:2502.08606, Table 6 "
        "(distillation column with the supervised coefficients it uses; c1's interval is "
        "degenerate as printed)",
    },
    "muennighoff2023": {
        "law": "data_constrained",
        "params": {
            "E": math.exp(0.6254804),
            "A": math.exp(6.255414),
            "B": math.exp(7.3049974),
            "alpha": 0.3526596,
            "beta": 0.3526596,
            "R_D_star": 15.387756,
            "R_N_star": 5.309743,
        },
        "citation": "Muennighoff et al. 2023, arXiv:2305.16264; constants from the "
        "huggingface/datablations README (a, b, e in log form)",
    },
    "kaplan2020": {
        "law": "kaplan",
        "params": {"N_c": 8.8e13, "D_c": 5.4e13, "alpha_N": 0.076, "alpha_D": 0.095},
        "citation": "Kaplan et al. 2020, arXiv:2001.08361, Eq. 1.5 and Table 2",
    },
    "caballero2023-simulation": {
        "law": "bnsl",
        "params": {
            "a": 0.41388453071629455,
            "b": 2.2772722897737556,
            "c0": 0.055077348404973955,
            "c1": 5.662903816010331,
            "d1": 612.5836172918001,
            "f1": 0.059193036393742314,
        },
        "citation": "Caballero et al. 2023, arXiv:2210.14891, Fig. 4 (right): the noiseless "
        "simulation's ground truth, ethancaballero/broken_neural_scaling_laws@ffa608f7",
    },
}


class UnknownPresetError(ValueError):
    pass


def get_preset(name: str) -> dict:
    """A preset by name, with its ``name`` filled in.

    >>> from slaws.presets import get_preset
    >>> preset = get_preset("epoch2024")
    >>> preset["law"], preset["params"]["alpha"], preset["interval"]["alpha"]
    ('chinchilla', 0.3478, (0.317, 0.373))
    """
    if name not in PRESETS:
        raise UnknownPresetError(
            f"unknown preset {name!r} (known presets: {', '.join(sorted(PRESETS))})"
        )
    return {"name": name, **PRESETS[name]}


def names() -> list[str]:
    """Names of the presets, sorted.

    >>> from slaws import presets
    >>> presets.names()
    ['busbridge2025', 'busbridge2025-supervised', 'caballero2023-simulation', 'epoch2024', ...]
    """
    return sorted(PRESETS)
