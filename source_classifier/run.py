"""Name the image type of pictures of ECGs: ``python -m source_classifier.run IMAGE_OR_FOLDER [...]
[--bundle weights/source_classifier] [--viz DIR] [--threads 2]``.

Prints one line per image: its type, the top probability (``LOW`` when under the bundle's threshold, then
the pipeline routes it with the general settings), the route, and every type's probability. ``--viz DIR``
writes ``<stem>.types.png``: the image with a bar per type beside it (the chosen one in colour, the
threshold as a line).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from common.types import IMAGE_TYPES, Page, SourcePrediction
from synth.degrade import IMAGE_TYPE_NAMES

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
VIZ_HEIGHT_PX = 480  # height of the picture in the visualisation


def iter_images(paths: list[Path]) -> Iterator[Path]:
    """Image files among ``paths`` and inside folders among them (sorted, not recursive)."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            yield path
        else:
            raise FileNotFoundError(f"{path} is neither an image file nor a folder")


def visualise(image_rgb: np.ndarray, pred: SourcePrediction) -> np.ndarray:
    """RGB picture: the image scaled to VIZ_HEIGHT_PX high, then a bar chart of the nine probabilities."""
    h = VIZ_HEIGHT_PX
    w = max(1, int(round(image_rgb.shape[1] * h / image_rgb.shape[0])))
    left = cv2.resize(image_rgb, (w, h), interpolation=cv2.INTER_AREA)
    panel = np.full((h, 640, 3), 255, np.uint8)
    top, row_h, bar_x, bar_w = 40, (h - 60) // len(IMAGE_TYPES), 350, 220
    title = f"{pred.image_type} p={pred.confidence:.2f}" + ("  LOW: general route" if pred.low_confidence else "")
    cv2.putText(panel, title, (10, 26), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 2, cv2.LINE_AA)
    for i, t in enumerate(IMAGE_TYPES):
        y = top + i * row_h
        p = float(pred.probabilities[i])
        colour = (200, 40, 40) if t == pred.image_type else (120, 120, 120)
        cv2.putText(panel, f"{t} {IMAGE_TYPE_NAMES[t][:32]}", (10, y + row_h // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX,
                    0.42, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.rectangle(panel, (bar_x, y + 4), (bar_x + int(round(p * bar_w)), y + row_h - 4), colour, -1)
        cv2.putText(panel, f"{p:.2f}", (bar_x + bar_w + 6, y + row_h // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.42,
                    (0, 0, 0), 1, cv2.LINE_AA)
    tx = bar_x + int(round(pred.threshold * bar_w))
    cv2.line(panel, (tx, top), (tx, top + len(IMAGE_TYPES) * row_h), (0, 0, 0), 1)
    return np.concatenate([left, panel], axis=1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m source_classifier.run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", type=Path, nargs="+", help="image files and/or folders of images")
    ap.add_argument("--bundle", type=Path, default=Path("weights/source_classifier"))
    ap.add_argument("--viz", type=Path, default=None, help="folder for <stem>.types.png pictures")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    from pipeline.image_io import ImageReadError, read_image
    from source_classifier.infer import SourceClassifier
    from source_classifier.routing import route

    try:
        clf = SourceClassifier.from_bundle(args.bundle, num_threads=args.threads)
    except (FileNotFoundError, ValueError) as exc:  # no bundle there, or an incomplete or altered one
        ap.error(str(exc))
    if args.viz is not None:
        args.viz.mkdir(parents=True, exist_ok=True)
    times, failures = [], 0
    for path in iter_images(args.inputs):
        try:
            rgb = read_image(path).rgb
        except ImageReadError as exc:
            print(f"{path.name}: cannot read: {exc}", file=sys.stderr)
            failures += 1
            continue
        t0 = time.perf_counter()
        pred = clf(Page(path.stem, rgb, fs_hz=500.0))
        times.append(time.perf_counter() - t0)
        probs = " ".join(f"{t}:{p:.3f}" for t, p in zip(IMAGE_TYPES, pred.probabilities, strict=True))
        flag = " LOW" if pred.low_confidence else ""
        print(f"{path.name}: {pred.image_type} p={pred.confidence:.3f}{flag} route={route(pred).route} [{probs}]",
              flush=True)
        if args.viz is not None:
            cv2.imwrite(str(args.viz / f"{path.stem}.types.png"), cv2.cvtColor(visualise(rgb, pred), cv2.COLOR_RGB2BGR))
    if not times:
        print("no images classified", file=sys.stderr)
        return 1
    print(f"{len(times)} images, {1000 * np.mean(times):.0f} ms/image mean on {args.threads} threads"
          + (f", {failures} unreadable" if failures else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
