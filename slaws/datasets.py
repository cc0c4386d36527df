"""Registry of public scaling-law datasets, found locally or downloaded and checked by sha256.

A registered name can be passed to :func:`slaws.data.load`. Files are looked for in
``$SLAWS_DATA_DIR/<folder>/<file>``, then in the cache (``$SLAWS_CACHE_DIR`` or
``~/.cache/slaws/data``), and otherwise downloaded into the cache from a URL pinned to a commit.
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

__all__ = ["Dataset", "cache_dir", "get", "locate", "names", "register"]

DOWNLOAD_TIMEOUT_S = 20


@dataclass(frozen=True)
class Dataset:
    """A public dataset: where to find it, how to check it and how to map its columns."""

    name: str
    folder: str
    file: str
    url: str
    sha256: str
    columns: dict = field(hash=False)  # dicts are unhashable; leave it out of __hash__
    citation: str
    licence: str
    description: str


_REGISTRY: dict[str, Dataset] = {}
_HASHES: dict[tuple[str, int, int], str] = {}


def register(ds: Dataset) -> Dataset:
    """Add ``ds`` to the registry and return it.

    Registering the same definition twice is harmless; reusing a name for a different
    definition raises :class:`ValueError`.
    """
    old = _REGISTRY.get(ds.name)
    if old is not None and old != ds:
        raise ValueError(f"dataset {ds.name!r} is already registered with a different definition")
    _REGISTRY[ds.name] = ds
    return ds


def names() -> list[str]:
    """Names of the registered datasets, sorted."""
    return sorted(_REGISTRY)


def get(name: str) -> Dataset:
    """Return the registered dataset ``name``; unknown names raise :class:`DataError`."""
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), names(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise DataError(
            f"unknown dataset {name!r} (registered datasets: {', '.join(names()) or 'none'}){hint}"
        ) from None


def cache_dir() -> Path:
    """Folder where datasets are cached: ``$SLAWS_CACHE_DIR`` or ``~/.cache/slaws/data``."""
    env = os.environ.get("SLAWS_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "slaws" / "data"


def locate(name: str, *, download: bool = True) -> Path:
    """Return the path of dataset ``name``'s file, checked against its sha256.

    Looks in ``$SLAWS_DATA_DIR/<folder>/<file>`` (if the variable is set), then in
    ``cache_dir()/<folder>/<file>``; if neither exists and ``download`` is true, fetches the
    dataset's URL into the cache (atomically, after checking the hash).

    Raises:
        DataError: unknown name, a file whose sha256 does not match, or no local copy and the
            download disabled or failed (the message says where to put the file).
    """
    ds = get(name)
    data_dir = os.environ.get("SLAWS_DATA_DIR")
    if data_dir:
        path = Path(data_dir).expanduser() / ds.folder / ds.file
        if path.is_file():
            _verify(ds, path, fix="replace it with the original file")
            return path

    cached = cache_dir() / ds.folder / ds.file
    if cached.is_file():
        _verify(ds, cached, fix="delete it so that it is downloaded again")
        return cached

    if not download:
        reason = "downloads disabled"
    else:
        try:
            _download(ds, cached)
            return cached
        except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts: OSError
            reason = " ".join(str(exc).split()) or type(exc).__name__
    raise DataError(
        f"dataset {name!r} is not available locally and could not be downloaded ({reason}): "
        f"set SLAWS_DATA_DIR to a folder containing {ds.folder}/{ds.file}, "
        f"or save {ds.url} as {cached}"
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


def _verify(ds: Dataset, path: Path, *, fix: str) -> None:
    actual = _sha256(path)
    if actual != ds.sha256:
        raise DataError(
            f"{path}: sha256 mismatch for dataset {ds.name!r} "
            f"(expected {ds.sha256}, got {actual}); {fix}"
        )


def _download(ds: Dataset, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with (
            os.fdopen(fd, "wb") as out,
            urllib.request.urlopen(ds.url, timeout=DOWNLOAD_TIMEOUT_S) as response,
        ):
            for chunk in iter(lambda: response.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != ds.sha256:
            raise DataError(
                f"{ds.url}: downloaded file's sha256 does not match dataset {ds.name!r} "
                f"(expected {ds.sha256}, got {digest.hexdigest()})"
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
