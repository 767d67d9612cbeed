"""Rectify every image in a folder with the grid rectifier, or with the keypoint route (``--bundle``).

    python -m stage0_rectify.run --images DIR --out DIR [--viz] [--contracts] [--metadata CSV]
                                 [--bundle weights/stage0_rectify]

Writes ``OUT/<stem>.png`` (the 2200x1700 canonical sheet) and one JSON line per input to
``OUT/results.jsonl``: file, ok, px_per_mm (the image's own), angle_deg, method, confidence, seconds, the
image -> sheet homography and details; or ok=false with the reason (unreadable, too small, ...); the run goes
on either way. ``--viz`` adds ``OUT/viz/<stem>.jpg``: the input with the gridded area and pulses marked, and
the sheet with the canonical 5 mm grid drawn over it (lines on the page's own grid mean a right scale).
``--metadata`` (a CSV/TSV with fname and dpi columns) adds the expected px/mm = dpi / 25.4 to each line.
``--bundle`` rectifies as the pipeline does with a keypoint bundle (:mod:`stage0_rectify.infer`): the line
then also holds the route's details under "keypoints", and the preview marks the corners the network found
(top-left blue, top-right green, bottom-right red, bottom-left yellow, in sheet terms) and the page outline
of the map that was used (magenta).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from common.geometry import CANONICAL
from common.sheet_map import SheetMap
from common.types import Rectified
from stage0_rectify.grid import as_rgb, estimate_grid, residual_grid_px
from stage0_rectify.infer import KeypointRectifier

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def read_image(path: Path) -> np.ndarray:
    """RGB uint8 of an image file; raises ValueError with the reason when it cannot be used."""
    data = np.fromfile(str(path), dtype=np.uint8)
    if data.size == 0:
        raise ValueError("empty file")
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError("not a readable image (OpenCV could not decode it)")
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    return as_rgb(img)


def read_metadata(path: Path | None) -> dict[str, float]:
    """fname -> dpi from a CSV or TSV with columns fname, dpi (blank dpi skipped)."""
    if path is None:
        return {}
    text = path.read_text()
    dialect = csv.excel_tab if "\t" in text.splitlines()[0] else csv.excel
    out = {}
    for row in csv.DictReader(text.splitlines(), dialect=dialect):
        try:
            out[row["fname"].strip()] = float(row["dpi"])
        except (KeyError, TypeError, ValueError):
            continue
    return out


CORNER_COLOURS = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 255, 255))  # BGR: TL blue, TR green, BR red, BL yellow


def _viz(rgb: np.ndarray, sheet: np.ndarray, est, path: Path, label: str | None = None,
         corners=None, sheet_map: SheetMap | None = None) -> None:
    """Input (gridded area, pulses; keypoint corners and the map's page outline) | sheet with the canonical
    5 mm grid; 1100 px wide each."""
    left = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    s = 1100.0 / max(left.shape[:2])
    left = cv2.resize(left, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    quad = est.info.get("grid_quad_px")
    if quad:
        cv2.polylines(left, [np.round(np.array(quad) * s).astype(np.int32)], True, (255, 160, 0), 2)
    for b in est.info.get("pulse_boxes", []):
        cv2.rectangle(left, (int(b[0] * s), int(b[1] * s)), (int(b[2] * s), int(b[3] * s)), (0, 0, 255), 2)
    if sheet_map is not None:
        outline = sheet_map.sheet_to_image(CANONICAL.corners_px()) * s
        cv2.polylines(left, [np.round(outline).astype(np.int32)], True, (255, 0, 255), 2)
    for k, c in enumerate(corners or []):
        cv2.circle(left, (int(round(c[0] * s)), int(round(c[1] * s))), 7, CORNER_COLOURS[k], -1)
    label = label or f"{est.method} {est.px_per_mm:.3f} px/mm {est.angle_deg:+.2f} deg conf {est.confidence:.2f}"
    cv2.putText(left, label, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 255), 2, cv2.LINE_AA)
    right = cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)
    pitch = 5 * CANONICAL.px_per_mm
    for x in np.arange(0, CANONICAL.width_px, pitch):
        cv2.line(right, (int(round(x)), 0), (int(round(x)), CANONICAL.height_px - 1), (200, 120, 0), 1)
    for y in np.arange(0, CANONICAL.height_px, pitch):
        cv2.line(right, (0, int(round(y))), (CANONICAL.width_px - 1, int(round(y))), (200, 120, 0), 1)
    right = cv2.resize(right, (1100, 850), interpolation=cv2.INTER_AREA)
    canvas = np.full((max(left.shape[0], 850), left.shape[1] + 1100 + 10, 3), 255, np.uint8)
    canvas[: left.shape[0], : left.shape[1]] = left
    canvas[:850, left.shape[1] + 10 :] = right
    cv2.imwrite(str(path), canvas, [cv2.IMWRITE_JPEG_QUALITY, 85])


def rectify_file(path: Path, out_dir: Path, viz: bool, contracts: bool, dpi: float | None = None,
                 rectifier: KeypointRectifier | None = None) -> dict:
    rec: dict = {"file": path.name}
    if dpi is not None:
        rec["metadata_px_per_mm"] = round(dpi / 25.4, 5)
    t0 = time.perf_counter()
    try:
        rgb = read_image(path)
        rec["image_hw"] = list(rgb.shape[:2])
        if rectifier is None:
            est = estimate_grid(rgb)
            sheet_map = SheetMap(est.image_to_sheet_h)
            rectified = Rectified(path.stem, sheet_map.rectify(rgb), sheet_map, CANONICAL.px_per_mm, est.method,
                                  est.confidence, residual_grid_px(est))
        else:
            rectified = rectifier.rectify(rgb, path.stem)
            est = rectifier.last_estimate
        rec["seconds"] = round(time.perf_counter() - t0, 4)
        cv2.imwrite(str(out_dir / f"{path.stem}.png"), cv2.cvtColor(rectified.sheet_rgb, cv2.COLOR_RGB2BGR))
        if contracts:
            rectified.save(out_dir / "contracts" / path.stem)
        if viz:
            label = None
            if rectifier is not None:
                label = f"{rectified.method} conf {rectified.confidence:.2f} (grid: {est.method} {est.confidence:.2f})"
            _viz(rgb, rectified.sheet_rgb, est, out_dir / "viz" / f"{path.stem}.jpg", label,
                 None if rectifier is None else rectifier.last_info.get("corners_px"), rectified.sheet_map)
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop the run; the reason is recorded
        rec.update(ok=False, error=f"{type(exc).__name__}: {exc}", seconds=round(time.perf_counter() - t0, 4))
        return rec
    rec.update(ok=True, **est.to_json())
    rec["residual_grid_px"] = None if rectified.residual_grid_px is None else round(rectified.residual_grid_px, 3)
    if rectifier is not None:
        rec.update(method=rectified.method, confidence=round(rectified.confidence, 3),
                   image_to_sheet_h=np.round(rectified.sheet_map.image_to_sheet_h, 8).tolist(),
                   keypoints=rectifier.last_info)
    if dpi is not None:
        rec["ratio_to_metadata"] = round(est.px_per_mm / (dpi / 25.4), 4)
    return rec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", required=True, type=Path, help="folder of png/jpg/jpeg/bmp images")
    ap.add_argument("--out", required=True, type=Path, help="output folder")
    ap.add_argument("--viz", action="store_true", help="also write side-by-side previews to OUT/viz")
    ap.add_argument("--contracts", action="store_true", help="also save Rectified contracts to OUT/contracts")
    ap.add_argument("--metadata", type=Path, default=None, help="CSV/TSV with fname, dpi (expected px/mm)")
    ap.add_argument("--bundle", type=Path, default=None, help="keypoint bundle: rectify as the pipeline does")
    args = ap.parse_args(argv)
    if not args.images.is_dir():
        print(f"error: {args.images} is not a folder", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    if args.viz:
        (args.out / "viz").mkdir(exist_ok=True)
    meta = read_metadata(args.metadata)
    try:
        rectifier = None if args.bundle is None else KeypointRectifier.from_bundle(args.bundle)
    except (FileNotFoundError, ValueError) as exc:  # no bundle there, or an incomplete or altered one
        ap.error(str(exc))
    files = sorted(p for p in args.images.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    counts: dict[str, int] = {}
    with open(args.out / "results.jsonl", "w") as fh:
        for path in files:
            rec = rectify_file(path, args.out, args.viz, args.contracts, meta.get(path.name), rectifier)
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
            key = rec.get("method", "error") if rec["ok"] else "error"
            counts[key] = counts.get(key, 0) + 1
            status = (f"{rec['method']:<10} {rec['px_per_mm']:8.3f} px/mm {rec['angle_deg']:+6.2f} deg "
                      f"conf {rec['confidence']:.2f}" if rec["ok"] else f"ERROR {rec['error']}")
            print(f"{path.name:<32} {status}  {rec.get('seconds', 0):.2f}s", file=sys.stderr)
    print(f"{len(files)} images: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
