"""12-lead ECG signal sources for the page factory: real records from disk, and a simulated heart.

Everything here hands out :class:`Record` s: 12 rows in :data:`common.layouts.LEADS` order, in mV, finite.

Readers (no ``wfdb`` dependency; numpy + scipy only):

* :func:`read_wfdb` - a PhysioNet WFDB record (``.hea`` header + ``.dat`` signal file in format 16, 212,
  61, 80, 160, 24 or 32, or a PhysioNet Challenge 2020/2021 style ``.mat`` signal file holding ``val``).
* :func:`read_cpsc_mat` - a CPSC 2018 style ``.mat`` (``ECG.data`` is (12, N) mV, no header).
* :func:`list_record_paths` / :func:`read_records` / :func:`iter_records` - walk a folder in a
  deterministic order; a file that cannot be read, or a record without all 12 leads, is logged and skipped.

Then :func:`windows` cuts 10 s windows, :func:`prepare` resamples a window to one of the competition's
sampling rates, and :func:`enforce_einthoven` makes the limb leads exactly consistent before rendering.
:func:`simulate_record` is a synthetic source for tests and for runs without data.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy.io import loadmat
from scipy.signal import resample_poly

from common.layouts import LEADS, RECORD_DURATION_S, canonical_lead_name
from common.types import SUPPORTED_FS_HZ

logger = logging.getLogger(__name__)

N_LEADS = len(LEADS)
_I, _II, _III, _AVR, _AVL, _AVF = (LEADS.index(n) for n in ("I", "II", "III", "aVR", "aVL", "aVF"))

# A lead with up to this fraction of missing (NaN / WFDB "invalid") samples is repaired by linear
# interpolation; more than that and the lead counts as absent.
MAX_NAN_FRACTION = 0.01


class MissingLeadsError(ValueError):
    """A record does not hold all 12 standard leads (or one is mostly missing samples)."""


@dataclass(frozen=True)
class Record:
    """A 12-lead ECG: ``leads_mv`` is float32 (12, N) in mV, rows in :data:`LEADS` order, all finite.

    ``source`` tells where it came from (the file it was read from, or ``simulated:...``).
    The array is stored as a read-only copy, so a record cannot be changed behind its back.
    """

    record_id: str
    fs_hz: float
    leads_mv: np.ndarray
    source: str

    def __post_init__(self) -> None:
        if not isinstance(self.record_id, str) or not self.record_id:
            raise ValueError(f"record_id must be a non-empty string, got {self.record_id!r}")
        fs = float(self.fs_hz)
        if not (np.isfinite(fs) and fs > 0):
            raise ValueError(f"fs_hz must be a positive sampling rate, got {self.fs_hz}")
        leads = np.array(self.leads_mv, dtype=np.float32, copy=True)
        if leads.ndim != 2 or leads.shape[0] != N_LEADS or leads.shape[1] < 1:
            raise ValueError(f"record {self.record_id}: leads_mv must be (12, N>=1), got {leads.shape}")
        if not np.isfinite(leads).all():
            raise ValueError(f"record {self.record_id}: leads_mv holds non-finite values")
        leads.setflags(write=False)
        object.__setattr__(self, "fs_hz", fs)
        object.__setattr__(self, "leads_mv", leads)
        object.__setattr__(self, "source", str(self.source))

    @property
    def n_samples(self) -> int:
        return int(self.leads_mv.shape[1])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs_hz

    def lead(self, name: str) -> np.ndarray:
        """One lead's samples by any spelling of its name ("avr", "V1", ...)."""
        return self.leads_mv[LEADS.index(canonical_lead_name(name))]


# --------------------------------------------------------------------------------------------------
# Missing samples
# --------------------------------------------------------------------------------------------------


def _fill_nan(leads: np.ndarray, record_id: str, names: Iterable[str] = LEADS) -> np.ndarray:
    """Interpolate isolated NaN samples per lead; a lead with too many is reported as missing."""
    leads = np.asarray(leads, dtype=np.float64).copy()
    bad_leads = []
    idx = np.arange(leads.shape[1])
    for row, name in zip(range(leads.shape[0]), names, strict=False):
        nan = ~np.isfinite(leads[row])
        n_nan = int(nan.sum())
        if n_nan == 0:
            continue
        if n_nan > MAX_NAN_FRACTION * leads.shape[1] or n_nan == leads.shape[1]:
            bad_leads.append(name)
            continue
        leads[row, nan] = np.interp(idx[nan], idx[~nan], leads[row, ~nan])
        logger.debug("record %s: interpolated %d missing samples in lead %s", record_id, n_nan, name)
    if bad_leads:
        raise MissingLeadsError(f"record {record_id}: leads {bad_leads} are mostly missing samples")
    return leads


# --------------------------------------------------------------------------------------------------
# WFDB
# --------------------------------------------------------------------------------------------------

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_FORMAT_RE = re.compile(r"^(\d+)(?:x(\d+))?(?::(\d+))?(?:\+(\d+))?$")
_GAIN_RE = re.compile(rf"^({_NUM})?(?:\(({_NUM})\))?(?:/(\S+))?$")
_UNITS_TO_MV = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "nv": 1e-6, "v": 1e3}
# Sample value that WFDB reserves for "no data", per format.
_INVALID = {16: -(2**15), 61: -(2**15), 160: -(2**15), 212: -(2**11), 80: -(2**7), 24: -(2**23), 32: -(2**31)}
_BYTES_PER_SAMPLE = {16: 2.0, 61: 2.0, 160: 2.0, 212: 1.5, 80: 1.0, 24: 3.0, 32: 4.0}


@dataclass(frozen=True)
class WfdbSignal:
    """One signal line of a WFDB header."""

    file_name: str
    fmt: int
    samples_per_frame: int
    byte_offset: int
    gain: float  # adc units per physical unit
    baseline: float  # adc value of 0 physical units
    units: str
    adc_resolution: int
    adc_zero: int
    initial_value: int | None
    checksum: int | None
    description: str


@dataclass(frozen=True)
class WfdbHeader:
    record_name: str
    n_segments: int
    fs_hz: float
    n_samples: int | None
    signals: tuple[WfdbSignal, ...]


def _int_field(tokens: list[str], i: int, default: int | None) -> int | None:
    return int(tokens[i]) if len(tokens) > i and tokens[i] not in ("", "-") else default


def parse_wfdb_header(text: str) -> WfdbHeader:
    """Parse the text of a ``.hea`` file (single-segment records; comment lines are ignored)."""
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if not lines:
        raise ValueError("empty WFDB header")
    rec = lines[0].split()
    if len(rec) < 2:
        raise ValueError(f"bad WFDB record line: {lines[0]!r}")
    name, _, nseg = rec[0].partition("/")
    n_segments = int(nseg) if nseg else 1
    n_sig = int(rec[1])
    fs_hz = 250.0  # WFDB default
    if len(rec) > 2:
        m = re.match(_NUM, rec[2])
        if not m:
            raise ValueError(f"bad sampling frequency field {rec[2]!r}")
        fs_hz = float(m.group(0))
    n_samples = int(rec[3]) if len(rec) > 3 and int(rec[3]) > 0 else None
    if n_segments > 1:
        return WfdbHeader(name, n_segments, fs_hz, n_samples, ())
    if len(lines) < 1 + n_sig:
        raise ValueError(f"header declares {n_sig} signals but has {len(lines) - 1} signal lines")

    signals = []
    for line in lines[1 : 1 + n_sig]:
        tok = line.split()
        if len(tok) < 2:
            raise ValueError(f"bad WFDB signal line: {line!r}")
        fm = _FORMAT_RE.match(tok[1])
        if not fm:
            raise ValueError(f"bad WFDB format field {tok[1]!r}")
        fmt = int(fm.group(1))
        spf = int(fm.group(2)) if fm.group(2) else 1
        offset = int(fm.group(4)) if fm.group(4) else 0
        adc_res = _int_field(tok, 3, 0)
        adc_zero = _int_field(tok, 4, 0)
        gain, baseline, units = 0.0, float(adc_zero), "mV"
        if len(tok) > 2:
            gm = _GAIN_RE.match(tok[2])
            if not gm:
                raise ValueError(f"bad WFDB gain field {tok[2]!r}")
            gain = float(gm.group(1)) if gm.group(1) else 0.0
            baseline = float(gm.group(2)) if gm.group(2) else float(adc_zero)
            units = gm.group(3) or "mV"
        if gain == 0:
            gain = 200.0  # WFDB default
        signals.append(WfdbSignal(
            file_name=tok[0], fmt=fmt, samples_per_frame=spf, byte_offset=offset, gain=gain, baseline=baseline,
            units=units, adc_resolution=adc_res, adc_zero=adc_zero, initial_value=_int_field(tok, 5, None),
            checksum=_int_field(tok, 6, None), description=" ".join(tok[8:]),
        ))
    return WfdbHeader(name, n_segments, fs_hz, n_samples, tuple(signals))


def _lead_of(description: str) -> str | None:
    """Canonical lead name of a signal description, or None for a non-standard signal (vx, ABP, ...)."""
    for candidate in (description, description.split()[-1] if description.split() else ""):
        try:
            return canonical_lead_name(candidate)
        except KeyError:
            continue
    return None


def _decode(raw: bytes, fmt: int, n_values: int) -> np.ndarray:
    """Decode ``n_values`` interleaved samples of one WFDB format; invalid samples become NaN."""
    if fmt == 16:
        adc = np.frombuffer(raw, dtype="<i2", count=n_values).astype(np.int64)
    elif fmt == 61:
        adc = np.frombuffer(raw, dtype=">i2", count=n_values).astype(np.int64)
    elif fmt == 160:
        adc = np.frombuffer(raw, dtype="<u2", count=n_values).astype(np.int64) - 2**15
    elif fmt == 80:
        adc = np.frombuffer(raw, dtype=np.uint8, count=n_values).astype(np.int64) - 2**7
    elif fmt == 32:
        adc = np.frombuffer(raw, dtype="<i4", count=n_values).astype(np.int64)
    elif fmt == 24:
        b = np.frombuffer(raw, dtype=np.uint8, count=3 * n_values).reshape(-1, 3).astype(np.int64)
        adc = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        adc = np.where(adc >= 2**23, adc - 2**24, adc)
    elif fmt == 212:
        # Two 12-bit samples in 3 bytes: s0 = b0 + low nibble of b1 << 8, s1 = b2 + high nibble of b1 << 4.
        n_bytes = 3 * ((n_values + 1) // 2)
        b = np.frombuffer(raw[:n_bytes].ljust(n_bytes, b"\0"), dtype=np.uint8).reshape(-1, 3).astype(np.int64)
        pairs = np.empty((b.shape[0], 2), dtype=np.int64)
        pairs[:, 0] = b[:, 0] | ((b[:, 1] & 0x0F) << 8)
        pairs[:, 1] = b[:, 2] | ((b[:, 1] & 0xF0) << 4)
        adc = pairs.reshape(-1)[:n_values]
        adc = np.where(adc >= 2**11, adc - 2**12, adc)
    else:
        raise ValueError(f"WFDB format {fmt} is not supported (supported: {sorted(_BYTES_PER_SAMPLE)})")
    out = adc.astype(np.float64)
    out[adc == _INVALID[fmt]] = np.nan
    return out


def _check_checksum(adc: np.ndarray, sig: WfdbSignal, record: str) -> None:
    if sig.checksum is None or not np.isfinite(adc).all():
        return
    total = int(np.sum(adc.astype(np.int64))) & 0xFFFF
    expected = sig.checksum & 0xFFFF
    if total != expected:
        logger.warning("record %s lead %s: checksum mismatch (%d != %d); the signal file may be damaged",
                       record, sig.description, total, expected)


def _read_signal_file(path: Path, sigs: list[WfdbSignal], n_samples: int | None, record: str) -> np.ndarray:
    """Adc values (n_sig_in_file, N) of all signals stored in one ``.dat`` file (interleaved frames)."""
    fmts = {s.fmt for s in sigs}
    if len(fmts) != 1:
        raise ValueError(f"{path.name}: signals in one file use different formats {sorted(fmts)}")
    fmt = fmts.pop()
    if fmt not in _BYTES_PER_SAMPLE:
        raise ValueError(f"{path.name}: WFDB format {fmt} is not supported (supported: {sorted(_BYTES_PER_SAMPLE)})")
    if any(s.samples_per_frame != 1 for s in sigs):
        raise ValueError(f"{path.name}: more than one sample per frame is not supported")
    raw = path.read_bytes()[sigs[0].byte_offset :]
    n_sig = len(sigs)
    available = int(len(raw) // (_BYTES_PER_SAMPLE[fmt] * n_sig))
    if n_samples is None:
        n_samples = available
    elif available < n_samples:
        logger.warning("record %s: %s holds %d of the %d samples the header declares; truncating",
                       record, path.name, available, n_samples)
        n_samples = available
    if n_samples < 1:
        raise ValueError(f"{path.name}: no samples")
    adc = _decode(raw, fmt, n_samples * n_sig).reshape(n_samples, n_sig).T
    return adc


def _read_mat_signal_file(path: Path, sigs: list[WfdbSignal], n_samples: int | None) -> np.ndarray:
    """Adc values (n_sig, N) from a Challenge 2020/2021 style ``.mat`` holding ``val``."""
    mat = loadmat(str(path))
    if "val" not in mat:
        raise ValueError(f"{path.name}: no 'val' variable in the .mat signal file")
    val = np.asarray(mat["val"])
    if val.ndim != 2:
        raise ValueError(f"{path.name}: 'val' must be 2-D, got {val.shape}")
    if val.shape[0] != len(sigs) and val.shape[1] == len(sigs):
        val = val.T
    if val.shape[0] != len(sigs):
        raise ValueError(f"{path.name}: 'val' has {val.shape[0]} rows but the header lists {len(sigs)} signals")
    if n_samples is not None and val.shape[1] != n_samples:
        logger.warning("%s: %d samples, header says %d", path.name, val.shape[1], n_samples)
    out = val.astype(np.float64)
    if np.issubdtype(val.dtype, np.integer):
        out[val == np.iinfo(val.dtype).min] = np.nan
    return out


def _check_limb_gains(adc: dict[str, np.ndarray], gains: dict[str, float], record: str) -> None:
    """Warn when the ADC values obey Einthoven exactly but the header's limb-lead gains differ.

    Then the physical values cannot obey it, so the per-lead gains are not the acquisition gains (seen in
    LUDB copies whose gains scale every lead to exactly 1 mV peak to peak).
    """
    if not all(np.isfinite(adc[k]).all() for k in ("I", "II", "III")):
        return
    adc_residual = float(np.max(np.abs(adc["III"] - (adc["II"] - adc["I"]))))
    spread = max(gains[k] for k in LEADS[:6]) / min(gains[k] for k in LEADS[:6])
    if adc_residual <= 1.0 and spread > 1.01:
        logger.warning("record %s: ADC values satisfy Einthoven exactly but the header's limb-lead gains differ "
                       "(x%.2f); the per-lead gains look wrong - consider adc_gain=<common gain>", record, spread)


def read_wfdb(hea_path: Path | str, adc_gain: float | None = None) -> Record:
    """Read the 12 standard leads of a WFDB record, in mV, from its ``.hea`` header.

    Other signals (Frank leads vx/vy/vz, ...) are ignored and their files not even opened. Raises
    :class:`MissingLeadsError` if any of the 12 leads is absent, ValueError for anything unreadable.
    ``adc_gain`` (adc units per header unit) replaces every lead's header gain, for databases whose
    headers carry wrong gains; baselines and units still come from the header.
    """
    hea_path = Path(hea_path)
    header = parse_wfdb_header(hea_path.read_text(encoding="utf-8", errors="replace"))
    if header.n_segments > 1:
        raise ValueError(f"{hea_path.name}: multi-segment WFDB records are not supported")
    record = header.record_name or hea_path.stem

    wanted: dict[str, int] = {}  # canonical lead -> index into header.signals
    for i, sig in enumerate(header.signals):
        lead = _lead_of(sig.description)
        if lead is None:
            continue
        if lead in wanted:
            logger.warning("record %s: lead %s appears twice; keeping the first", record, lead)
            continue
        wanted[lead] = i
    missing = [lead for lead in LEADS if lead not in wanted]
    if missing:
        raise MissingLeadsError(f"record {record}: missing leads {missing}")

    files: dict[str, list[int]] = {}  # file name -> indices of all its signals, in header order
    for i, sig in enumerate(header.signals):
        files.setdefault(sig.file_name, []).append(i)
    needed = {header.signals[i].file_name for i in wanted.values()}

    adc_of: dict[int, np.ndarray] = {}
    for file_name, indices in files.items():
        if file_name not in needed:
            continue
        path = hea_path.parent / file_name
        sigs = [header.signals[i] for i in indices]
        if path.suffix.lower() == ".mat":
            adc = _read_mat_signal_file(path, sigs, header.n_samples)
        else:
            adc = _read_signal_file(path, sigs, header.n_samples, record)
        for row, i in enumerate(indices):
            adc_of[i] = adc[row]

    if adc_gain is not None and not (np.isfinite(adc_gain) and adc_gain > 0):
        raise ValueError(f"adc_gain must be positive, got {adc_gain}")
    n = min(adc_of[i].shape[0] for i in wanted.values())
    leads = np.empty((N_LEADS, n), dtype=np.float64)
    for row, lead in enumerate(LEADS):
        sig = header.signals[wanted[lead]]
        adc = adc_of[wanted[lead]][:n]
        units = sig.units.strip().lower()
        if units not in _UNITS_TO_MV:
            raise ValueError(f"record {record} lead {lead}: unknown units {sig.units!r}")
        if sig.file_name.lower().endswith(".dat"):
            _check_checksum(adc, sig, record)
        gain = sig.gain if adc_gain is None else float(adc_gain)
        leads[row] = (adc - sig.baseline) / gain * _UNITS_TO_MV[units]
    if adc_gain is None:
        _check_limb_gains({k: adc_of[wanted[k]][:n] for k in LEADS[:3]},
                          {k: header.signals[wanted[k]].gain for k in LEADS[:6]}, record)
    leads = _fill_nan(leads, record)
    return Record(record_id=record, fs_hz=header.fs_hz, leads_mv=leads, source=str(hea_path))


# --------------------------------------------------------------------------------------------------
# CPSC 2018 .mat
# --------------------------------------------------------------------------------------------------


def read_cpsc_mat(mat_path: Path | str, fs_hz: float = 500.0) -> Record:
    """Read a CPSC 2018 style ``.mat``: ``ECG.data`` (12, N) in mV, leads in :data:`LEADS` order, no header."""
    mat_path = Path(mat_path)
    mat = loadmat(str(mat_path))
    if "ECG" not in mat:
        raise ValueError(f"{mat_path.name}: no 'ECG' struct (not a CPSC 2018 style .mat)")
    ecg = mat["ECG"]
    try:
        data = ecg[0, 0]["data"] if ecg.dtype.names else ecg
    except (IndexError, ValueError, KeyError) as exc:
        raise ValueError(f"{mat_path.name}: cannot find ECG.data") from exc
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError(f"{mat_path.name}: ECG.data must be 2-D, got {data.shape}")
    if data.shape[0] != N_LEADS and data.shape[1] == N_LEADS:
        data = data.T
    if data.shape[0] != N_LEADS:
        raise MissingLeadsError(f"{mat_path.name}: ECG.data has {data.shape[0]} leads, expected 12")
    data = _fill_nan(data, mat_path.stem)
    return Record(record_id=mat_path.stem, fs_hz=fs_hz, leads_mv=data, source=str(mat_path))


# --------------------------------------------------------------------------------------------------
# Folders
# --------------------------------------------------------------------------------------------------


def list_record_paths(root: Path | str) -> list[Path]:
    """Every WFDB header and every ``.mat`` without a ``.hea`` beside it under ``root``, recursively.

    Sorted by path relative to ``root`` (POSIX form), so the order - and any split made on it - is the
    same on every machine. A ``.mat`` that a header names as its signal file shares the header's stem,
    so it is not listed separately.
    """
    root = Path(root)
    heas = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() == ".hea"]
    hea_stems = {(p.parent, p.stem) for p in heas}
    mats = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() == ".mat"
            and (p.parent, p.stem) not in hea_stems]
    return sorted(heas + mats, key=lambda p: p.relative_to(root).as_posix())


def read_record(path: Path | str, cpsc_fs_hz: float = 500.0, adc_gain: float | None = None) -> Record:
    """Read one path from :func:`list_record_paths` (``.hea`` -> WFDB, ``.mat`` -> CPSC style)."""
    path = Path(path)
    if path.suffix.lower() == ".hea":
        return read_wfdb(path, adc_gain=adc_gain)
    if path.suffix.lower() == ".mat":
        return read_cpsc_mat(path, fs_hz=cpsc_fs_hz)
    raise ValueError(f"{path}: not a .hea or .mat file")


def read_records(paths: Iterable[Path | str], cpsc_fs_hz: float = 500.0,
                 adc_gain: float | None = None) -> Iterator[Record]:
    """Read each path in order; records lacking leads and unreadable files are logged and skipped."""
    for path in paths:
        try:
            yield read_record(path, cpsc_fs_hz=cpsc_fs_hz, adc_gain=adc_gain)
        except MissingLeadsError as exc:
            logger.warning("skipping %s: %s", path, exc)
        except Exception as exc:  # noqa: BLE001 - one bad file must never stop a walk over thousands
            logger.warning("skipping unreadable %s: %s: %s", path, type(exc).__name__, exc)


def iter_records(root: Path | str, cpsc_fs_hz: float = 500.0, adc_gain: float | None = None) -> Iterator[Record]:
    """All readable 12-lead records under ``root``, in :func:`list_record_paths` order.

    ``cpsc_fs_hz`` is the rate of header-less CPSC ``.mat`` files; ``adc_gain`` overrides WFDB header gains
    (see :func:`read_wfdb`).
    """
    return read_records(list_record_paths(root), cpsc_fs_hz=cpsc_fs_hz, adc_gain=adc_gain)


# --------------------------------------------------------------------------------------------------
# Resampling, windows
# --------------------------------------------------------------------------------------------------


def _ratio(fs_in: float, fs_out: float) -> Fraction:
    ratio = Fraction(str(float(fs_out))) / Fraction(str(float(fs_in)))
    return ratio.limit_denominator(10_000)


def resample(leads: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Resample along the last axis with a polyphase filter at the exact rational ratio fs_out/fs_in.

    E.g. 500 -> 1025 Hz is up 41 / down 20, 500 -> 256 Hz is up 64 / down 125. The output has
    ``round(N * fs_out / fs_in)`` samples; the dtype of a floating input is kept (float64 otherwise).
    """
    leads = np.asarray(leads)
    if not (fs_in > 0 and fs_out > 0):
        raise ValueError(f"sampling rates must be positive, got {fs_in} -> {fs_out}")
    dtype = leads.dtype if np.issubdtype(leads.dtype, np.floating) else np.float64
    n_in = leads.shape[-1]
    n_out = int(round(n_in * fs_out / fs_in))
    ratio = _ratio(fs_in, fs_out)
    if ratio == 1:
        return leads.astype(dtype, copy=True)
    # padtype="line" extends the signal linearly at the ends, so a baseline offset does not ring.
    out = resample_poly(leads.astype(np.float64), ratio.numerator, ratio.denominator, axis=-1, padtype="line")
    if out.shape[-1] >= n_out:
        out = out[..., :n_out]
    else:
        pad = [(0, 0)] * (out.ndim - 1) + [(0, n_out - out.shape[-1])]
        out = np.pad(out, pad, mode="edge")
    return out.astype(dtype, copy=False)


def windows(record: Record, duration_s: float = RECORD_DURATION_S, hop_s: float | None = None) -> list[Record]:
    """Cut ``record`` into windows of ``duration_s`` every ``hop_s`` (default: back to back, no overlap).

    Window k starts at ``k * hop_s`` and has id ``<record_id>_w<k>`` (always suffixed, even for a record
    of exactly one window). A tail shorter than a window is dropped; a record shorter than one window
    gives ``[]`` (logged) - padding would put a flat line on the page that no real ECG has.
    """
    n_win = int(round(duration_s * record.fs_hz))
    n_hop = n_win if hop_s is None else int(round(hop_s * record.fs_hz))
    if n_win < 1 or n_hop < 1:
        raise ValueError(f"window {duration_s} s / hop {hop_s} s is shorter than one sample")
    if record.n_samples < n_win:
        logger.info("record %s: %.2f s is shorter than a %.2f s window; dropped",
                    record.record_id, record.duration_s, duration_s)
        return []
    out = []
    for k, start in enumerate(range(0, record.n_samples - n_win + 1, n_hop)):
        out.append(replace(record, record_id=f"{record.record_id}_w{k}",
                           leads_mv=record.leads_mv[:, start : start + n_win]))
    return out


def prepare(record: Record, fs_out: float) -> Record:
    """Resample a 10 s window to ``fs_out`` (one of :data:`SUPPORTED_FS_HZ`): exactly round(10 fs_out) samples.

    The record must be a 10 s window (within one input sample); cut longer ones with :func:`windows`.
    """
    if fs_out not in SUPPORTED_FS_HZ:
        raise ValueError(f"fs_out must be one of {SUPPORTED_FS_HZ}, got {fs_out}")
    if abs(record.n_samples - RECORD_DURATION_S * record.fs_hz) > 1:
        raise ValueError(f"record {record.record_id} lasts {record.duration_s:.3f} s; prepare() expects a "
                         f"{RECORD_DURATION_S:g} s window (use windows() first)")
    n_out = int(round(RECORD_DURATION_S * fs_out))
    leads = resample(record.leads_mv, record.fs_hz, fs_out)
    if leads.shape[1] > n_out:
        leads = leads[:, :n_out]
    elif leads.shape[1] < n_out:
        leads = np.pad(leads, ((0, 0), (0, n_out - leads.shape[1])), mode="edge")
    return replace(record, fs_hz=float(fs_out), leads_mv=leads)


def enforce_einthoven(leads_mv: np.ndarray) -> np.ndarray:
    """Recompute III, aVR, aVL and aVF from I and II; returns a new array (same float dtype).

    III = II - I, aVR = -(I + II)/2, aVL = I - II/2, aVF = II - I/2.

    Why: all six limb leads are differences of only three electrode potentials (RA, LA, LL), so on the
    body they satisfy these identities exactly. Recorded files satisfy them only approximately - each lead
    is quantised on its own (+-0.5 LSB each), some devices filter or sample leads separately, and some
    databases store leads that were derived before rounding. Rendered pages are labels for training and
    scoring a digitizer that may itself use these identities (e.g. to recover a lead from the other two),
    so the labels must be self-consistent; the small changes this makes (a few uV on clean data) are far
    below anything visible on paper. I and II are kept as recorded.
    """
    leads = np.asarray(leads_mv)
    if leads.ndim < 2 or leads.shape[-2] != N_LEADS:
        raise ValueError(f"enforce_einthoven needs (..., 12, N) leads, got {leads.shape}")
    dtype = leads.dtype if np.issubdtype(leads.dtype, np.floating) else np.float64
    out = leads.astype(dtype, copy=True)
    lead_i, lead_ii = out[..., _I, :], out[..., _II, :]
    half = np.dtype(dtype).type(0.5)
    out[..., _III, :] = lead_ii - lead_i
    out[..., _AVR, :] = -(lead_i + lead_ii) * half
    out[..., _AVL, :] = lead_i - lead_ii * half
    out[..., _AVF, :] = lead_ii - lead_i * half
    return out


# --------------------------------------------------------------------------------------------------
# Simulated source
# --------------------------------------------------------------------------------------------------

# Inverse Dower transform (Edenbrandt & Pahlm 1988): Frank X (left), Y (foot), Z (back) in mV -> leads.
# Only I, II and V1..V6 are needed; the other limb leads follow from Einthoven/Goldberger.
_DOWER = {
    "I": (0.632, -0.235, 0.059),
    "II": (0.235, 1.066, -0.132),
    "V1": (-0.515, 0.157, -0.917),
    "V2": (0.044, 0.164, -1.387),
    "V3": (0.882, 0.098, -1.277),
    "V4": (1.213, 0.127, -0.601),
    "V5": (1.125, 0.127, -0.086),
    "V6": (0.831, 0.076, 0.230),
}
# Heart vector of each wave of a normal beat in Frank coordinates (mV), its time relative to the R peak
# (s; P and T are rescaled per record) and its Gaussian width (s).
_WAVES = {
    #        vector (X, Y, Z)        t      sigma
    "P": ((0.12, 0.10, 0.02), -0.15, 0.022),
    "Q": ((-0.15, 0.05, -0.22), -0.028, 0.008),  # septal: right and anterior -> r in V1, q in I, V6
    "R": ((1.00, 0.50, 0.40), 0.0, 0.010),  # main: left, inferior, posterior
    "S": ((-0.30, -0.20, 0.40), 0.028, 0.010),  # terminal: right, superior, posterior
    "T": ((0.35, 0.25, -0.20), 0.28, 0.048),
}


def _rotation(rng: np.random.Generator) -> np.ndarray:
    """A small random rotation of the heart's axis (frontal +-30 deg, horizontal +-20 deg, sagittal +-10 deg)."""
    a, b, c = np.deg2rad(rng.uniform(-30, 30)), np.deg2rad(rng.uniform(-20, 20)), np.deg2rad(rng.uniform(-10, 10))
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])  # about Z: frontal plane
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])  # about Y: horizontal
    rx = np.array([[1, 0, 0], [0, np.cos(c), -np.sin(c)], [0, np.sin(c), np.cos(c)]])  # about X: sagittal
    return rx @ ry @ rz


def simulate_record(rng: np.random.Generator, fs_hz: float = 500.0, duration_s: float = 10.0,
                    record_id: str = "sim") -> Record:
    """A plausible synthetic 12-lead ECG, deterministic given the state of ``rng``.

    A heart dipole (3-D vector per time: Gaussian P, Q, R, S, T waves per beat, heart rate 50-120 bpm
    with respiratory and random beat-to-beat variability, a randomly rotated electrical axis and random
    wave amplitudes) is projected onto the leads with the inverse Dower matrix. Baseline wander and noise
    are added per electrode (RA, LA, LL, V1..V6) and the leads are formed as electrode differences, so the
    six limb leads satisfy Einthoven/Goldberger exactly (to float32 rounding). Typical result: R 0.5-2 mV,
    aVR negative, V1 rS progressing to V6 qR.
    """
    n = int(round(duration_s * fs_hz))
    if n < 1:
        raise ValueError(f"duration {duration_s} s at {fs_hz} Hz gives no samples")
    t = np.arange(n) / fs_hz

    # Rhythm.
    rr0 = 60.0 / rng.uniform(50.0, 120.0)
    resp_f, resp_amp, resp_phase = rng.uniform(0.15, 0.35), rng.uniform(0.01, 0.05), rng.uniform(0, 2 * np.pi)
    beat_times = []
    tb = -rng.uniform(0.0, rr0)
    while tb < duration_s + 0.6:
        beat_times.append(tb)
        rr = rr0 * (1 + resp_amp * np.sin(2 * np.pi * resp_f * tb + resp_phase) + 0.015 * rng.standard_normal())
        tb += max(rr, 0.3)

    # Morphology of this record.
    rot = _rotation(rng)
    qrs_scale = rng.uniform(0.7, 1.6)
    scale = {"P": rng.uniform(0.6, 1.4), "Q": rng.uniform(0.5, 1.5) * qrs_scale, "R": qrs_scale,
             "S": rng.uniform(0.5, 1.5) * qrs_scale, "T": rng.uniform(0.7, 1.4)}
    pr = rng.uniform(0.13, 0.20)
    qrs_width = rng.uniform(0.85, 1.2)
    qt = rng.uniform(0.38, 0.44) * np.sqrt(rr0)  # Bazett: QTc 380-440 ms
    timing = {"P": -(pr - 0.01), "Q": -0.028 * qrs_width, "R": 0.0, "S": 0.028 * qrs_width, "T": qt - 0.12}
    width = {k: _WAVES[k][2] * (qrs_width if k in "QRS" else 1.0) for k in _WAVES}
    vectors = {k: rot @ (np.asarray(_WAVES[k][0]) * scale[k]) for k in _WAVES}

    dipole = np.zeros((3, n))
    for tb in beat_times:
        resp = 1 + 0.05 * np.sin(2 * np.pi * resp_f * tb + resp_phase)  # breathing moves the heart a little
        for k in _WAVES:
            centre = tb + timing[k] + 0.003 * rng.standard_normal()
            lo, hi = np.searchsorted(t, [centre - 5 * width[k], centre + 5 * width[k]])
            if hi <= lo:
                continue
            g = np.exp(-0.5 * ((t[lo:hi] - centre) / width[k]) ** 2)
            dipole[:, lo:hi] += (vectors[k] * resp)[:, None] * g[None, :]

    names = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
    leads = np.zeros((N_LEADS, n))
    for name in names:
        leads[LEADS.index(name)] = np.asarray(_DOWER[name]) @ dipole

    # Electrode artefacts: wander (breathing + slow drift) and noise on each electrode's potential.
    electrodes = ("RA", "LA", "LL", "V1", "V2", "V3", "V4", "V5", "V6")
    noise_sd = rng.uniform(0.002, 0.012)
    pot = {}
    for e in electrodes:
        wander = rng.uniform(0.0, 0.08) * np.sin(2 * np.pi * resp_f * t + rng.uniform(0, 2 * np.pi))
        wander += rng.uniform(0.0, 0.08) * np.sin(2 * np.pi * rng.uniform(0.03, 0.12) * t + rng.uniform(0, 2 * np.pi))
        pot[e] = wander + noise_sd * rng.standard_normal(n)
    wct = (pot["RA"] + pot["LA"] + pot["LL"]) / 3.0
    leads[_I] += pot["LA"] - pot["RA"]
    leads[_II] += pot["LL"] - pot["RA"]
    for v in electrodes[3:]:
        leads[LEADS.index(v)] += pot[v] - wct

    leads = enforce_einthoven(leads.astype(np.float32))
    return Record(record_id=record_id, fs_hz=float(fs_hz), leads_mv=leads,
                  source=f"simulated:hr={60.0 / rr0:.0f}bpm")
