"""ECG-Image-Kit, the generator the competition's hosts used, as a page source with our labels.

    make eik-env EIK=/path/to/ecg-image-kit        # its own virtual environment, .venv-eik (once)
    python -m synth.eik --generator /path/to/ecg-image-kit --signals DIR --out DIR --n-pages N \
        [--workers W] [--seed S] [--augmented 0.3] [--split train|val|all] [--viz DIR]

Each page is one 10 s window of one of our records, resampled to an fs from {250, 256, 500, 512, 1000, 1025},
made Einthoven-consistent, written as a WFDB record at one common gain (1000 ADC units per mV, so the
generator's header-gain reading gives back exactly these values) and drawn by the generator's own batch
command with a spread of its options (:func:`sample_options`). The generator is only ever run as a program,
in its own environment; nothing here imports it.

Its ``--store_config 2`` JSON holds every plotted sample's pixel position (matplotlib's display
coordinates: pixel edges, so a pixel's centre is at +0.5; we subtract that) and the lead-name boxes.
:func:`labels_from_eik` turns it into :class:`~synth.labels.SheetLabels` on the canonical sheet: the row
trace centres at sub-column resolution come straight from the plotted positions, the baselines from those
positions and the values we gave it (a page whose plotted positions do not follow the values is refused).
Augmented pages (rotation, noise, crop; wrinkles and creases) are drawn twice with the same seed, once
plain and once augmented; the plain drawing carries the labels and the augmented image's map onto it is
found by image registration (ECC), so the labels hold however the generator moved the page.

Output: our train layout (``synth.make``): train.csv, train/<id>/<id>.csv, train/<id>/<id>-0001.png (the
competition calls these renders 0001), labels and map beside it, plus ``variants.csv`` (per image: grid,
header, pulse, augmentation), which ``pipeline cv`` reports by.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from common.geometry import CANONICAL
from common.layouts import COMPETITION_LAYOUT, LEADS
from common.sheet_map import SheetMap
from common.types import SUPPORTED_FS_HZ
from synth.factory import SynthPage
from synth.labels import SheetLabels, sub_column_x
from synth.make import map_jobs, signals_frame, write_image
from synth.signals import Record, enforce_einthoven, prepare

GENERATOR_SUBDIR = Path("codes") / "ecg-image-generator"
BATCH_SCRIPT = "gen_ecg_images_from_data_batch.py"
DEFAULT_EIK_PYTHON = Path(".venv-eik") / "bin" / "python"
ADC_PER_MV = 1000.0
LINE_WIDTH_PT = 0.75  # the generator's trace width (matplotlib points); bars are 3x, pulses 1.5x
PULSE_S = 0.2  # the generator's calibration pulse width and the gap it leaves before the trace
IMAGE_TYPE = "0001"
# matplotlib's display coordinates put pixel edges on integers; ours put pixel centres there
DISPLAY_TO_CENTRE_PX = -0.5


class EikError(RuntimeError):
    """The generator failed, or what it wrote does not match what it was given."""


# ------------------------------------------------------------------------------------------------ options


@dataclass(frozen=True)
class EikOptions:
    """One page's generator options (each maps onto one of its command-line flags)."""

    fs_hz: int
    grid: str  # "standard" (its fixed colour pairs), "random" (--random_grid_color), "bw", "none"
    standard_colour: int  # 1..5 (brown, pink, blue, green, red); only for grid == "standard"
    header: bool  # --print_header: patient/measurement text above the chart
    pulse: bool  # calibration pulse before each row
    augment: bool  # its rotation + noise + crop + colour temperature
    rotate_deg: int  # the largest rotation it may draw (degrees)
    noise: int  # the largest Gaussian noise sd it may draw (grey levels)
    wrinkles: bool  # its wrinkle texture and creases
    seed: int

    @property
    def variant(self) -> str:
        """A short name for reports: grid[/header][/nopulse][/augment][/wrinkles]."""
        parts = [self.grid if self.grid != "standard" else f"standard{self.standard_colour}"]
        parts += ["header"] * self.header + ["nopulse"] * (not self.pulse)
        parts += ["augment"] * self.augment + ["wrinkles"] * self.wrinkles
        return "/".join(parts)

    @property
    def distorted(self) -> bool:
        return self.augment or self.wrinkles


def sample_options(rng: np.random.Generator, augmented: float = 0.0,
                   fs_choices: Sequence[int] = SUPPORTED_FS_HZ) -> EikOptions:
    """A page's options: grids as the hosts' pages show them (their default red pair most often, the other
    fixed pairs, random dark colours, black and white), headers on half, a pulse on most; with probability
    ``augmented`` its augmentations (rotation up to 6 degrees, noise, crop) and/or wrinkles and creases."""
    grid = str(rng.choice(["standard", "random", "bw", "none"], p=[0.45, 0.3, 0.2, 0.05]))
    colour = int(rng.choice([1, 2, 3, 4, 5], p=[0.1, 0.15, 0.1, 0.1, 0.55]))
    distort = bool(rng.random() < augmented)
    kind = int(rng.integers(0, 3)) if distort else -1  # 0 augment, 1 wrinkles, 2 both
    return EikOptions(
        fs_hz=int(rng.choice(np.asarray(fs_choices))),
        grid=grid,
        standard_colour=colour,
        header=bool(rng.random() < 0.5),
        pulse=bool(rng.random() < 0.85),
        augment=kind in (0, 2),
        rotate_deg=int(rng.integers(2, 7)),
        noise=int(rng.integers(5, 40)),
        wrinkles=kind in (1, 2),
        seed=int(rng.integers(0, 2**31 - 1)),
    )


def generator_argv(options: EikOptions, distorted: bool) -> list[str]:
    """The generator's flags for ``options``; ``distorted=False`` leaves out augmentations and wrinkles
    (the plain drawing of the same page: same seed, same draws up to the augmentation)."""
    argv = ["-se", str(options.seed), "--store_config", "2", "--lead_name_bbox",
            "--calibration_pulse", "1" if options.pulse else "0",
            "--random_grid_present", "0" if options.grid == "none" else "1",
            "--random_bw", "1" if options.grid == "bw" else "0"]
    if options.grid == "random":
        argv.append("--random_grid_color")
    else:
        argv += ["--standard_grid_color", str(options.standard_colour)]
    if options.header:
        argv.append("--print_header")
    if distorted and options.augment:
        argv += ["--augment", "-rot", str(options.rotate_deg), "-noise", str(options.noise),
                 "--deterministic_rot"]
    if distorted and options.wrinkles:
        argv.append("--wrinkles")
    return argv


# ------------------------------------------------------------------------------------------------ running


def generator_dir(path: Path) -> Path:
    """The generator's folder, given an ECG-Image-Kit checkout (or the generator folder itself)."""
    path = Path(path)
    for candidate in (path / GENERATOR_SUBDIR, path):
        if (candidate / BATCH_SCRIPT).is_file():
            return candidate.resolve()
    raise EikError(f"{path} is not an ECG-Image-Kit checkout: no {GENERATOR_SUBDIR / BATCH_SCRIPT} in it")


def write_record(signals_mv: np.ndarray, fs_hz: float, name: str, folder: Path, rng: np.random.Generator) -> np.ndarray:
    """Write a WFDB record the generator reads (one gain for all leads; the ``Age``/``Sex`` comments its
    printed header needs); returns the values as stored (quantised to 1 uV), which are the page's truth."""
    import wfdb  # the page factory's only WFDB writer; imported here so the pipeline never needs it

    adc = np.round(np.asarray(signals_mv, dtype=np.float64) * ADC_PER_MV)
    if np.abs(adc).max() >= 2**15:
        raise EikError(f"record {name} exceeds +-32 mV; not a body-surface ECG")
    folder.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(name, fs=float(fs_hz), units=["mV"] * len(LEADS), sig_name=list(LEADS),
                d_signal=adc.T.astype(np.int32), fmt=["16"] * len(LEADS), adc_gain=[ADC_PER_MV] * len(LEADS),
                baseline=[0] * len(LEADS), write_dir=str(folder),
                comments=[f"Age: {int(rng.integers(20, 90))}", f"Sex: {rng.choice(['Male', 'Female'])}"])
    return (adc / ADC_PER_MV).astype(np.float32)


def run_generator(generator: Path, python: Path, record_dir: Path, out_dir: Path, argv: Sequence[str],
                  timeout_s: float = 600.0) -> tuple[Path, dict]:
    """Run the generator's batch command on the one record in ``record_dir``; returns its image and JSON."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [str(python), BATCH_SCRIPT, "-i", str(record_dir.resolve()), "-o", str(out_dir.resolve()), *argv]
    done = subprocess.run(cmd, cwd=generator, capture_output=True, text=True, timeout=timeout_s,
                          env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin", "HOME": str(out_dir.resolve())})
    pngs = sorted(out_dir.glob("*-0.png"))
    if done.returncode != 0 or len(pngs) != 1:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise EikError(f"ECG-Image-Kit failed (exit {done.returncode}): " + " | ".join(tail))
    return pngs[0], json.loads(pngs[0].with_suffix(".json").read_text())


# ------------------------------------------------------------------------------------------------ labels


def _plotted(lead: dict) -> np.ndarray:
    """(n, 2) x, y of a lead's plotted samples in our pixel convention."""
    yx = np.asarray(lead["plotted_pixels"], dtype=np.float64).reshape(-1, 2)
    return yx[:, ::-1] + DISPLAY_TO_CENTRE_PX


def _box(box: dict) -> tuple[float, float, float, float]:
    """The generator's text box (corners as [y, x], edges) -> x0, y0, x1, y1 in our convention."""
    ys = [float(box[k][0]) for k in ("0", "1", "2", "3")]
    xs = [float(box[k][1]) for k in ("0", "1", "2", "3")]
    return min(xs) + DISPLAY_TO_CENTRE_PX, min(ys) + DISPLAY_TO_CENTRE_PX, max(xs) + DISPLAY_TO_CENTRE_PX, \
        max(ys) + DISPLAY_TO_CENTRE_PX


def labels_from_eik(page: dict, signals_mv: np.ndarray, record_id: str, x_upsample: int = 4,
                    tolerance_px: float = 0.05, options: dict | None = None) -> SheetLabels:
    """:class:`SheetLabels` of a plain (unaugmented) generator page from its ``--store_config 2`` JSON and the
    values it was given (12, 10 fs) in :data:`LEADS` order.

    Checks what the labels rest on: a 200 dpi Letter page (the canonical sheet), the competition's 3x4 + II
    arrangement, and plotted positions that follow the values at 10 mm/mV within ``tolerance_px``.
    """
    geometry = CANONICAL
    h, w = geometry.shape_hw
    if (page.get("width"), page.get("height"), page.get("resolution")) != (w, h, round(geometry.dpi)):
        raise EikError(f"page is {page.get('width')}x{page.get('height')} px at {page.get('resolution')} dpi; "
                       f"labels need the canonical {w}x{h} px at {geometry.dpi:g} dpi")
    if page.get("augment") or page.get("wrinkles") or page.get("pad_inches"):
        raise EikError("labels come from the plain drawing of a page; this one is augmented, wrinkled or padded")
    fs_hz = float(page["sampling_frequency"])
    n_samples = int(round(10 * fs_hz))
    signals_mv = np.asarray(signals_mv, dtype=np.float64)
    if signals_mv.shape != (len(LEADS), n_samples):
        raise EikError(f"signals must be (12, {n_samples}) for fs {fs_hz:g} Hz, got {signals_mv.shape}")

    layout = COMPETITION_LAYOUT
    entries = page["leads"]
    rhythm = [e for e in entries if e["lead_name"] == "II" and e["end_sample"] - e["start_sample"] > n_samples // 2]
    short = [e for e in entries if e not in rhythm]
    if len(rhythm) != 1 or sorted(e["lead_name"] for e in short) != sorted(LEADS):
        raise EikError(f"page is not 3x4 + II: leads {[e['lead_name'] for e in entries]}")

    # each entry's baseline: y + v * px/mV is constant along a lead drawn at 10 mm/mV
    baselines, points = [], []
    for e in entries:
        pts = _plotted(e)
        values = signals_mv[LEADS.index(e["lead_name"]), e["start_sample"]:e["end_sample"]]
        if values.size != len(pts):
            raise EikError(f"lead {e['lead_name']}: {len(pts)} plotted samples for {values.size} values")
        offsets = pts[:, 1] + values * geometry.px_per_mv
        spread = float(np.abs(offsets - np.median(offsets)).max())
        if spread > tolerance_px + 0.011:  # the JSON rounds positions to 0.01 px
            raise EikError(f"lead {e['lead_name']}: plotted positions stray {spread:.2f} px from the values given")
        baselines.append(float(np.median(offsets)))
        points.append(pts)

    row_of_entry = np.searchsorted(np.unique(np.round(baselines, 1)), np.round(baselines, 1))
    x_sub = sub_column_x(w, x_upsample)
    row_y = np.full((layout.n_rows, x_sub.size), np.nan, dtype=np.float32)
    masks = np.zeros((layout.n_rows, h, w), dtype=np.uint8)
    printed = np.zeros(signals_mv.shape, dtype=bool)
    row_baselines: dict[int, float] = {}
    x0s = []
    label_boxes = {}
    line_px = LINE_WIDTH_PT / 72.0 * geometry.dpi
    panel_boxes = []
    pitches = np.diff(np.unique(np.round(baselines, 1)))
    half = 0.5 * float(np.median(pitches)) if pitches.size else 150.0  # panel corners: half a row pitch
    for e, pts, base, row in zip(entries, points, baselines, row_of_entry, strict=True):
        lead = e["lead_name"]
        is_rhythm = e is rhythm[0]
        panel = next(p for p in layout.panels if p.lead == lead and (p.row == layout.n_rows - 1) == is_rhythm)
        if panel.row != row:
            raise EikError(f"lead {lead} is drawn in row {row}, the competition's layout has it in row {panel.row}")
        row_baselines.setdefault(int(row), base)
        inside = (x_sub >= pts[0, 0]) & (x_sub <= pts[-1, 0])
        row_y[row, inside] = np.interp(x_sub[inside], pts[:, 0], pts[:, 1])
        cv2.polylines(masks[row], [np.round(pts * 16).astype(np.int32)], False, 255,
                      max(1, int(round(line_px))), cv2.LINE_AA, 4)
        printed[LEADS.index(lead), e["start_sample"]:e["end_sample"]] = True
        x0s.append(pts[0, 0] - geometry.s_to_px(e["start_sample"] / fs_hz - panel.t0_s + panel.x_offset_s))
        if "text_bounding_box" in e:
            label_boxes[(panel.row, panel.col)] = _box(e["text_bounding_box"])
        panel_boxes.append((pts[0, 0], pts[-1, 0], base, half))

    x0_px = float(np.median(x0s))
    if np.ptp(x0s) > 1.0:
        raise EikError(f"panels disagree on the chart's time origin by {np.ptp(x0s):.2f} px")
    panel_leads = tuple(p.lead for r in range(layout.n_rows) for p in layout.row_panels(r))
    boxes = np.array([label_boxes.get((p.row, p.col), (np.nan,) * 4)
                      for r in range(layout.n_rows) for p in layout.row_panels(r)], dtype=np.float32)
    pulse_boxes = np.full((layout.n_rows, 4), np.nan, dtype=np.float32)
    if page.get("dc_pulse"):
        pad = 1.5 * line_px / 2 + 1
        for r, base in row_baselines.items():
            pulse_boxes[r] = (x0_px - geometry.s_to_px(PULSE_S) - pad, base - geometry.px_per_mv - pad,
                              x0_px + geometry.s_to_px(4 / fs_hz) + pad, base + pad)
    keypoints, kinds = _keypoints(page, panel_boxes)
    style = {"renderer": "ecg-image-kit", "line_width_px": line_px,
             **{k: page[k] for k in ("grid_line_color_major", "grid_line_color_minor", "ecg_plot_color", "bw",
                                     "gridlines", "printed_text", "dc_pulse") if k in page},
             **(options or {})}
    return SheetLabels(
        record_id=str(record_id), fs_hz=fs_hz, layout_name=layout.name, x0_px=x0_px,
        baselines_y_px=tuple(row_baselines[r] for r in range(layout.n_rows)),
        trace_width_px=float(line_px), x_upsample=int(x_upsample),
        signals_mv=np.where(printed, signals_mv, np.nan).astype(np.float32),
        row_y_px=row_y, row_masks=masks, panel_leads=panel_leads, label_boxes_px=boxes,
        pulse_boxes_px=pulse_boxes, keypoints_px=keypoints, keypoint_kinds=kinds, style=style,
    )


def _keypoints(page: dict, panel_boxes: list) -> tuple[np.ndarray, tuple]:
    """Major grid crossings (matplotlib draws them every x_grid / y_grid px from the bottom-left corner),
    panel corners and page corners, as :func:`synth.render._keypoints` gives them for our pages."""
    geometry = CANONICAL
    pts, kinds = [], []
    if page.get("gridlines", True):
        xs = np.arange(0.0, geometry.width_px, float(page["x_grid"])) + DISPLAY_TO_CENTRE_PX
        ys = geometry.height_px - np.arange(0.0, geometry.height_px, float(page["y_grid"])) + DISPLAY_TO_CENTRE_PX
        xs, ys = xs[(xs >= 0) & (xs <= geometry.width_px - 1)], ys[(ys >= 0) & (ys <= geometry.height_px - 1)]
        gx, gy = np.meshgrid(xs, ys)
        pts.append(np.stack([gx.ravel(), gy.ravel()], axis=1))
        kinds += ["grid"] * gx.size
    corners = [(x, y) for x0, x1, base, half in panel_boxes for x in (x0, x1) for y in (base - half, base + half)]
    pts.append(np.asarray(corners, dtype=np.float64).reshape(-1, 2))
    kinds += ["panel"] * len(corners)
    pts.append(geometry.corners_px())
    kinds += ["page"] * 4
    return np.concatenate(pts).astype(np.float32), tuple(kinds)


def _all_points(page: dict) -> np.ndarray:
    return np.concatenate([_plotted(e) for e in page["leads"]])


def register(image_rgb: np.ndarray, sheet_rgb: np.ndarray, image_page: dict, sheet_page: dict,
             min_correlation: float = 0.4) -> SheetMap:
    """The map of a distorted image onto the plain drawing of the same page.

    The generator's JSON for the distorted image moves the plotted points by its rotation but not by its
    crop (which it resizes back to the page size) nor anything else; so the points give the starting affine
    transform and ECC on the two images' ink (darkness, blurred) refines it. Refused when they do not
    correlate."""
    src, dst = _all_points(sheet_page), _all_points(image_page)
    if src.shape != dst.shape:
        raise EikError("the distorted page's JSON does not list the plain page's samples")
    start, _ = cv2.estimateAffine2D(src, dst, method=cv2.LMEDS)
    if start is None:
        raise EikError("no starting transform from the distorted page's JSON")

    def ink(img: np.ndarray, scale: float) -> np.ndarray:
        """Thin dark strokes only: darkness above its local background (wrinkle shading and colour casts out)."""
        dark = 255.0 - img.min(axis=2).astype(np.float32)
        small = cv2.resize(dark, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        strokes = np.maximum(small - cv2.GaussianBlur(small, (0, 0), 6.0), 0.0)
        return cv2.GaussianBlur(strokes, (0, 0), 1.0)

    scale = 0.5
    s = np.diag([scale, scale, 1.0])
    warp = (s @ np.vstack([start, [0, 0, 1]]) @ np.linalg.inv(s))[:2].astype(np.float32)  # sheet -> image
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-4)
    try:
        rho, warp = cv2.findTransformECC(ink(sheet_rgb, scale), ink(image_rgb, scale), warp, cv2.MOTION_AFFINE,
                                         criteria, None, 1)
    except cv2.error as exc:
        raise EikError(f"the distorted page does not register onto its plain drawing: {exc.err}") from None
    zoom = np.sqrt(abs(np.linalg.det(warp[:, :2].astype(np.float64)) / np.linalg.det(start[:, :2])))
    if rho < min_correlation or abs(zoom - 1.0) > 0.03:  # the generator crops at most 1 % a side
        raise EikError(f"the distorted page does not register onto its plain drawing (ECC correlation {rho:.2f}, "
                       f"zoom {zoom:.3f} against its JSON)")
    # back to full-size pixel centres: full = (small + 0.5) / scale - 0.5
    to_full = np.array([[1 / scale, 0, 0.5 / scale - 0.5], [0, 1 / scale, 0.5 / scale - 0.5], [0, 0, 1]])
    sheet_to_image = to_full @ np.vstack([warp.astype(np.float64), [0, 0, 1]]) @ np.linalg.inv(to_full)
    return SheetMap(np.linalg.inv(sheet_to_image))


# ------------------------------------------------------------------------------------------------ pages


@dataclass(frozen=True)
class EikPage:
    record_id: str
    options: EikOptions
    image_rgb: np.ndarray
    sheet_rgb: np.ndarray
    sheet_map: SheetMap | None  # None: the distorted image did not register onto the plain drawing
    labels: SheetLabels


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise EikError(f"could not read the generator's image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def render_eik_page(record: Record, record_id: str, options: EikOptions, generator: Path, python: Path,
                    work_dir: Path) -> EikPage:
    """Draw one page of ``record`` with ``options`` (plain, then distorted if asked) and label it."""
    rng = np.random.default_rng(options.seed)
    window = prepare(record, options.fs_hz)
    signals = write_record(enforce_einthoven(window.leads_mv), options.fs_hz, record_id, work_dir / "in", rng)
    png, page = run_generator(generator, python, work_dir / "in", work_dir / "plain", generator_argv(options, False))
    sheet = read_rgb(png)
    labels = labels_from_eik(page, signals, record_id, options={"eik_options": asdict(options)})
    if not options.distorted:
        return EikPage(record_id, options, sheet, sheet, SheetMap.identity(), labels)
    png, distorted_page = run_generator(generator, python, work_dir / "in", work_dir / "distorted",
                                        generator_argv(options, True))
    image = read_rgb(png)
    # wrinkles and creases only shade the page; its augmentations move it. A page that does not register
    # still serves evaluation (its truth is the record), not training (no map onto its labels).
    try:
        sheet_map = register(image, sheet, distorted_page, page) if options.augment else SheetMap.identity()
    except EikError as exc:
        print(f"page {record_id}: written without a map: {exc}", file=sys.stderr)
        sheet_map = None
    return EikPage(record_id, options, image, sheet, sheet_map, labels)


def _job(args) -> tuple[str, dict | None, str]:
    record, record_id, options, generator, python, out = args
    try:
        with tempfile.TemporaryDirectory(prefix="eik_") as tmp:
            page = render_eik_page(record, record_id, options, generator, python, Path(tmp))
    except (EikError, subprocess.TimeoutExpired, OSError, ValueError) as exc:
        return record_id, None, f"{type(exc).__name__}: {exc}"
    folder = out / "train" / record_id
    folder.mkdir(parents=True, exist_ok=True)
    signals_frame(page.labels).to_csv(folder / f"{record_id}.csv", index=False, float_format="%.6f")
    try:
        write_image(folder / f"{record_id}-{IMAGE_TYPE}.png", page.image_rgb)
    except OSError as exc:
        return record_id, None, str(exc)
    page.labels.save(folder / f"{record_id}.labels")
    if page.sheet_map is not None:
        (folder / f"{record_id}-{IMAGE_TYPE}.map.json").write_text(json.dumps(page.sheet_map.to_dict()))
    info = {"fs": options.fs_hz, "variant": options.variant, "mapped": page.sheet_map is not None, **asdict(options)}
    return record_id, info, ""


def make_eik_dataset(out: Path, records: Sequence[Record], generator: Path, python: Path, seed: int = 0,
                     workers: int = 1, augmented: float = 0.0, fs_choices: Sequence[int] = SUPPORTED_FS_HZ,
                     first_id: int = 20_000, progress: bool = True) -> pd.DataFrame:
    """Render one page per record into ``out`` (train layout); returns the per-page options. A page the
    generator fails on is reported and left out (train.csv lists only pages that were written)."""
    generator = generator_dir(generator)
    python = Path(python).absolute()
    if not python.is_file():
        raise EikError(f"no ECG-Image-Kit environment at {python}: run `make eik-env EIK=<checkout>` first")
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    jobs = [(r, str(first_id + i), sample_options(rng, augmented, fs_choices), generator, python, out)
            for i, r in enumerate(records)]
    results = map_jobs(_job, jobs, workers, progress, "eik pages")
    failed = [(rid, why) for rid, info, why in results if info is None]
    for rid, why in failed:
        print(f"page {rid} left out: {why}", file=sys.stderr)
    written = [(rid, info) for rid, info, _ in results if info is not None]
    if not written:
        raise EikError(f"no page was written ({len(failed)} failed)")
    sources = {rid: rec for (rec, rid, *_rest) in jobs}
    pd.DataFrame({"id": [rid for rid, _ in written], "fs": [info["fs"] for _, info in written],
                  "sig_len": [int(round(10 * info["fs"])) for _, info in written]}).to_csv(out / "train.csv",
                                                                                         index=False)
    pd.DataFrame({"id": [rid for rid, _ in written], "source": [sources[rid].source for rid, _ in written],
                  "source_record": [sources[rid].record_id for rid, _ in written]}).to_csv(out / "records.csv",
                                                                                           index=False)
    variants = pd.DataFrame([{"image_id": f"{rid}-{IMAGE_TYPE}", "renderer": "ecg-image-kit",
                              "variant": info["variant"], "grid": info["grid"], "header": info["header"],
                              "pulse": info["pulse"], "augment": info["augment"], "wrinkles": info["wrinkles"],
                              "mapped": info["mapped"]}
                             for rid, info in written])
    variants.to_csv(out / "variants.csv", index=False)
    return variants


# ------------------------------------------------------------------------------------------------ pool


def pool_pages(folder: Path) -> list[Path]:
    """The page folders of a written set that can teach (their map onto the labels is written, and last)."""
    train = Path(folder) / "train"
    if not train.is_dir():
        return []
    return sorted(p for p in train.iterdir() if (p / f"{p.name}-{IMAGE_TYPE}.map.json").is_file())


def _read_drawing(folder: Path) -> tuple[SheetLabels, np.ndarray, SheetMap, bool]:
    """A written page's labels, image and map, and whether it is a plain drawing: the canonical sheet itself, not
    rotated, cropped or wrinkled by the generator."""
    rid = folder.name
    labels = SheetLabels.load(folder / f"{rid}.labels")
    image = read_rgb(folder / f"{rid}-{IMAGE_TYPE}.png")
    sheet_map = SheetMap.from_dict(json.loads((folder / f"{rid}-{IMAGE_TYPE}.map.json").read_text()))
    options = labels.style.get("eik_options", {})
    plain = (np.allclose(sheet_map.image_to_sheet_h, np.eye(3)) and image.shape[:2] == CANONICAL.shape_hw
             and not (options.get("augment") or options.get("wrinkles")))
    return labels, image, sheet_map, plain


def photographs(folder: Path, types: Sequence[str], rng_key: Sequence[int]) -> dict:
    """A written page's plain drawing through our degradation profiles of ``types`` (photos of a print, of a
    screen, stained, damaged...): {image type: :class:`~synth.degrade.Degraded` page with its exact map}, the
    j-th type drawn with ``np.random.default_rng([*rng_key, j])``; {} for a distorted drawing (left as drawn)."""
    from synth.degrade import degrade

    _, image, _, plain = _read_drawing(Path(folder))
    if not plain:
        return {}
    return {t: degrade(image, t, np.random.default_rng([*rng_key, j])) for j, t in enumerate(types)}


def photograph_dataset(out: Path, types: Sequence[str], seed: int = 0) -> list[str]:
    """Add to a written set, beside each plain drawing, that drawing through our degradation profiles of
    ``types`` (:func:`photographs`): ``<id>-<type>.png`` with its exact map. An evaluation of pages we did not
    draw, as the competition's own photographs are of the hosts' renders. Returns the ids photographed
    (distorted drawings are left as they are)."""
    done = []
    for k, folder in enumerate(pool_pages(out)):
        pages = photographs(folder, types, (seed, k))
        for image_type, page in pages.items():
            write_image(folder / f"{folder.name}-{image_type}.png", page.image_rgb)
            (folder / f"{folder.name}-{image_type}.map.json").write_text(json.dumps(page.sheet_map.to_dict()))
        if pages:
            done.append(folder.name)
    return done


def load_pool_page(folder: Path, rng: np.random.Generator, degrade_share: float = 0.5,
                   types: tuple[str, ...] | None = None) -> SynthPage:
    """A written page as a :class:`~synth.factory.SynthPage` for training. A plain drawing is, with probability
    ``degrade_share``, passed through one of our degradation profiles (scans, photos, mold: the competition's
    other eight types are its renders printed and scanned or photographed; ``types``: only these, a type named twice
    drawn twice as often; None: all eight); a distorted one is used as drawn."""
    from common.types import IMAGE_TYPES
    from synth.degrade import degrade
    from synth.factory import PageImage

    labels, image, sheet_map, plain = _read_drawing(Path(folder))
    profiles = [t for t in (IMAGE_TYPES if types is None else types) if t != IMAGE_TYPE]
    if plain and profiles and rng.random() < degrade_share:
        image_type = str(rng.choice(profiles))
        out = degrade(image, image_type, rng)
        return SynthPage(labels, image, {image_type: PageImage(image_type, out.image_rgb, out.sheet_map)})
    return SynthPage(labels, image, {IMAGE_TYPE: PageImage(IMAGE_TYPE, image, sheet_map)})


# ------------------------------------------------------------------------------------------------ viz


def draw_labels(image_rgb: np.ndarray, labels: SheetLabels, sheet_map: SheetMap) -> np.ndarray:
    """The labels drawn over the image (through its map): trace centres in green, baselines dashed in blue,
    lead-name boxes in magenta, pulse boxes in orange."""
    out = image_rgb.copy()
    x_sub = sub_column_x(CANONICAL.width_px, labels.x_upsample)
    for row_y in labels.row_y_px:
        ok = np.isfinite(row_y)
        pts = sheet_map.sheet_to_image(np.stack([x_sub[ok], row_y[ok].astype(np.float64)], axis=1))
        breaks = np.flatnonzero(np.diff(np.flatnonzero(ok)) > 1) + 1
        for part in np.split(pts, breaks):
            cv2.polylines(out, [np.round(part * 16).astype(np.int32)], False, (0, 200, 0), 1, cv2.LINE_AA, 4)
    for y in labels.baselines_y_px:
        xs = np.arange(0, CANONICAL.width_px, 24.0)
        for x in xs:
            seg = sheet_map.sheet_to_image(np.array([[x, y], [x + 10, y]], dtype=np.float64))
            cv2.line(out, tuple(np.round(seg[0]).astype(int)), tuple(np.round(seg[1]).astype(int)), (0, 90, 255), 1)
    for boxes, colour in ((labels.label_boxes_px, (220, 0, 220)), (labels.pulse_boxes_px, (255, 140, 0))):
        for box in boxes:
            if np.isfinite(box).all():
                corners = np.array([[box[0], box[1]], [box[2], box[1]], [box[2], box[3]], [box[0], box[3]]])
                pts = sheet_map.sheet_to_image(corners.astype(np.float64))
                cv2.polylines(out, [np.round(pts).astype(np.int32)], True, colour, 1)
    return out


def viz_dataset(data_dir: Path, viz_dir: Path, limit: int | None = None) -> list[Path]:
    """Overlay pictures of a written set's labels on its images."""
    viz_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for folder in sorted((data_dir / "train").iterdir())[:limit]:
        rid = folder.name
        map_path = folder / f"{rid}-{IMAGE_TYPE}.map.json"
        if not map_path.is_file():
            continue
        labels = SheetLabels.load(folder / f"{rid}.labels")
        sheet_map = SheetMap.from_dict(json.loads(map_path.read_text()))
        image = read_rgb(folder / f"{rid}-{IMAGE_TYPE}.png")
        path = viz_dir / f"{rid}-{IMAGE_TYPE}.labels.png"
        cv2.imwrite(str(path), cv2.cvtColor(draw_labels(image, labels, sheet_map), cv2.COLOR_RGB2BGR))
        written.append(path)
    return written


# ------------------------------------------------------------------------------------------------ CLI


def main(argv: Sequence[str] | None = None) -> int:
    from stage1_segment.data import split_records

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", type=Path, required=True, help="an ECG-Image-Kit checkout")
    parser.add_argument("--python", type=Path, default=DEFAULT_EIK_PYTHON,
                        help="the generator's environment (made by `make eik-env`)")
    parser.add_argument("--signals", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n-pages", type=int, default=None, help="default: one per record window of the split")
    parser.add_argument("--split", choices=["train", "val", "all"], default="train",
                        help="stage 1's record split to draw from (val: the held-out records)")
    parser.add_argument("--augmented", type=float, default=0.0,
                        help="share of pages with the generator's augmentations and/or wrinkles")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--viz", type=Path, default=None, help="also draw the labels over each page here")
    args = parser.parse_args(argv)
    if not 0.0 <= args.augmented <= 1.0:
        parser.error("--augmented is a share between 0 and 1")
    try:
        generator = generator_dir(args.generator)
    except EikError as exc:
        parser.error(str(exc))
    train, val, _ = split_records(args.signals)
    pool = {"train": train, "val": val, "all": train + val}[args.split]
    if not pool:
        parser.error(f"no 12-lead records of 10 s or more under {args.signals}")
    order = np.random.default_rng(args.seed).permutation(len(pool))
    n = args.n_pages or len(pool)
    records = [pool[order[i % len(pool)]] for i in range(n)]
    try:
        variants = make_eik_dataset(args.out, records, generator, args.python, args.seed, args.workers,
                                    args.augmented)
    except EikError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {len(variants)} of {n} pages to {args.out}")
    if args.viz:
        print(f"label overlays: {len(viz_dataset(args.out, args.viz))} under {args.viz}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
