"""Registry of public scaling-law datasets, found locally or downloaded and checked by sha256.

A registered name can be passed to :func:`slaws.data.load`. Files are looked for in
``$SLAWS_DATA_DIR/<folder>/<file>``, then in the cache (``$SLAWS_CACHE_DIR`` or
``~/.cache/slaws/data``), and otherwise downloaded into the cache from a URL pinned to a commit.

A dataset may have further files (``parts``, e.g. the vision half of a benchmark), found the same
way with ``locate(name, part)``. A file that no URL serves as such (``derived``: parsed from a
notebook's output, a spreadsheet or a pickle at a pinned commit) is checked by sha256 like any
other but only ever found locally; the error says where it came from.
"""

from __future__ import annotations

import difflib
import hashlib
import http.client
import os
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .data import DataError

__all__ = ["Dataset", "Part", "cache_dir", "get", "locate", "names", "read", "register"]

DOWNLOAD_TIMEOUT_S = 20


@dataclass(frozen=True)
class Part:
    """A further file of a dataset. ``derived`` says how it was made when no URL serves it.

    >>> from slaws import datasets
    >>> part = datasets.get("bnsl-4digit").part("ground_truth")
    >>> part.file
    'noiseless_simulation_ground_truth_params.csv'
    >>> part.derived
    'transcribed from the constants of the simulation script'
    """

    file: str
    url: str
    sha256: str
    derived: str = ""


@dataclass(frozen=True)
class Dataset:
    """A public dataset: where to find it, how to check it and how to map its columns.

    >>> from slaws import datasets
    >>> ds = datasets.get("epoch-chinchilla")
    >>> ds.folder, ds.file
    ('chinchilla_epoch', 'svg_extracted_data.csv')
    >>> ds.columns  # canonical name -> published column (None: ignored)
    {'N': 'Model Size', 'C': 'Training FLOP', 'loss': 'loss', 'x': None}
    """

    name: str
    folder: str
    file: str
    url: str
    sha256: str
    columns: dict = field(hash=False)  # dicts are unhashable; leave it out of __hash__
    citation: str
    licence: str
    description: str
    derived: str = ""  # how the main file was made, when no URL serves it as such
    parts: dict = field(default_factory=dict, hash=False)  # part name -> Part

    def part(self, name: str | None) -> Part:
        """The main file (``None``) or part ``name`` as a :class:`Part`."""
        if name is None:
            return Part(self.file, self.url, self.sha256, self.derived)
        try:
            return self.parts[name]
        except KeyError:
            known = ", ".join(sorted(self.parts)) or "none"
            raise DataError(
                f"dataset {self.name!r} has no part {name!r} (parts: {known})"
            ) from None


_REGISTRY: dict[str, Dataset] = {}
_HASHES: dict[tuple[str, int, int], str] = {}


def register(ds: Dataset) -> Dataset:
    """Add ``ds`` to the registry and return it.

    Registering the same definition twice is harmless; reusing a name for a different
    definition raises :class:`ValueError`.

    >>> import dataclasses
    >>> from slaws import datasets
    >>> ds = datasets.get("bnsl-4digit")
    >>> datasets.register(ds) is ds
    True
    >>> datasets.register(dataclasses.replace(ds, licence="MIT"))
    Traceback (most recent call last):
    ...
    ValueError: dataset 'bnsl-4digit' is already registered with a different definition
    """
    old = _REGISTRY.get(ds.name)
    if old is not None and old != ds:
        raise ValueError(f"dataset {ds.name!r} is already registered with a different definition")
    _REGISTRY[ds.name] = ds
    return ds


def names() -> list[str]:
    """Names of the registered datasets, sorted.

    >>> from slaws import datasets
    >>> datasets.names()
    ['bnsl-4digit', 'colpret-hitchhiker', 'datablations', 'epoch-chinchilla', ...]
    """
    return sorted(_REGISTRY)


def get(name: str) -> Dataset:
    """Return the registered dataset ``name``; unknown names raise :class:`DataError`.

    >>> from slaws import datasets
    >>> datasets.get("datablations").columns["U"]
    'unique_tokens_U'
    >>> datasets.get("epoch-chinchila")
    Traceback (most recent call last):
    ...
    slaws.data.DataError: unknown dataset 'epoch-chinchila' (...); did you mean 'epoch-chinchilla'?
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), names(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise DataError(
            f"unknown dataset {name!r} (registered datasets: {', '.join(names()) or 'none'}){hint}"
        ) from None


def cache_dir() -> Path:
    """Folder where datasets are cached: ``$SLAWS_CACHE_DIR`` or ``~/.cache/slaws/data``.

    >>> import os
    >>> from unittest import mock
    >>> from slaws import datasets
    >>> with mock.patch.dict(os.environ, {"SLAWS_CACHE_DIR": "/tmp/slaws-cache"}):
    ...     print(datasets.cache_dir())
    /tmp/slaws-cache
    """
    env = os.environ.get("SLAWS_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "slaws" / "data"


def read(name: str, part: str | None = None, **read_csv):
    """Dataset ``name``'s file (or ``part``) as a raw :class:`pandas.DataFrame`, columns as
    published; ``read_csv`` options pass through.

    >>> from slaws import datasets
    >>> frame = datasets.read("bnsl-4digit")
    >>> frame.shape, list(frame.columns)
    ((17, 3), ['train_dataset_size', 'test_cross_entropy', 'split'])
    """
    import pandas as pd

    return pd.read_csv(locate(name, part), **read_csv)


def locate(name: str, part: str | None = None, *, download: bool = True) -> Path:
    """Return the path of dataset ``name``'s file (or its ``part``), checked against its sha256.

    Looks in ``$SLAWS_DATA_DIR/<folder>/<file>`` (if the variable is set), then in
    ``cache_dir()/<folder>/<file>``; if neither exists and ``download`` is true, fetches the
    dataset's URL into the cache (atomically, after checking the hash).

    Raises:
        DataError: unknown name, a file whose sha256 does not match, or no local copy and the
            download disabled or failed (the message says where to put the file).

    >>> from slaws import datasets
    >>> datasets.locate("bnsl-4digit", download=False).name
    'four_digit_addition.csv'
    >>> datasets.locate("bnsl-4digit", "ground_truth", download=False).name
    'noiseless_simulation_ground_truth_params.csv'
    """
    ds = get(name)
    spec = ds.part(part)
    label = name if part is None else f"{name} ({part})"
    data_dir = os.environ.get("SLAWS_DATA_DIR")
    if data_dir:
        path = Path(data_dir).expanduser() / ds.folder / spec.file
        if path.is_file():
            _verify(label, spec, path, fix="replace it with the original file")
            return path

    cached = cache_dir() / ds.folder / spec.file
    if cached.is_file():
        _verify(label, spec, cached, fix="delete it so that it is downloaded again")
        return cached

    if spec.derived:
        raise DataError(
            f"dataset {label!r} is not available locally and cannot be downloaded (it was "
            f"{spec.derived}, {spec.url}): set SLAWS_DATA_DIR to a folder containing "
            f"{ds.folder}/{spec.file}"
        )
    if not download:
        reason = "downloads disabled"
    else:
        try:
            _download(label, spec, cached)
            return cached
        except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts: OSError
            reason = " ".join(str(exc).split()) or type(exc).__name__
    raise DataError(
        f"dataset {label!r} is not available locally and could not be downloaded ({reason}): "
        f"set SLAWS_DATA_DIR to a folder containing {ds.folder}/{spec.file}, "
        f"or save {spec.url} as {cached}"
    )


def _sha256(path: Path) -> str:
    stat = path.stat()
    # Keyed on size and mtime too, so a file replaced during the session is hashed again.
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def _verify(label: str, spec: Part, path: Path, *, fix: str) -> None:
    actual = _sha256(path)
    if actual != spec.sha256:
        raise DataError(
            f"{path}: sha256 mismatch for dataset {label!r} "
            f"(expected {spec.sha256}, got {actual}); {fix}"
        )


def _download(label: str, spec: Part, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with (
            os.fdopen(fd, "wb") as out,
            urllib.request.urlopen(spec.url, timeout=DOWNLOAD_TIMEOUT_S) as response,
        ):
            for chunk in iter(lambda: response.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != spec.sha256:
            raise DataError(
                f"{spec.url}: downloaded file's sha256 does not match dataset {label!r} "
                f"(expected {spec.sha256}, got {digest.hexdigest()})"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


register(
    Dataset(
        name="epoch-chinchilla",
        folder="chinchilla_epoch",
        file="svg_extracted_data.csv",
        url=(
            "https://raw.githubusercontent.com/epoch-research/analyzing-chinchilla/"
            "92258837425e1b5f2851d624287f0120583a3d0e/data/svg_extracted_data.csv"
        ),
        sha256="193478df4e90f040016431996c45682659306840ecdadf83cfb9cd5ca0aa1b30",
        # D = C / (6 N) is derived by data.load. The file's 'x' is an SVG coordinate, not the
        # canonical 'x', so it is explicitly ignored.
        columns={"N": "Model Size", "C": "Training FLOP", "loss": "loss", "x": None},
        citation=(
            "Besiroglu, Erdil, Barnett, You, 'Chinchilla Scaling: A replication attempt', "
            "arXiv:2404.10102 (2024); Hoffmann et al., 'Training Compute-Optimal Large "
            "Language Models', arXiv:2203.15556 (2022), Figure 4"
        ),
        licence="none stated (same bytes in MIT-licensed IBM/ColPret)",
        description=(
            "Chinchilla (Hoffmann et al. 2022) final training losses of 245 runs, read out of "
            "Figure 4's SVG by Epoch AI: model size N, training FLOP C and loss; D = C / (6 N). "
            "Epoch drops the 5 highest losses (240 rows) before fitting."
        ),
    )
)


_GADRE = "https://github.com/mlfoundations/scaling/tree/a003c4913793ac2ae7ef87b28ecb562955d026d5"
register(
    Dataset(
        name="gadre-overtrain",
        folder="gadre_overtrain",
        file="models_tidy.csv",
        url=f"{_GADRE}/exp_data/models",
        sha256="2548888ed3b2bdf35965cacfa025ecefc48cb61e10b6a1999ac657f320a1a029",
        derived="parsed from the 104 model JSON files (as scaling/shared.py parse_model_json does)",
        columns={"N": "N", "D": "D", "loss": "loss_c4_val"},
        citation=(
            "Gadre et al., 'Language models scale reliably with over-training and on downstream "
            "tasks', arXiv:2403.08540 (ICLR 2025)"
        ),
        licence="MIT",
        description=(
            "104 open_lm models (10.6M-6.9B parameters, 5-640 tokens per parameter) on C4, "
            "RedPajama and RefinedWeb: final losses on eight validation sets and 46 downstream "
            "accuracies; one row per model."
        ),
    )
)

_REVISITING = (
    "https://raw.githubusercontent.com/google-research/google-research/"
    "9853680c781781bd8d3de20aa61c7373ce059913/revisiting_neural_scaling_laws/data"
)
register(
    Dataset(
        name="revisiting-scaling",
        folder="revisiting_neural_scaling_laws",
        file="benchmark.lang.csv",
        url=f"{_REVISITING}/benchmark.lang.csv",
        sha256="63c346db00a66b692e1ea9a0f71a2f2b267e55f74be5b863a92e199dffbf0983",
        columns={"x": "Seen Examples", "loss": "Loss"},
        parts={
            "vision": Part(
                "benchmark.vision.csv",
                f"{_REVISITING}/benchmark.vision.csv",
                "23b00692d71e58aa5a2a941e831d57688e0977fdcf5f5125ff7b64283b5d9e83",
            ),
            # Per-curve errors of the official M1-M4 code, as its Colab computes them: what a
            # reimplementation must reproduce (the paper prints only aggregates).
            "reference": Part(
                "reference_official_m1_m4.csv",
                "https://github.com/google-research/google-research/blob/"
                "9853680c781781bd8d3de20aa61c7373ce059913/revisiting_neural_scaling_laws/"
                "revisiting_neural_scaling_laws.ipynb",
                "3be84528abbed3c2e91ae15bd33e09ac36ded925c025b5578010eec0e02f1bf8",
                derived="computed by the dataset's curator with the official estimators",
            ),
            "reference_summary": Part(
                "reference_official_m1_m4_summary.csv",
                "https://github.com/google-research/google-research/blob/"
                "9853680c781781bd8d3de20aa61c7373ce059913/revisiting_neural_scaling_laws/"
                "revisiting_neural_scaling_laws.ipynb",
                "1510d5efbeab7770d9467fe04844bc80d3343153069b6aea26ff13495ea832c4",
                derived="computed by the dataset's curator with the official estimators",
            ),
        },
        citation=(
            "Alabdulmohsin, Neyshabur, Zhai, 'Revisiting Neural Scaling Laws in Language and "
            "Vision', NeurIPS 2022, arXiv:2209.06640"
        ),
        licence="Apache-2.0",
        description=(
            "92 learning curves (image classification, NMT, language modelling, BIG-bench): loss "
            "or error against examples seen, each split into fitted and extrapolated points "
            "(column Training). Language file; part 'vision' holds the image-classification "
            "curves."
        ),
    )
)

_BNSL = (
    "https://github.com/ethancaballero/broken_neural_scaling_laws/blob/"
    "ffa608f7ca7910b6f6bcbd39915491353ad5d600"
)
register(
    Dataset(
        name="bnsl-4digit",
        folder="bnsl_4digit_addition",
        file="four_digit_addition.csv",
        url=f"{_BNSL}/fit_bnsl_and_extrapolate__4_digit_addition__dataset_size_x-axis.py",
        sha256="04ec5a62a2e041da94a1cb671ea483051aaf5a435b666a57fce07469618bd431",
        derived="transcribed from the arrays of the fitting script",
        columns={"x": "train_dataset_size", "loss": "test_cross_entropy"},
        parts={
            "ground_truth": Part(
                "noiseless_simulation_ground_truth_params.csv",
                f"{_BNSL}/fit_bnsl_and_extrapolate__4_digit_addition__dataset_size_x-axis"
                "__noiseless_simulation.py",
                "d6f3845a9ba05fd89348d3b359026cca0f536eb61797313aa9dae9efa13c8347",
                derived="transcribed from the constants of the simulation script",
            )
        },
        citation="Caballero et al., 'Broken Neural Scaling Laws', ICLR 2023, arXiv:2210.14891",
        licence="none stated (numbers from a published figure and script)",
        description=(
            "4-digit addition, test cross-entropy against training-set size (Figure 4): 14 "
            "points to fit and 3 to extrapolate (column split); part 'ground_truth' holds the "
            "noiseless simulation's BNSL parameters."
        ),
    )
)

_MISFITTING = (
    "https://raw.githubusercontent.com/hadasah/scaling_laws/"
    "1f3708c0a12df0effb0ee906b1da5f9f0ff4f4f1/data"
)
register(
    Dataset(
        name="misfitting-openlm",
        folder="misfitting_openlm",
        file="scaling_results.csv",
        url=f"{_MISFITTING}/scaling_results.csv",
        sha256="193b4b7665365112605417e2ef06d55efe599cfa08412354e3ae42c3af7a9f58",
        columns={"N": "N", "D": "D", "loss": "loss", "C": None},
        parts={
            "last_checkpoint": Part(
                "scaling_results_last_ckpt_only.csv",
                f"{_MISFITTING}/scaling_results_last_ckpt_only.csv",
                "cd96b9eb8e5b2adc80e6739a642dd8554590edc96234d36859ab6ed0f5c30562",
            )
        },
        citation=(
            "Li, Kudugunta, Zettlemoyer, '(Mis)Fitting: A Survey of Scaling Laws', ICLR 2025, "
            "arXiv:2502.18969"
        ),
        licence="none stated",
        description=(
            "OpenLM runs of 12M-1B parameters on C4 under 40 sweeps of tokens and learning rate: "
            "C4 validation loss at 4,852 checkpoints (part 'last_checkpoint': 261 final ones)."
        ),
    )
)

_COLPRET = "https://raw.githubusercontent.com/IBM/ColPret/16f23bbe054277ddc4afd07a972dd7cfbe3f48c3"
register(
    Dataset(
        name="colpret-hitchhiker",
        folder="colpret_hitchhiker",
        file="gpt3_extracted.csv",
        url=f"{_COLPRET}/raw_data/gpt3/extracted.csv",
        sha256="ea73b550de60d8b278523fa69385df0c2892546f8820aea12b4d1fe2d4f98962",
        columns={"loss": "val_loss"},
        parts={
            "gpt3_metadata": Part(
                "gpt3_metadata.csv",
                f"{_COLPRET}/raw_data/gpt3/gpt3_metadata.xlsx",
                "6e001c4fd5795b01ccb1e23773389084dd0a5b512032c45aefb5c89c40dd4bd4",
                derived="converted from the spreadsheet",
            ),
            "opt": Part(
                "opt_trajectories.csv",
                f"{_COLPRET}/aggregated_eval/opt_trajectories.csv",
                "c3a53ccc7a412f0caff4179ce484acf1c2aab36b25677473658f094362449ff5",
            ),
            "datablations": Part(
                "datablations_losses.csv",
                f"{_COLPRET}/aggregated_eval/datablations_losses.csv",
                "b3c448c2cd1a17128e06ee3120a9c377c4e2bf649e09b2446db59f98ef957b48",
            ),
        },
        citation=(
            "Choshen, Zhang, Andreas, 'A Hitchhiker's Guide to Scaling Law Estimation', ICML "
            "2025, arXiv:2410.11840"
        ),
        licence="MIT (ColPret; data from Brown 2020, Xia 2022, Muennighoff 2023)",
        description=(
            "Training curves of many model sizes: GPT-3's eight models (loss against tokens, in "
            "billions, read from Brown et al.), OPT (part 'opt') and the datablations runs "
            "(part 'datablations'); part 'gpt3_metadata' gives GPT-3's sizes."
        ),
    )
)

_PORIAN = (
    "https://github.com/formll/resolving-scaling-law-discrepancies/tree/"
    "0dc60d91b8a525858a3067fc9e4a46ff5374cc6f/data"
)
register(
    Dataset(
        name="porian-isoflop",
        folder="porian",
        file="porian_isoflop_points.csv",
        url=_PORIAN,
        sha256="3f070935801065c395aa9b49e7672a8e233478567bc9809a694627514721b9d8",
        derived="flattened from summary_df*.pickle.xz",
        columns={"N": "params_N", "D": "tokens_D", "C": "flops", "loss": "loss"},
        parts={
            "optimal": Part(
                "porian_optimal_points.csv",
                _PORIAN,
                "a673dada70e49133d854591b4bc7b182b0de1e13a9f10b3cd93620588b29e7eb",
                derived="flattened from summary_df*.pickle.xz",
            ),
            "fit_summary": Part(
                "porian_fit_summary.csv",
                _PORIAN,
                "e17587130a31d59a2020079f356d37f8ae53005584b895988183e0184256fa77",
                derived="flattened from summary_df*.pickle.xz",
            ),
        },
        citation=(
            "Porian et al., 'Resolving Discrepancies in Compute-Optimal Scaling of Language "
            "Models', NeurIPS 2024, arXiv:2406.19146"
        ),
        licence="MIT",
        description=(
            "IsoFLOP profiles (12 budgets 1.25e16-2.56e19 FLOPs) of 15 configurations that walk "
            "from Kaplan's to Chinchilla's exponent; part 'optimal': per-budget optima with "
            "bootstrap spreads; part 'fit_summary': the paper's fitted exponents."
        ),
    )
)

register(
    Dataset(
        name="datablations",
        folder="datablations",
        file="datablations_c4_runs.csv",
        url=(
            "https://github.com/huggingface/datablations/blob/"
            "13701315b163f1c54642b94ad237b2699187c3ee/utils/parametric_fit.ipynb"
        ),
        sha256="5486b1e14e2108779043647d3e78650127186a5ef494316fa41f0e6ac3134113",
        derived="parsed from the printed output of the notebook's fit set",
        columns={"N": "params_N", "D": "tokens_D", "U": "unique_tokens_U", "loss": "val_loss"},
        citation=(
            "Muennighoff et al., 'Scaling Data-Constrained Language Models', NeurIPS 2023, "
            "arXiv:2305.16264"
        ),
        licence="Apache-2.0",
        description=(
            "182 C4 runs (7M-8.7B parameters, 1-9,000 epochs over 100M-178B unique tokens): "
            "final validation loss, the fit set of the data-constrained law."
        ),
    )
)

_OBS = (
    "https://raw.githubusercontent.com/ryoungj/ObsScaling/"
    "4d6e1e43fd2635d04654aa77d1df9d5266ea0382/eval_results"
)
register(
    Dataset(
        name="obsscaling",
        folder="obsscaling",
        file="base_llm_benchmark_eval.csv",
        url=f"{_OBS}/base_llm_benchmark_eval.csv",
        sha256="511996815735a4c46251dc585dcc525e370d148201f86561e6f927f9df2d0db8",
        columns={},
        parts={
            "emergent": Part(
                "base_llm_emergent_capability_eval.csv",
                f"{_OBS}/base_llm_emergent_capability_eval.csv",
                "a156beee73c39b7833c3c53535c473939105512d85e90b0143be7325e516ef7c",
            )
        },
        citation=(
            "Ruan, Maddison, Hashimoto, 'Observational Scaling Laws and the Predictability of "
            "Language Model Performance', NeurIPS 2024, arXiv:2405.10938"
        ),
        licence="Apache-2.0",
        description=(
            "148 public base models of 47 families: size, pretraining tokens, FLOPs and eight "
            "benchmark accuracies (part 'emergent': eight BIG-bench-style metrics). No losses."
        ),
    )
)
