"""The competition metric (modified SNR), exactly as ``docs/competition.md`` specifies it.

For one lead with label ``y`` and prediction ``p`` of equal length ``n`` sampled at ``fs``:

1. Centre both (each minus its own mean) and cross-correlate them. **Lag convention**: lag ``k`` means the
   prediction is shifted *right* by ``k`` samples, ``p_shifted[i] = p[i - k]``; its correlation is
   ``c(k) = sum_i yc[i] * pc[i - k]`` over the positions where ``0 <= i - k < n``. So a prediction that runs
   *ahead* of the label (``p[i] = y[i + 3]``) is aligned by ``k = +3``, one that runs late by ``k = -3``.
   Only lags ``|k| <= int(0.2 * fs)`` are considered. The lag with the largest raw correlation wins; among
   equal maxima the smallest ``|k|`` wins, and if ``+k`` and ``-k`` still tie, the **negative** lag
   (prediction shifted left) wins. Equality is judged with a relative tolerance of :data:`TIE_RTOL` times
   ``||y|| * ||p||`` (uncentred norms), because FFT correlation is only exact to rounding; this makes a
   constant prediction (whose centred values are rounding noise) keep lag 0, as exact arithmetic would.
2. Shift ``p`` by that lag; the positions it no longer covers are NaN.
3. ``offset = mean(p_shifted - y)`` over the positions where both are finite (0 if there are none), and the
   aligned prediction is ``p_shifted - offset``. :func:`lead_powers` reports this ``offset`` (the value
   subtracted from the shifted prediction; for an all-zero prediction it is ``-mean(y)``).
4. The NaN (uncovered) positions of the aligned prediction count as 0.
5. Signal power ``sum(y**2)`` (``y`` as given, not centred); noise power ``sum((y - aligned)**2)``.

Per image, signal and noise are summed over its leads; linear SNR = signal / noise capped at
:data:`MAX_SNR` (noise 0 gives :data:`MAX_SNR`). The score is ``10 * log10(mean over images of linear SNR)``.

Two APIs share one vectorised core (FFT correlation of whole batches of equal-length leads):

* arrays: :func:`lead_powers`, :func:`lead_residuals`, :func:`image_snr`, :func:`snr_db_from_linear`;
* Kaggle frames: :func:`score`, :func:`per_image_snr`, :func:`per_lead_breakdown`, where ``solution`` has
  columns ``id, value, fs`` and ``submission`` has ``id, value``; ``id`` is ``<image id>_<sample>_<lead>``,
  parsed from the right (image ids may contain ``_``; image ids are kept as strings). Submission rows are
  matched to solution rows by id, in any order. Missing, duplicated or extra submission ids, non-finite
  values on either side, and malformed solution series all raise :class:`ValueError` naming the first ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy import fft as sfft

from common.layouts import LEADS

MAX_SNR = 384.0
MAX_LAG_S = 0.2
TIE_RTOL = 1e-9
_CHUNK_ELEMENTS = 1 << 22  # rows * fft length per FFT batch (bounds memory at ~100 MB)
_SHOW = 5  # how many offending ids an error message names


def max_lag_samples(fs: float) -> int:
    """Largest lag the metric searches, ``int(0.2 * fs)`` samples."""
    return int(MAX_LAG_S * float(fs))


def _lag_priority(max_lag: int) -> np.ndarray:
    """Lags in tie-break order: 0, -1, +1, -2, +2, ... (smallest |lag| first, negative before positive)."""
    k = np.arange(1, max_lag + 1)
    out = np.empty(2 * max_lag + 1, dtype=np.int64)
    out[0] = 0
    out[1::2] = -k
    out[2::2] = k
    return out


def _align_chunk(ys: np.ndarray, ps: np.ndarray, signal: np.ndarray, max_lag: int,
                 nfft: int) -> tuple[np.ndarray, ...]:
    """Steps 1-4 for a chunk of leads (k, n): lag, offset, the residual ``y - aligned`` (``y`` where the
    shifted prediction does not reach) and the mask of positions it covers."""
    n = ys.shape[1]
    order = _lag_priority(max_lag)
    yc = ys - ys.mean(axis=1, keepdims=True)
    pcen = ps - ps.mean(axis=1, keepdims=True)
    spec = sfft.rfft(yc, nfft, axis=1)
    spec *= np.conj(sfft.rfft(pcen, nfft, axis=1))
    corr = sfft.irfft(spec, nfft, axis=1)[:, order % nfft]  # corr[:, j] = c(order[j])
    tol = TIE_RTOL * np.sqrt(signal * np.einsum("ij,ij->i", ps, ps))
    best = corr.max(axis=1)
    lag = order[np.argmax(corr >= (best - tol)[:, None], axis=1)]
    src = np.arange(n)[None, :] - lag[:, None]
    valid = (src >= 0) & (src < n)
    shifted = np.take_along_axis(ps, np.clip(src, 0, n - 1), axis=1)
    diff = np.where(valid, shifted - ys, 0.0)
    count = valid.sum(axis=1)
    off = np.where(count > 0, diff.sum(axis=1) / np.maximum(count, 1), 0.0)
    resid = np.where(valid, diff - off[:, None], ys)
    return lag, off, resid, valid


def _fft_len(n: int, max_lag: int) -> int:
    return sfft.next_fast_len(max(n + max_lag, 2 * max_lag + 1), real=True)


def _align_batch(y: np.ndarray, p: np.ndarray, max_lag: int) -> tuple[np.ndarray, ...]:
    """Metric of ``m`` leads at once: ``y``, ``p`` are (m, n) float64. Returns signal, noise, lag, offset (m,)."""
    m, n = y.shape
    signal = np.einsum("ij,ij->i", y, y)
    noise = np.empty(m)
    lags = np.empty(m, dtype=np.int64)
    offsets = np.empty(m)
    if m == 0:
        return signal, noise, lags, offsets
    nfft = _fft_len(n, max_lag)
    step = max(1, _CHUNK_ELEMENTS // nfft)
    for a in range(0, m, step):
        lag, off, resid, _ = _align_chunk(y[a : a + step], p[a : a + step], signal[a : a + step], max_lag, nfft)
        noise[a : a + step] = np.einsum("ij,ij->i", resid, resid)
        lags[a : a + step] = lag
        offsets[a : a + step] = off
    return signal, noise, lags, offsets


def _capped_snr(signal, noise) -> np.ndarray:
    signal = np.asarray(signal, dtype=np.float64)
    noise = np.asarray(noise, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = signal / noise
    return np.where(noise > 0, np.minimum(ratio, MAX_SNR), MAX_SNR)


def snr_db_from_linear(values) -> float:
    """Score in dB from per-image linear SNRs (already capped): ``10 * log10(mean(values))``."""
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ValueError("snr_db_from_linear needs at least one value")
    if not np.all(np.isfinite(arr)):
        raise ValueError("snr_db_from_linear got non-finite linear SNR values")
    return float(10.0 * np.log10(arr.mean()))


def _as_series(name: str, values, lead: str | None = None) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    where = f" for lead {lead}" if lead is not None else ""
    if arr.ndim != 1:
        raise ValueError(f"{name}{where} must be 1-D, got shape {arr.shape}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(f"{name}{where} has {bad.size} non-finite values (first at samples {bad[:_SHOW].tolist()})")
    return arr


def lead_powers(y: np.ndarray, p: np.ndarray, fs: float) -> tuple[float, float, int, float]:
    """Metric of one lead: ``(signal power, noise power, lag, offset)`` (see the module docstring)."""
    y = _as_series("label", y)
    p = _as_series("prediction", p)
    if y.shape != p.shape:
        raise ValueError(f"label and prediction lengths differ: {y.size} vs {p.size}")
    s, nz, lag, off = _align_batch(y[None], p[None], max_lag_samples(fs))
    return float(s[0]), float(nz[0]), int(lag[0]), float(off[0])


def lead_residuals(y: np.ndarray, p: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Where one lead's noise power lies: ``(residual, covered, lag)`` with ``residual = y - aligned``
    per sample (``sum(residual**2)`` is :func:`lead_powers`' noise) and ``covered`` False at the samples the
    lag leaves without a prediction (they cost ``y**2``: a timing error of a few samples pays there)."""
    y = _as_series("label", y)
    p = _as_series("prediction", p)
    if y.shape != p.shape:
        raise ValueError(f"label and prediction lengths differ: {y.size} vs {p.size}")
    max_lag = max_lag_samples(fs)
    lag, _, resid, valid = _align_chunk(y[None], p[None], np.array([y @ y]), max_lag, _fft_len(y.size, max_lag))
    return resid[0], valid[0], int(lag[0])


def image_snr(truth: Mapping[str, np.ndarray], pred: Mapping[str, np.ndarray], fs: float) -> float:
    """Linear SNR (capped at :data:`MAX_SNR`) of one image over the leads in ``truth``.

    ``pred`` must hold every lead of ``truth`` with the same length; its other leads are ignored.
    """
    if not truth:
        raise ValueError("image_snr needs at least one lead in truth")
    missing = [lead for lead in truth if lead not in pred]
    if missing:
        raise ValueError(f"prediction lacks leads {missing}")
    by_len: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for lead, yv in truth.items():
        y = _as_series("label", yv, lead)
        p = _as_series("prediction", pred[lead], lead)
        if y.shape != p.shape:
            raise ValueError(f"lead {lead}: label has {y.size} samples, prediction {p.size}")
        by_len.setdefault(y.size, []).append((y, p))
    max_lag = max_lag_samples(fs)
    signal = noise = 0.0
    for pairs in by_len.values():
        s, nz, _, _ = _align_batch(np.stack([a for a, _ in pairs]), np.stack([b for _, b in pairs]), max_lag)
        signal += float(s.sum())
        noise += float(nz.sum())
    return float(_capped_snr(signal, noise))


# ----------------------------------------------------------------------------------------------- Kaggle frames


def _arrow_strings(values, what: str) -> pa.Array:
    """ids as one arrow large_string array (no per-row Python work for object/str/arrow columns)."""
    if isinstance(values, pd.Series | pd.Index):
        values = values.array if hasattr(values.array, "__arrow_array__") else values.to_numpy()
    try:
        arr = pa.array(values, type=pa.large_string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
        raise ValueError(f"{what} ids must be strings like '62_0_I': {exc}") from None
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.null_count:
        first = np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[:_SHOW].tolist()
        raise ValueError(f"{what} has {arr.null_count} missing ids (rows {first})")
    return arr


def _first(ids: pa.Array, mask: np.ndarray, k: int = _SHOW) -> list[str]:
    idx = np.flatnonzero(mask)[:k]
    return ids.take(pa.array(idx)).to_pylist()


@dataclass(frozen=True)
class ParsedIds:
    """``<image>_<sample>_<lead>`` ids split from the right; image and lead dictionary-encoded.

    Codes follow first appearance. ``ok`` marks well-formed ids; codes and sample of malformed ones are -1.
    ``sample_digits`` is the number of digits written (tells "007" from "7"); None when every id is canonical
    (no leading zeros), see :func:`_sample_digits`.
    """

    image_code: np.ndarray  # (N,) int64 into image_names
    image_names: list[str]
    sample: np.ndarray  # (N,) int64
    sample_digits: np.ndarray | None  # (N,) int64
    lead_code: np.ndarray  # (N,) int64 into lead_names
    lead_names: list[str]
    ok: np.ndarray  # (N,) bool
    series_starts: np.ndarray | None = None  # set when ids are laid out series by series, samples 0..n-1


def _np(arr) -> np.ndarray:
    return arr.to_numpy(zero_copy_only=False)


def _sample_digits(parsed: ParsedIds) -> np.ndarray:
    if parsed.sample_digits is not None:
        return parsed.sample_digits
    return np.searchsorted(10 ** np.arange(1, 19, dtype=np.int64), parsed.sample, side="right") + 1


def _parse_general(ids: pa.Array, what: str, strict: bool) -> ParsedIds:
    n = len(ids)
    parts = pc.split_pattern(ids, pattern="_", max_splits=2, reverse=True)
    ok = _np(pc.list_value_length(parts)) == 3
    if not ok.all():
        parts = pc.split_pattern(ids.filter(pa.array(ok)), pattern="_", max_splits=2, reverse=True)
    image = pc.list_element(parts, 0)
    sample_txt = pc.list_element(parts, 1)
    lead = pc.list_element(parts, 2)
    del parts
    digits = _np(pc.binary_length(sample_txt))
    fine = _np(pc.ascii_is_decimal(sample_txt)) & (digits <= 18)
    fine &= (_np(pc.binary_length(image)) > 0) & (_np(pc.binary_length(lead)) > 0)
    if not fine.all():
        idx = np.flatnonzero(ok)
        ok[idx[~fine]] = False
        keep = pa.array(fine)
        image, sample_txt, lead, digits = image.filter(keep), sample_txt.filter(keep), lead.filter(keep), digits[fine]
    if strict and not ok.all():
        raise ValueError(f"{what} has {int((~ok).sum())} ids not of the form <image>_<sample>_<lead> "
                         f"(sample a non-negative integer): {_first(ids, ~ok)}")
    image_enc = pc.dictionary_encode(image)
    lead_enc = pc.dictionary_encode(lead)
    sample, sample_digits, image_code, lead_code = (np.full(n, -1, dtype=np.int64) for _ in range(4))
    sample[ok] = _np(pc.cast(sample_txt, pa.int64()))
    sample_digits[ok] = digits
    image_code[ok] = _np(image_enc.indices)
    lead_code[ok] = _np(lead_enc.indices)
    return ParsedIds(image_code=image_code, image_names=[str(s) for s in image_enc.dictionary.to_pylist()],
                     sample=sample, sample_digits=sample_digits, lead_code=lead_code,
                     lead_names=[str(s) for s in lead_enc.dictionary.to_pylist()], ok=ok)


def _parse_grouped(ids: pa.Array) -> ParsedIds | None:
    """Fast exact parse of ids laid out series by series, ``<img>_0_<lead>, <img>_1_<lead>, ...``; else None.

    Series starts are among the rows containing ``_0_``; only those are parsed, the ids the layout implies are
    rebuilt and must equal the given ones exactly.
    """
    n = len(ids)
    cand = np.flatnonzero(_np(pc.find_substring(ids, "_0_")) >= 0)
    if cand.size == 0 or cand[0] != 0:
        return None
    heads = _parse_general(ids.take(pa.array(cand)), "", strict=False)
    is_start = heads.ok & (heads.sample == 0) & (heads.sample_digits == 1)
    starts = cand[is_start]
    if starts.size == 0 or starts[0] != 0:
        return None
    lengths = np.diff(np.append(starts, n))
    image_code = np.repeat(heads.image_code[is_start], lengths)
    lead_code = np.repeat(heads.lead_code[is_start], lengths)
    sample = np.arange(n, dtype=np.int64) - np.repeat(starts, lengths)
    rows = pa.array(image_code)
    rebuilt = pc.binary_join_element_wise(
        pa.array(heads.image_names, type=pa.large_string()).take(rows),
        pc.cast(pa.array(sample), pa.large_string()),
        pa.array(heads.lead_names, type=pa.large_string()).take(pa.array(lead_code)),
        pa.scalar("_", pa.large_string()),
    )
    if not pc.all(pc.equal(rebuilt, ids)).as_py():
        return None
    return ParsedIds(image_code=image_code, image_names=heads.image_names, sample=sample, sample_digits=None,
                     lead_code=lead_code, lead_names=heads.lead_names, ok=np.ones(n, dtype=bool),
                     series_starts=starts)


def parse_ids(ids, what: str = "ids", strict: bool = True) -> ParsedIds:
    """Parse ids: the lead follows the last ``_``, the sample (1..18 digits) the one before, the image the rest.

    ``ids``: an arrow string array, a pandas Series or a sequence of str. With ``strict`` a malformed id
    raises ValueError naming it, otherwise it is flagged in ``ok``. Ids laid out series by series (the usual
    case) take a fast path that parses only the series heads and checks the rest by rebuilding them.
    """
    if not isinstance(ids, pa.Array) or ids.type != pa.large_string():
        ids = _arrow_strings(ids, what)
    parsed = _parse_grouped(ids) if len(ids) >= 4096 else None
    return parsed if parsed is not None else _parse_general(ids, what, strict)


def split_ids(ids) -> pd.DataFrame:
    """Split ``<image>_<sample>_<lead>`` ids (from the right) into columns image_id (str), sample (int), lead."""
    parsed = parse_ids(_arrow_strings(ids, "id column"), "id column")
    return pd.DataFrame({
        "image_id": np.asarray(parsed.image_names, dtype=object)[parsed.image_code],
        "sample": parsed.sample,
        "lead": np.asarray(parsed.lead_names, dtype=object)[parsed.lead_code],
    })


def _float_column(df: pd.DataFrame, col: str, what: str) -> np.ndarray:
    try:
        return pd.to_numeric(df[col], errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{what} column {col!r} is not numeric: {exc}") from None


@dataclass(frozen=True)
class _Prepared:
    """Solution and matched submission, one contiguous run of samples per (image, lead) series."""

    y: np.ndarray  # (N,) labels in series order
    p: np.ndarray  # (N,) predictions in the same order
    starts: np.ndarray  # (G,) first row of each series
    lengths: np.ndarray  # (G,)
    series_image: np.ndarray  # (G,) index into image_names
    series_lead: list[str]  # (G,)
    series_fs: np.ndarray  # (G,)
    image_names: list[str]
    image_fs: np.ndarray  # (I,)


def _runs(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    starts = np.concatenate([[0], np.flatnonzero(key[1:] != key[:-1]) + 1]).astype(np.int64)
    lengths = np.diff(np.concatenate([starts, [key.size]]))
    return starts, lengths


def _translate(names: list[str], target: list[str]) -> np.ndarray:
    """Index of each of ``names`` in ``target`` (-1 where absent), with one extra -1 slot for code -1."""
    where = {name: i for i, name in enumerate(target)}
    return np.array([where.get(name, -1) for name in names] + [-1], dtype=np.int64)


def _submission_values(submission: pd.DataFrame) -> tuple[pa.Array, np.ndarray]:
    for col in ("id", "value"):
        if col not in submission.columns:
            raise ValueError(f"submission lacks column {col!r} (columns: {list(submission.columns)})")
    return _arrow_strings(submission["id"], "submission"), _float_column(submission, "value", "submission")


def _place_submission(sub_ids: pa.Array, values: np.ndarray, sol_names, sol_digits: np.ndarray,
                      parsed: ParsedIds, pair_lookup: np.ndarray, starts: np.ndarray,
                      lengths: np.ndarray) -> np.ndarray:
    """Submission values at the (sorted) solution positions, matching ids by parsing, not string hashing.

    ``sol_digits`` is in series order, ``sol_names(mask)`` names the first solution rows (series order) in
    ``mask``; series ``g`` is rows ``starts[g] + k`` for sample ``k``.
    A submission id maps to a position through its (image, lead) series and sample, and must equal the
    solution id there.
    """
    sub = parse_ids(sub_ids, "submission", strict=False)
    img = _translate(sub.image_names, parsed.image_names)[sub.image_code]
    lead = _translate(sub.lead_names, parsed.lead_names)[sub.lead_code]
    n_leads = len(parsed.lead_names)
    series = np.where((img >= 0) & (lead >= 0), pair_lookup[np.maximum(img, 0) * n_leads + np.maximum(lead, 0)], -1)
    g = np.maximum(series, 0)
    known = (series >= 0) & (sub.sample >= 0) & (sub.sample < lengths[g])
    pos = np.where(known, starts[g] + sub.sample, 0)
    # "62_007_I" parses like "62_7_I" but is another id: equal value and digit count <=> equal text
    known &= _sample_digits(sub) == sol_digits[pos]
    count = np.bincount(pos[known], minlength=sol_digits.size)
    problems = []
    if (count == 0).any():
        problems.append(f"{int((count == 0).sum())} solution ids missing (first: {sol_names(count == 0)})")
    if not known.all():
        problems.append(f"{int((~known).sum())} ids not in the solution (first: {_first(sub_ids, ~known)})")
    if (count > 1).any():
        dup = sol_names(count > 1)
        problems.append(f"{int((count[count > 1] - 1).sum())} duplicated ids (first: {dup})")
    if problems:
        raise ValueError("submission ids do not match the solution: " + "; ".join(problems))
    p = np.empty(sol_digits.size)
    p[pos] = values
    return p


def _prepare(solution: pd.DataFrame, submission: pd.DataFrame) -> _Prepared:
    for col in ("id", "value", "fs"):
        if col not in solution.columns:
            raise ValueError(f"solution lacks column {col!r} (columns: {list(solution.columns)})")
    if len(solution) == 0:
        raise ValueError("solution is empty")
    sol_ids = _arrow_strings(solution["id"], "solution")
    y = _float_column(solution, "value", "solution")
    fs = _float_column(solution, "fs", "solution")
    bad = ~np.isfinite(y)
    if bad.any():
        raise ValueError(f"solution has {int(bad.sum())} non-finite values: {_first(sol_ids, bad)}")
    bad = ~(np.isfinite(fs) & (fs > 0))
    if bad.any():
        raise ValueError(f"solution has {int(bad.sum())} rows with an invalid fs: {_first(sol_ids, bad)}")
    parsed = parse_ids(sol_ids, "solution")
    sub_ids, sub_values = _submission_values(submission)
    same_ids = len(sub_ids) == len(sol_ids) and pc.all(pc.equal(sub_ids, sol_ids)).as_py()

    # series = runs of one (image, lead) with samples 0..n-1; sort only if the solution is not laid out so
    n_leads = len(parsed.lead_names)
    pair = parsed.image_code * n_leads + parsed.lead_code
    if parsed.series_starts is not None:
        starts = parsed.series_starts
        lengths = np.diff(np.append(starts, pair.size))
        in_runs = True
    else:
        starts, lengths = _runs(pair)
        in_runs = np.array_equal(parsed.sample, np.arange(pair.size) - np.repeat(starts, lengths))
    order = None
    if not (in_runs and np.unique(pair[starts]).size == starts.size):
        order = np.lexsort((parsed.sample, pair))
        pair, y, fs = pair[order], y[order], fs[order]
        starts, lengths = _runs(pair)
        bad = parsed.sample[order] != np.arange(pair.size) - np.repeat(starts, lengths)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise ValueError(f"solution series must hold sample indices 0..n-1 exactly once; offending id "
                             f"{sol_ids[int(order[first])].as_py()!r}")
        if same_ids:
            sub_values = sub_values[order]

    def sol_names(mask: np.ndarray) -> list[str]:  # ids of the first rows (series order) in mask
        idx = np.flatnonzero(mask)[:_SHOW]
        return sol_ids.take(pa.array(idx if order is None else order[idx])).to_pylist()

    if same_ids:
        p = sub_values
    else:
        pair_lookup = np.full(len(parsed.image_names) * n_leads, -1, dtype=np.int64)
        pair_lookup[pair[starts]] = np.arange(starts.size)
        sol_digits = _sample_digits(parsed) if order is None else _sample_digits(parsed)[order]
        p = _place_submission(sub_ids, sub_values, sol_names, sol_digits, parsed, pair_lookup, starts, lengths)
    bad = ~np.isfinite(p)
    if bad.any():
        raise ValueError(f"submission has {int(bad.sum())} non-finite predictions: {sol_names(bad)}")

    series_fs = fs[starts]
    if not (np.array_equal(np.minimum.reduceat(fs, starts), series_fs)
            and np.array_equal(np.maximum.reduceat(fs, starts), series_fs)):
        raise ValueError("solution fs varies within one (image, lead) series")
    image = pair[starts] // n_leads
    lead_code = pair[starts] % n_leads
    rank = {name: LEADS.index(name) if name in LEADS else len(LEADS) + i for i, name in enumerate(parsed.lead_names)}
    lead_rank = np.array([rank[name] for name in parsed.lead_names], dtype=np.int64)[lead_code]
    g = np.lexsort((lead_rank, image))  # output order: image first appearance, then LEADS order
    image_fs = np.full(len(parsed.image_names), np.nan)
    image_fs[image[g][::-1]] = series_fs[g][::-1]  # fs of each image's first series
    if not np.array_equal(image_fs[image], series_fs):
        bad_img = parsed.image_names[int(image[np.flatnonzero(image_fs[image] != series_fs)[0]])]
        raise ValueError(f"solution fs varies between the leads of image {bad_img!r}")
    return _Prepared(
        y=y, p=p, starts=starts[g], lengths=lengths[g], series_image=image[g],
        series_lead=[parsed.lead_names[int(c)] for c in lead_code[g]], series_fs=series_fs[g],
        image_names=parsed.image_names, image_fs=image_fs,
    )


def _evaluate(prep: _Prepared) -> tuple[np.ndarray, ...]:
    """signal, noise, lag, offset per series (in prep's series order)."""
    g_count = prep.starts.size
    signal, noise = np.empty(g_count), np.empty(g_count)
    lag, offset = np.empty(g_count, dtype=np.int64), np.empty(g_count)
    max_lag = np.array([max_lag_samples(f) for f in prep.series_fs], dtype=np.int64)
    keys = np.stack([prep.lengths, max_lag], axis=1)
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    for j, (n, lmax) in enumerate(uniq):
        members = np.flatnonzero(inverse == j)
        step = max(1, _CHUNK_ELEMENTS // int(n))
        for a in range(0, members.size, step):
            sel = members[a : a + step]
            idx = prep.starts[sel, None] + np.arange(n)[None, :]
            s, nz, lg, off = _align_batch(prep.y[idx], prep.p[idx], int(lmax))
            signal[sel], noise[sel], lag[sel], offset[sel] = s, nz, lg, off
    return signal, noise, lag, offset


def per_lead_breakdown(solution: pd.DataFrame, submission: pd.DataFrame) -> pd.DataFrame:
    """One row per (image, lead): image_id, lead, fs, n_samples, lag, offset, signal, noise, snr_db.

    ``snr_db`` is the lead's own ``10 log10(min(signal / noise, MAX_SNR))`` (for debugging only; the score
    sums powers over the leads of an image before dividing).
    """
    prep = _prepare(solution, submission)
    signal, noise, lag, offset = _evaluate(prep)
    return pd.DataFrame({
        "image_id": np.asarray(prep.image_names, dtype=object)[prep.series_image],
        "lead": prep.series_lead,
        "fs": prep.series_fs,
        "n_samples": prep.lengths,
        "lag": lag,
        "offset": offset,
        "signal": signal,
        "noise": noise,
        "snr_db": 10.0 * np.log10(_capped_snr(signal, noise)),
    })


def per_image_snr(solution: pd.DataFrame, submission: pd.DataFrame) -> pd.DataFrame:
    """One row per image (first-appearance order): image_id, fs, n_leads, signal, noise, snr, snr_db.

    ``snr`` is linear and capped at :data:`MAX_SNR`; ``snr_db`` is its ``10 log10``.
    """
    prep = _prepare(solution, submission)
    signal, noise, _, _ = _evaluate(prep)
    n_img = len(prep.image_names)
    img_signal = np.bincount(prep.series_image, weights=signal, minlength=n_img)
    img_noise = np.bincount(prep.series_image, weights=noise, minlength=n_img)
    snr = _capped_snr(img_signal, img_noise)
    return pd.DataFrame({
        "image_id": prep.image_names,
        "fs": prep.image_fs,
        "n_leads": np.bincount(prep.series_image, minlength=n_img),
        "signal": img_signal,
        "noise": img_noise,
        "snr": snr,
        "snr_db": 10.0 * np.log10(snr),
    })


def score(solution: pd.DataFrame, submission: pd.DataFrame) -> float:
    """Competition score in dB: ``10 log10`` of the mean over images of the capped linear SNR."""
    return snr_db_from_linear(per_image_snr(solution, submission)["snr"].to_numpy())


__all__ = [
    "MAX_SNR", "MAX_LAG_S", "TIE_RTOL", "ParsedIds", "image_snr", "lead_powers", "lead_residuals", "max_lag_samples",
    "parse_ids", "per_image_snr", "per_lead_breakdown", "score", "snr_db_from_linear", "split_ids",
]
