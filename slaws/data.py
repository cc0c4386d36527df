"""Loading and validating scaling-law data.

:func:`load` turns a CSV/TSV/Parquet file, a :class:`pandas.DataFrame` or a registered dataset name
into a DataFrame with canonical column names (see :data:`CANONICAL_COLUMNS`), checked so that every
later error can be blamed on a specific cell. Problems with the data raise :class:`DataError`,
whose message is a single line naming the source, the column and the row.

This module must import fast: it uses pandas and numpy only, never jax.
"""

from __future__ import annotations

import difflib
import os
import shlex
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "CANONICAL_COLUMNS",
    "POSITIVE_COLUMNS",
    "DataError",
    "DataWarning",
    "describe_row",
    "load",
    "require_points",
]


class DataError(ValueError):
    """Bad or missing input data. The message is one line naming source, column and row."""


class DataWarning(UserWarning):
    """Suspicious but usable input data (duplicate rows, odd units)."""


CANONICAL_COLUMNS: tuple[str, ...] = (
    "N",  # parameters
    "D",  # training tokens
    "loss",
    "U",  # unique tokens (data-constrained laws)
    "N_T",  # target-model parameters (transfer laws)
    "D_T",  # target-model tokens
    "L_T",  # target loss
    "C",  # training FLOPs
    "x",  # generic 1-D independent variable
    "step",
    "family",  # string label grouping runs
)
NUMERIC_COLUMNS: tuple[str, ...] = tuple(c for c in CANONICAL_COLUMNS if c != "family")
POSITIVE_COLUMNS: tuple[str, ...] = tuple(c for c in NUMERIC_COLUMNS if c != "step")

_SUFFIX_SEP = {".csv": ",", ".tsv": "\t", ".parquet": None}

# Substrings of common real-world column names, used only to suggest a mapping, never to apply one.
_HINTS = {
    "N": ("param", "model size", "model_size", "n_params"),
    "D": ("token", "data size", "data_size"),
    "loss": ("loss",),
    "C": ("flop", "compute"),
    "U": ("unique",),
    "step": ("step", "iter"),
    "family": ("family",),
}

_MAX_LISTED_COLUMNS = 20


class _Source:
    """Where rows came from, so messages can say ``runs.csv: column 'N', row 3 (line 4)``."""

    def __init__(self, label: str, rows: list, lines: list[int] | None = None):
        self.label = label
        self.rows = rows
        self.lines = lines

    def row(self, pos: int) -> str:
        if self.lines is not None:
            return f"row {self.rows[pos]} (line {self.lines[pos]})"
        return f"row {self.rows[pos]}"


def describe_row(df: pd.DataFrame, i: int) -> str:
    """Describe row position ``i`` of a frame returned by :func:`load`, e.g. ``row 3 (line 4)``.

    Uses ``df.attrs["rows"]`` (and ``df.attrs["lines"]`` for CSV/TSV files); falls back to the
    index label when the attrs are missing or no longer match the frame (e.g. after filtering).

    >>> import os, tempfile
    >>> import pandas as pd
    >>> from slaws.data import describe_row, load
    >>> runs = pd.DataFrame({"N": [1e8, 1e9], "D": [2e9, 2e10], "loss": [3.1, 2.6]})
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     runs.to_csv(os.path.join(folder, "runs.csv"), index=False)
    ...     df = load(os.path.join(folder, "runs.csv"))
    >>> describe_row(df, 1)  # data row 2, line 3 of the file (line 1 is the header)
    'row 2 (line 3)'
    >>> describe_row(df[df["loss"] < 3.0], 0)  # filtered: the index label
    'row 1'
    """
    rows = df.attrs.get("rows")
    if rows is None or len(rows) != len(df):
        return f"row {df.index[i]}"
    lines = df.attrs.get("lines")
    if lines is not None and len(lines) == len(rows):
        return f"row {rows[i]} (line {lines[i]})"
    return f"row {rows[i]}"


def load(
    source: str | os.PathLike | pd.DataFrame,
    *,
    columns: Mapping[str, str | None] | None = None,
    required: Iterable[str | tuple] = ("N", "D", "loss"),
) -> pd.DataFrame:
    """Load scaling-law data into a validated DataFrame with canonical column names.

    Args:
        source: a path to a ``.csv``, ``.tsv`` or ``.parquet`` file, a :class:`pandas.DataFrame`
            (never modified), or the name of a registered dataset (see :mod:`slaws.datasets`);
            a string is a dataset name only when no file of that name exists.
        columns: maps canonical names to the source's column names, e.g.
            ``{"N": "Model Size", "loss": "val_loss"}``. Canonical names not mapped are taken from
            a column of the same name (exact match first, then ignoring case and surrounding
            spaces). Mapping a name to ``None`` ignores it even if a same-named column exists.
            For a registered dataset, these entries override the dataset's own mapping.
        required: canonical names that must be present. An entry may be a tuple of
            alternatives, each a name or a tuple of names that must all be present, e.g.
            ``("N", "D", ("L_T", ("N_T", "D_T")), "loss")``.

    Returns:
        A new DataFrame holding only the canonical columns found (numeric ones as float64,
        ``family`` as str) with a fresh RangeIndex. If ``D`` is absent but ``C`` (training
        FLOPs) and ``N`` are present, ``D`` is derived as ``C / (6 N)``.
        ``attrs["source"]`` is the file path, dataset name or ``"DataFrame"``; ``attrs["rows"]``
        lists each row's original label (1-based data-row number for files, index label for
        DataFrames); for CSV/TSV files ``attrs["lines"]`` lists each row's line in the file
        (header = line 1). :func:`describe_row` formats these for messages.

    Raises:
        DataError: missing file or dataset, unreadable file, no data rows, missing column,
            non-numeric, NaN or infinite cell, a value <= 0 in a positive column (all numeric
            columns except ``step``, which must be >= 0), or a missing ``family`` label.

    Warns:
        DataWarning: exact duplicate rows, or a median D/N below 0.01 (units look off).

    >>> import pandas as pd
    >>> from slaws.data import load
    >>> raw = pd.DataFrame({"Model Size": [1e8, 1e9], "tokens": [2e9, 2e10], "Loss": [3.1, 2.6]})
    >>> df = load(raw, columns={"N": "Model Size", "D": "tokens"})  # 'Loss' matches 'loss'
    >>> list(df.columns), df["loss"].tolist()
    (['N', 'D', 'loss'], [3.1, 2.6])
    >>> load(raw.assign(tokens=[2e9, -1.0]), columns={"N": "Model Size", "D": "tokens"})
    Traceback (most recent call last):
    ...
    slaws.data.DataError: DataFrame: column 'D', row 1: -1 is not > 0
    """
    mapping: dict[str, str | None] = {}
    if isinstance(source, pd.DataFrame):
        raw, src = source, _frame_source(source)
    else:
        raw, src, dataset_columns = _read_source(source)
        mapping.update(dataset_columns)
    mapping.update(columns or {})
    alternatives = _parse_required(required)

    if len(raw) == 0:
        raise DataError(f"{src.label}: no data rows")

    picked = _resolve_columns(raw, mapping, src.label)
    _check_required(raw, picked, alternatives, src.label)

    out: dict[str, Any] = {}
    for name in CANONICAL_COLUMNS:
        if name in picked:
            out[name] = _clean_column(raw[picked[name]], name, src)
    if "D" not in out and "C" in out and "N" in out:
        out["D"] = out["C"] / (6.0 * out["N"])
    df = pd.DataFrame({name: out[name] for name in CANONICAL_COLUMNS if name in out})

    df.attrs["source"] = src.label
    df.attrs["rows"] = list(src.rows)
    if src.lines is not None:
        df.attrs["lines"] = list(src.lines)
    _warn_suspicious(df, src)
    return df


def require_points(df: pd.DataFrame, n_params: int, *, what: str = "law") -> None:
    """Raise :class:`DataError` if ``df`` has fewer rows than ``n_params`` free parameters.

    ``what`` names the thing being fitted in the message, e.g. ``"law 'chinchilla'"``.

    >>> import pandas as pd
    >>> from slaws.data import require_points
    >>> df = pd.DataFrame({"N": [1e8, 1e9], "D": [2e9, 2e10], "loss": [3.1, 2.6]})
    >>> require_points(df, 2)  # enough: returns None
    >>> require_points(df, 5, what="law 'chinchilla'")
    Traceback (most recent call last):
    ...
    slaws.data.DataError: DataFrame: 2 rows but law 'chinchilla' has 5 free parameters; ...
    """
    if len(df) < n_params:
        label = df.attrs.get("source", "DataFrame")
        raise DataError(
            f"{label}: {len(df)} rows but {what} has {n_params} free parameters; "
            f"need at least {n_params}"
        )


def bucket(n: int) -> int:
    """The padded size for ``n`` rows: the least 2^k or 3 * 2^(k-1) that holds them, at least 16.

    Compiled programs are specialised to array shapes, so fits and posteriors pad their rows to
    these sizes (repeating the last row, with zero weight) and data of similar sizes share one
    compilation, in a process and through JAX's persistent cache. Padding adds at most half.

    >>> from slaws.data import bucket
    >>> [bucket(n) for n in (1, 16, 17, 25, 40, 72, 240, 690)]
    [16, 16, 24, 32, 48, 96, 256, 768]
    """
    size = 16
    while size < n:
        size = size * 3 // 2 if size & (size - 1) == 0 else size * 4 // 3
    return size


def padded(columns: Mapping[str, Any], n: int) -> tuple[dict, np.ndarray]:
    """``columns`` (arrays of ``n`` rows) padded to :func:`bucket` rows by repeating the last,
    and the mask of the real rows.

    >>> import numpy as np
    >>> from slaws.data import padded
    >>> columns, mask = padded({"N": np.array([1.0, 2.0, 3.0])}, 3)
    >>> columns["N"][:5].tolist(), int(mask.sum()), mask.shape
    ([1.0, 2.0, 3.0, 3.0, 3.0], 3, (16,))
    """
    rows = np.minimum(np.arange(bucket(n)), n - 1)
    return {k: np.asarray(v)[rows] for k, v in columns.items()}, np.arange(len(rows)) < n


# --- reading ---------------------------------------------------------------------------------


def _frame_source(frame: pd.DataFrame) -> _Source:
    attrs = frame.attrs
    rows = attrs.get("rows")
    # A frame that already came out of load() keeps its file row/line numbers, as long as it
    # has not been filtered or reordered since (then the index is still the fresh RangeIndex).
    if (
        isinstance(attrs.get("source"), str)
        and isinstance(rows, list)
        and len(rows) == len(frame)
        and frame.index.equals(pd.RangeIndex(len(frame)))
    ):
        lines = attrs.get("lines")
        if not (isinstance(lines, list) and len(lines) == len(rows)):
            lines = None
        return _Source(attrs["source"], rows, lines)
    return _Source("DataFrame", list(frame.index))


def _read_source(source: str | os.PathLike) -> tuple[pd.DataFrame, _Source, dict]:
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            f"source must be a path, a dataset name or a pandas DataFrame, "
            f"not {type(source).__name__}"
        )
    path = Path(source)
    if isinstance(source, str) and not path.exists():
        from . import datasets

        if source in datasets.names():
            ds = datasets.get(source)
            raw, src = _read_file(datasets.locate(source), label=source)
            return raw, src, dict(ds.columns)
        registered = ", ".join(datasets.names()) or "none"
        close = difflib.get_close_matches(source, datasets.names(), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise DataError(
            f"no such file or dataset {source!r} (registered datasets: {registered}){hint}"
        )
    return (*_read_file(path, label=os.fspath(source)), {})


def _read_file(path: Path, *, label: str) -> tuple[pd.DataFrame, _Source]:
    if not path.exists():
        raise DataError(f"{label}: no such file")
    if path.is_dir():
        raise DataError(f"{label}: is a directory, not a data file")
    suffix = path.suffix.lower()
    if suffix not in _SUFFIX_SEP:
        raise DataError(f"{label}: unsupported file type {suffix!r} (use .csv, .tsv or .parquet)")
    try:
        if suffix == ".parquet":
            raw = pd.read_parquet(path)
            raw = raw.reset_index(drop=True)
            lines = None
        else:
            raw = pd.read_csv(
                path,
                sep=_SUFFIX_SEP[suffix],
                encoding="utf-8-sig",  # Excel writes a BOM that would otherwise stick to 'N'
                skipinitialspace=True,
                index_col=False,  # trailing delimiters must not turn column 1 into the index
                # Blank lines stay as all-NaN rows so positions map to file lines; dropped below.
                skip_blank_lines=False,
            )
            blank = raw.isna().all(axis=1).to_numpy()
            lines = [int(i) + 2 for i in np.flatnonzero(~blank)]
            raw = raw.loc[~blank].reset_index(drop=True)
    except pd.errors.EmptyDataError:
        raise DataError(f"{label}: file is empty") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{label}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except Exception as exc:  # pandas/pyarrow parser errors have many types
        raise DataError(f"{label}: cannot read {suffix[1:]} file: {_one_line(exc)}") from None
    if len(raw.columns) == 0:
        raise DataError(f"{label}: file is empty")
    if len(raw) == 0:
        raise DataError(f"{label}: no data rows (only a header)")
    rows = list(range(1, len(raw) + 1))
    return raw, _Source(label, rows, lines)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if text else type(exc).__name__


# --- columns ---------------------------------------------------------------------------------


def _parse_required(required: Iterable[str | tuple]) -> list[list[tuple[str, ...]]]:
    """Normalise ``required`` to a list of entries, each a list of alternatives (name tuples)."""
    if isinstance(required, str):
        required = (required,)
    entries = []
    for entry in required:
        options = [entry] if isinstance(entry, str) else list(entry)
        alternatives = [(opt,) if isinstance(opt, str) else tuple(opt) for opt in options]
        for names in alternatives:
            for name in names:
                if name not in CANONICAL_COLUMNS:
                    raise ValueError(
                        f"required names unknown column {name!r}; "
                        f"canonical columns are {', '.join(CANONICAL_COLUMNS)}"
                    )
        if not alternatives or not all(alternatives):
            raise ValueError(f"empty entry in required: {entry!r}")
        entries.append(alternatives)
    return entries


def _resolve_columns(raw: pd.DataFrame, mapping: Mapping[str, str | None], label: str) -> dict:
    """Map each canonical name found to a source column label."""
    source_cols = list(raw.columns)
    for name in mapping:
        if name not in CANONICAL_COLUMNS:
            close = difflib.get_close_matches(str(name), CANONICAL_COLUMNS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise DataError(
                f"{label}: columns= maps unknown canonical name {name!r} "
                f"(canonical: {', '.join(CANONICAL_COLUMNS)}){hint}"
            )

    picked: dict[str, Any] = {}
    for name, col in mapping.items():
        if col is None:
            continue
        if col not in source_cols:
            close = _close_columns(str(col), source_cols)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise DataError(
                f"{label}: columns maps {name!r} to {col!r}, which is not a column "
                f"(columns are: {_list_columns(source_cols)}){hint}"
            )
        picked[name] = col

    # Columns claimed by an explicit mapping are not matched again by name, so that e.g.
    # columns={"N": "D"} does not also make the same column canonical 'D'.
    free = [c for c in source_cols if c not in set(picked.values())]
    for name in CANONICAL_COLUMNS:
        if name in mapping:
            continue
        if name in free:
            picked[name] = name
            continue
        folded = [c for c in free if str(c).strip().casefold() == name.casefold()]
        if len(folded) > 1:
            raise DataError(
                f"{label}: columns {', '.join(repr(c) for c in folded)} all match {name!r}; "
                f"pick one with columns={{{name!r}: {folded[0]!r}}}"
            )
        if folded:
            picked[name] = folded[0]

    for name, col in picked.items():
        if list(source_cols).count(col) > 1:
            raise DataError(f"{label}: column {col!r} (for {name!r}) appears more than once")
    return picked


def _check_required(
    raw: pd.DataFrame, picked: dict, entries: list[list[tuple[str, ...]]], label: str
) -> None:
    present = set(picked)
    if {"C", "N"} <= present:
        present.add("D")  # derived as C / (6 N)
    for alternatives in entries:
        if any(set(names) <= present for names in alternatives):
            continue
        raise DataError(_missing_message(raw, picked, alternatives, present, label))


def _missing_message(raw, picked, alternatives, present, label) -> str:
    def describe(names: tuple[str, ...]) -> str:
        if len(names) == 1:
            return repr(names[0])
        return "both " + " and ".join(repr(n) for n in names)

    what = " or ".join(describe(names) for names in alternatives)
    absent = [n for names in alternatives for n in names if n not in present]
    unused = [c for c in raw.columns if c not in set(picked.values())]
    msg = f"{label}: missing column {what} (columns are: {_list_columns(list(raw.columns))}"
    if len(raw.columns) == 1 and any(sep in str(raw.columns[0]) for sep in ",;\t"):
        msg += "; the header was read as one column: .csv must be comma- and .tsv tab-separated"
    if "D" in absent:
        msg += "; D can also be derived from 'C' (training FLOPs) and 'N'"
    for name in absent:
        close = _close_columns(name, unused)
        if close:
            pair = f"{name}={close[0]}"
            return (
                f"{msg}; did you mean {close[0]!r}? map it with "
                f"columns={{{name!r}: {close[0]!r}}} / --columns {shlex.quote(pair)})"
            )
    name = absent[0]
    return f"{msg}; map one with columns={{{name!r}: '<column>'}} / --columns {name}=<column>)"


def _close_columns(name: str, candidates: list) -> list:
    """Source columns that look like ``name``: near spellings, then known naming habits."""
    by_fold = {str(c).casefold(): c for c in candidates}
    close = difflib.get_close_matches(name.casefold(), list(by_fold), n=3, cutoff=0.6)
    found = [by_fold[c] for c in close]
    for hint in _HINTS.get(name, ()):
        found += [c for c in candidates if hint in str(c).casefold() and c not in found]
    return found


def _list_columns(cols: list) -> str:
    shown = ", ".join(str(c) for c in cols[:_MAX_LISTED_COLUMNS])
    if len(cols) > _MAX_LISTED_COLUMNS:
        shown += f", ... ({len(cols)} in all)"
    return shown


# --- values ----------------------------------------------------------------------------------


def _clean_column(col: pd.Series, name: str, src: _Source) -> np.ndarray:
    if name == "family":
        missing = col.isna().to_numpy()
        if missing.any():
            _fail(src, name, missing, "missing family label")
        return col.astype(str).to_numpy(dtype=object)

    if pd.api.types.is_bool_dtype(col):
        # True/False would silently become 1/0.
        numeric = pd.Series(np.nan, index=col.index)
    elif pd.api.types.is_numeric_dtype(col):
        numeric = col
    else:
        numeric = pd.to_numeric(col.astype(object), errors="coerce")
    not_number = (col.notna() & numeric.isna()).to_numpy()
    if not_number.any():
        bad = col.iloc[int(np.flatnonzero(not_number)[0])]
        _fail(src, name, not_number, f"{str(bad)!r} is not a number")
    values = numeric.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)

    missing = np.isnan(values)
    if missing.any():
        _fail(src, name, missing, "missing value (empty or NaN)")
    infinite = np.isinf(values)
    if infinite.any():
        _fail(src, name, infinite, f"{values[infinite][0]} is not finite")
    if name in POSITIVE_COLUMNS:
        bad = values <= 0
        if bad.any():
            _fail(src, name, bad, f"{_fmt(values[bad][0])} is not > 0")
    else:
        bad = values < 0
        if bad.any():
            _fail(src, name, bad, f"{_fmt(values[bad][0])} is negative")
    return values


def _fail(src: _Source, name: str, bad: np.ndarray, what: str) -> None:
    positions = np.flatnonzero(bad)
    more = f" (and {len(positions) - 1} more rows)" if len(positions) > 1 else ""
    raise DataError(f"{src.label}: column {name!r}, {src.row(int(positions[0]))}: {what}{more}")


def _fmt(value: float) -> str:
    return f"{value:g}"


# --- warnings --------------------------------------------------------------------------------


def _warn_suspicious(df: pd.DataFrame, src: _Source) -> None:
    dup = df.duplicated(keep="first").to_numpy()
    if dup.any():
        first = int(np.flatnonzero(dup)[0])
        row = df.iloc[first]
        same = int(np.flatnonzero((df == row).all(axis=1).to_numpy())[0])
        warnings.warn(
            f"{src.label}: {int(dup.sum())} exact duplicate row(s); first: {src.row(first)} "
            f"repeats {src.row(same)}",
            DataWarning,
            stacklevel=3,
        )
    if "D" in df and "N" in df:
        ratio = float(np.median(df["D"].to_numpy() / df["N"].to_numpy()))
        if ratio < 0.01:
            warnings.warn(
                f"{src.label}: median D/N is {ratio:.3g}, so D (median {_fmt(df['D'].median())}) "
                f"looks too small next to N (median {_fmt(df['N'].median())}); are tokens "
                "given in billions while N is a raw count, or are D and N swapped?",
                DataWarning,
                stacklevel=3,
            )
