"""Read the competition's data layout and write / check submissions (see ``docs/competition.md``).

Layout: ``train.csv`` (id, fs, sig_len), ``train/<id>/<id>.csv`` (columns I..V6 in mV, NaN where not printed),
``test.csv`` (id, lead, fs, number_of_rows). A submission (``.csv`` or ``.parquet``) has columns id, value with
id = ``<image id>_<sample index>_<lead>``, exactly ``number_of_rows`` ids per test row, every value finite.

Conventions: image ids are strings everywhere (``read_*`` read them as str; prediction mappings may use int or
str keys, they are matched through ``str(key)``). Submissions are written in test.csv's row order, samples
0..n-1 within a row; :func:`validate_submission` does not require that order (the metric matches rows by id),
so a reordered but otherwise complete submission is valid.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from common.layouts import LEADS
from common.metric import parse_ids

_SHOW = 5
_SUFFIXES = (".csv", ".parquet")


def _read_csv_checked(path: Path, columns: tuple[str, ...], dtypes: Mapping[str, type]) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    df = pd.read_csv(path, dtype={"id": str, "lead": str})
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{path} lacks columns {missing} (has {list(df.columns)})")
    df = df[list(columns)].copy()
    for col, typ in dtypes.items():
        if df[col].isna().any():
            raise ValueError(f"{path}: column {col!r} has empty values")
        df[col] = df[col].astype(typ)
    return df


def read_train_csv(data_dir: str | Path) -> pd.DataFrame:
    """``<data_dir>/train.csv`` as columns id (str), fs (int), sig_len (int)."""
    return _read_csv_checked(Path(data_dir) / "train.csv", ("id", "fs", "sig_len"),
                             {"id": str, "fs": np.int64, "sig_len": np.int64})


def read_test_csv(data_dir: str | Path) -> pd.DataFrame:
    """``<data_dir>/test.csv`` as columns id (str), lead (str), fs (int), number_of_rows (int)."""
    df = _read_csv_checked(Path(data_dir) / "test.csv", ("id", "lead", "fs", "number_of_rows"),
                           {"id": str, "lead": str, "fs": np.int64, "number_of_rows": np.int64})
    _check_rows(df)
    return df


def read_record_signals(data_dir: str | Path, record_id) -> pd.DataFrame:
    """``<data_dir>/train/<id>/<id>.csv``: float64 columns in :data:`LEADS` order (mV, NaN where not printed)."""
    rid = str(record_id)
    path = Path(data_dir) / "train" / rid / f"{rid}.csv"
    if not path.is_file():
        raise FileNotFoundError(f"no signal file for record {rid}: {path}")
    df = pd.read_csv(path, float_precision="round_trip")
    missing = [lead for lead in LEADS if lead not in df.columns]
    if missing:
        raise ValueError(f"{path} lacks lead columns {missing} (has {list(df.columns)})")
    return df[list(LEADS)].astype(np.float64)


def _check_rows(rows: pd.DataFrame) -> None:
    """test.csv-style rows: required columns, positive integer lengths, unique (id, lead), safe names."""
    missing = [c for c in ("id", "lead", "number_of_rows") if c not in rows.columns]
    if missing:
        raise ValueError(f"test rows lack columns {missing} (have {list(rows.columns)})")
    n = rows["number_of_rows"].to_numpy()
    if not (np.issubdtype(n.dtype, np.integer) and (n > 0).all()):
        raise ValueError("number_of_rows must be positive integers")
    ids, leads = rows["id"].astype(str), rows["lead"].astype(str)
    dup = pd.DataFrame({"id": ids, "lead": leads}).duplicated()
    if dup.any():
        raise ValueError(f"test rows repeat (id, lead) pairs: {list(zip(ids[dup], leads[dup], strict=True))[:_SHOW]}")
    if leads.str.contains("_").any() or (leads == "").any():
        raise ValueError("lead names must be non-empty and must not contain '_'")
    unsafe = ids.str.contains(r'[,"\r\n]') | (ids == "")
    if unsafe.any():
        raise ValueError(f"image ids must be non-empty without commas, quotes or newlines: {ids[unsafe].tolist()[:3]}")


def expected_ids(rows: pd.DataFrame) -> pa.Array:
    """Submission ids for test.csv-style rows, in row order: ``<id>_<k>_<lead>`` for k in 0..number_of_rows-1."""
    _check_rows(rows)
    n = rows["number_of_rows"].to_numpy(dtype=np.int64)
    total = int(n.sum())
    row_of = np.repeat(np.arange(n.size), n)
    starts = np.concatenate([[0], np.cumsum(n)[:-1]])
    k = np.arange(total, dtype=np.int64) - np.repeat(starts, n)
    take = pa.array(row_of)
    img = pa.array(rows["id"].astype(str).to_numpy(), type=pa.large_string()).take(take)
    lead = pa.array(rows["lead"].astype(str).to_numpy(), type=pa.large_string()).take(take)
    sep = pa.scalar("_", pa.large_string())
    return pc.binary_join_element_wise(img, pc.cast(pa.array(k), pa.large_string()), lead, sep)


def _columns(signals) -> Mapping[str, np.ndarray]:
    return signals if not isinstance(signals, pd.DataFrame) else {c: signals[c].to_numpy() for c in signals.columns}


def rows_from_signals(signals: Mapping[str, pd.DataFrame | Mapping[str, np.ndarray]],
                      fs: Mapping[str, float] | float) -> pd.DataFrame:
    """test.csv-style rows (id, lead, fs, number_of_rows) for records: one row per lead, its printed samples."""
    rates = {str(k): v for k, v in fs.items()} if isinstance(fs, Mapping) else None
    out = []
    for rid, sig in signals.items():
        cols = _columns(sig)
        rate = rates[str(rid)] if rates is not None else fs
        for lead in [ld for ld in LEADS if ld in cols] + [ld for ld in cols if ld not in LEADS]:
            count = int(np.isfinite(np.asarray(cols[lead], dtype=np.float64)).sum())
            if count:
                out.append((str(rid), lead, int(rate), count))
    return pd.DataFrame(out, columns=["id", "lead", "fs", "number_of_rows"])


def solution_from_signals(signals: Mapping[str, pd.DataFrame | Mapping[str, np.ndarray]],
                          rows: pd.DataFrame) -> pd.DataFrame:
    """Metric solution (id, value, fs) for test.csv-style ``rows`` from full-length record signals.

    ``signals`` maps image id -> a frame (or mapping) of lead columns with NaN where not printed, as from
    :func:`read_record_signals`. A row's values are its lead's non-NaN samples in order; their count must equal
    the row's ``number_of_rows``. ``rows`` needs an ``fs`` column.
    """
    if "fs" not in rows.columns:
        raise ValueError("rows need an fs column to build a solution")
    lookup = {str(k): v for k, v in signals.items()}
    values, fss = [], []
    for rid, lead, fs, n in zip(rows["id"].astype(str), rows["lead"].astype(str), rows["fs"], rows["number_of_rows"],
                                strict=True):
        if rid not in lookup:
            raise ValueError(f"no signals for image {rid}")
        cols = _columns(lookup[rid])
        if lead not in cols:
            raise ValueError(f"signals of image {rid} lack lead {lead}")
        col = np.asarray(cols[lead], dtype=np.float64)
        printed = col[~np.isnan(col)]
        if printed.size != n or not np.isfinite(printed).all():
            raise ValueError(f"image {rid} lead {lead}: {printed.size} printed (non-NaN) samples, expected {n}"
                             if printed.size != n else f"image {rid} lead {lead}: infinite label values")
        values.append(printed)
        fss.append(np.full(printed.size, fs))
    ids = expected_ids(rows)
    return pd.DataFrame({
        "id": ids.to_numpy(zero_copy_only=False),
        "value": np.concatenate(values) if values else np.empty(0),
        "fs": np.concatenate(fss) if fss else np.empty(0, dtype=np.int64),
    })


def _prediction_values(predictions: Mapping, rows: pd.DataFrame) -> np.ndarray:
    lookup = {str(k): v for k, v in predictions.items()}
    out = []
    for rid, lead, n in zip(rows["id"].astype(str), rows["lead"].astype(str), rows["number_of_rows"], strict=True):
        leads = lookup.get(rid)
        if leads is None:
            raise ValueError(f"no prediction for image {rid}")
        if lead not in leads:
            raise ValueError(f"prediction for image {rid} lacks lead {lead}")
        arr = np.asarray(leads[lead], dtype=np.float64)
        if arr.ndim != 1 or arr.size != n:
            raise ValueError(f"prediction for image {rid} lead {lead}: expected a 1-D array of {n} samples, "
                             f"got shape {arr.shape}")
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise ValueError(f"prediction for image {rid} lead {lead}: {bad.size} non-finite values "
                             f"(first at samples {bad[:_SHOW].tolist()})")
        out.append(arr)
    return np.concatenate(out) if out else np.empty(0)


def _submission_table(predictions: Mapping, rows: pd.DataFrame) -> pa.Table:
    values = _prediction_values(predictions, rows)
    ids = expected_ids(rows)
    return pa.table({"id": ids.cast(pa.string()), "value": pa.array(values, type=pa.float64())})


def submission_frame(predictions: Mapping, test_df: pd.DataFrame) -> pd.DataFrame:
    """The submission (id, value) as a DataFrame, in test.csv's row order; same checks as :func:`write_submission`."""
    table = _submission_table(predictions, test_df)
    return pd.DataFrame({"id": table["id"].to_numpy(), "value": table["value"].to_numpy()})


def write_submission(predictions: Mapping, test_df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``predictions`` (image id -> lead -> 1-D array of number_of_rows mV values) as .csv or .parquet.

    Rows follow test.csv's row order, samples 0..n-1 within a row. A missing, wrong-length or non-finite
    prediction raises ValueError naming the image and lead. Returns the path written.
    """
    path = Path(path)
    if path.suffix not in _SUFFIXES:
        raise ValueError(f"submission path must end in .csv or .parquet, got {path}")
    table = _submission_table(predictions, test_df)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    else:
        with pa.OSFile(str(path), "wb") as sink:
            sink.write(b"id,value\n")
            # floats are written with the shortest representation that round-trips; ids need no quoting
            pa_csv.write_csv(table, sink, pa_csv.WriteOptions(include_header=False, quoting_style="none"))
    return path


def _read_table(path: Path) -> pa.Table:
    if path.suffix == ".parquet":
        return pq.read_table(path)
    if path.suffix == ".csv":
        return pa_csv.read_csv(path, convert_options=pa_csv.ConvertOptions(column_types={"id": pa.large_string()}))
    raise ValueError(f"submission path must end in .csv or .parquet, got {path}")


def read_submission(path: str | Path) -> pd.DataFrame:
    """Read a submission .csv or .parquet; ids as str, values as read (float; NaN where empty)."""
    return _read_table(Path(path)).to_pandas()


def _columns_of(submission) -> tuple[list[str], pa.Array, np.ndarray, np.ndarray]:
    """(column names, id array with nulls, values as float64, mask of values that are not numbers)."""
    if isinstance(submission, pd.DataFrame):
        cols = [str(c) for c in submission.columns]
        raw_ids, raw_values = submission["id"], submission["value"]
        try:
            ids = pa.array(raw_ids.to_numpy(), type=pa.large_string(), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            ids = pa.array(raw_ids.astype(str).where(raw_ids.notna(), None).to_numpy(), type=pa.large_string())
        if pd.api.types.is_float_dtype(raw_values) or pd.api.types.is_integer_dtype(raw_values):
            return cols, ids, raw_values.to_numpy(dtype=np.float64, na_value=np.nan), np.zeros(len(ids), bool)
    else:
        table = _read_table(Path(submission))
        cols = list(table.column_names)
        if "id" not in cols or "value" not in cols:
            return cols, pa.array([], pa.large_string()), np.empty(0), np.empty(0, bool)
        ids = table["id"].combine_chunks().cast(pa.large_string())
        col = table["value"].combine_chunks()
        if pa.types.is_floating(col.type) or pa.types.is_integer(col.type):
            values = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
            return cols, ids, values, np.zeros(len(ids), bool)
        raw_values = col.to_pandas()
    num = pd.to_numeric(raw_values, errors="coerce")
    non_numeric = (num.isna() & raw_values.notna()).to_numpy()
    return cols, ids, num.to_numpy(dtype=np.float64, na_value=np.nan), non_numeric


def validate_submission(submission: pd.DataFrame | str | Path, test_df: pd.DataFrame) -> list[str]:
    """Precise problems of a submission against test.csv-style rows; an empty list when it is valid.

    Checked: columns exactly id, value; no empty ids; no duplicated ids; every expected id present (with a
    per-(image, lead) count of missing rows, which is how a wrong-length prediction shows) and no other ids;
    values numeric and finite. Row order is not checked: the metric matches rows by id, so a reordered but
    complete submission is valid.
    """
    if isinstance(submission, pd.DataFrame) and not {"id", "value"} <= set(submission.columns):
        return [f"submission must have columns id, value; has {list(submission.columns)}"]
    try:
        cols, ids, values, non_numeric = _columns_of(submission)
    except (OSError, ValueError, pa.ArrowInvalid) as exc:
        return [f"cannot read submission {submission}: {exc}"]
    if "id" not in cols or "value" not in cols:
        return [f"submission must have columns id, value; has {cols}"]
    problems: list[str] = []
    if cols != ["id", "value"]:
        problems.append(f"submission must have exactly the columns id, value; has {cols}")
    if ids.null_count:
        null_rows = np.flatnonzero(_np_bool(ids.is_null()))
        problems.append(f"{null_rows.size} rows have an empty id (rows {null_rows[:_SHOW].tolist()})")
    want = expected_ids(test_df)
    if not (ids.null_count == 0 and len(ids) == len(want) and pc.all(pc.equal(ids, want)).as_py()):
        problems.extend(_id_problems(ids.filter(pc.invert(ids.is_null())), want, test_df))
    if non_numeric.any():
        problems.append(f"{int(non_numeric.sum())} values are not numbers (ids {_take(ids, non_numeric)})")
    bad = ~np.isfinite(values) & ~non_numeric
    if bad.any():
        problems.append(f"{int(bad.sum())} values are not finite (ids {_take(ids, bad)})")
    return problems


def _np_bool(arr) -> np.ndarray:
    return arr.to_numpy(zero_copy_only=False)


def _id_problems(ids: pa.Array, want: pa.Array, rows: pd.DataFrame) -> list[str]:
    """Missing, unexpected and duplicated ids, found by parsing ids onto positions (no string hashing)."""
    n = rows["number_of_rows"].to_numpy(dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(n)[:-1]])
    parsed = parse_ids(ids, "submission", strict=False)
    img_index = {name: i for i, name in enumerate(parsed.image_names)}
    lead_index = {name: i for i, name in enumerate(parsed.lead_names)}
    table = np.full((len(parsed.image_names) + 1, len(parsed.lead_names) + 1), -1, dtype=np.int64)
    for r, (rid, lead) in enumerate(zip(rows["id"].astype(str), rows["lead"].astype(str), strict=True)):
        if rid in img_index and lead in lead_index:
            table[img_index[rid], lead_index[lead]] = r
    row = table[parsed.image_code, parsed.lead_code]  # code -1 (malformed) hits the extra last row/column
    k = parsed.sample
    canonical = np.searchsorted(10 ** np.arange(1, 19, dtype=np.int64), k, side="right") + 1
    written = parsed.sample_digits if parsed.sample_digits is not None else canonical
    known = (row >= 0) & (k >= 0) & (k < n[np.maximum(row, 0)]) & (written == canonical)
    pos = starts[np.maximum(row, 0)] + np.where(known, k, 0)
    count = np.bincount(pos[known], minlength=len(want))
    problems = []
    if (count == 0).any():
        problems.append(_missing_summary(want, count > 0, rows))
    if not known.all():
        extra = ids.filter(pa.array(~known)).to_pylist()
        problems.append(f"{len(extra)} ids not expected by test.csv (first: {extra[:_SHOW]})" + _extra_summary(extra))
    if (count > 1).any():
        problems.append(f"{int((count[count > 1] - 1).sum())} duplicated id rows "
                        f"(ids repeated: {_take(want, count > 1)})")
    return problems


def _take(ids: pa.Array, mask: np.ndarray) -> list[str]:
    return ids.take(pa.array(np.flatnonzero(mask)[:_SHOW])).to_pylist()


def _missing_summary(want: pa.Array, present: np.ndarray, rows: pd.DataFrame) -> str:
    n = rows["number_of_rows"].to_numpy(dtype=np.int64)
    row_of = np.repeat(np.arange(n.size), n)
    missing_per_row = np.bincount(row_of[~present], minlength=n.size)
    hit = np.flatnonzero(missing_per_row)
    ids, leads = rows["id"].astype(str).to_numpy(), rows["lead"].astype(str).to_numpy()
    per = "; ".join(f"image {ids[r]} lead {leads[r]}: {missing_per_row[r]} of {n[r]} rows missing"
                    for r in hit[:_SHOW])
    more = f"; ... {hit.size - _SHOW} more series" if hit.size > _SHOW else ""
    return f"{int((~present).sum())} expected ids missing (first: {_take(want, ~present)}); {per}{more}"


def _extra_summary(extra: list[str]) -> str:
    try:
        parts = parse_ids(pa.array(extra, type=pa.large_string()), "extra ids")
    except ValueError:
        return ""  # malformed ids: the list of examples already says enough
    counts: dict[tuple[str, str], int] = {}
    for i, li in zip(parts.image_code, parts.lead_code, strict=True):
        key = (parts.image_names[i], parts.lead_names[li])
        counts[key] = counts.get(key, 0) + 1
    per = "; ".join(f"image {img} lead {lead}: {c} extra" for (img, lead), c in list(counts.items())[:_SHOW])
    return f"; {per}"


def assert_valid_submission(submission: pd.DataFrame | str | Path, test_df: pd.DataFrame) -> None:
    """Raise ValueError listing every problem :func:`validate_submission` finds."""
    problems = validate_submission(submission, test_df)
    if problems:
        raise ValueError("invalid submission:\n- " + "\n- ".join(problems))
