"""What the source classifier and the keypoint route of stage 0 cost on top of the grid rectifier alone.

    python -m benchmarks.bench_stage0 [--pages-per-type 2] [--types 0001,...,0012] [--threads 2] [--weights weights]

Renders the pages first (not timed), then times, page by page and side by side in this process with
``--threads`` torch and OpenCV threads: the grid rectifier alone (``rectify_from_grid``), stage 0 as the pipeline
runs it (``Pipeline.rectify`` with the classifier's route: the grid rectifier, and the keypoint network, its
homography and the grid's displacement field where the grid cannot undo the view), and the source classifier.
Prints the mean seconds per page for each, per image type and overall, and what the pipeline's stage 0 plus the
classifier add over the grid rectifier (issue target: at most 0.6 s a page on 2 threads).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from common.types import IMAGE_TYPES, Page
from pipeline.__main__ import DEFAULT_WEIGHTS
from pipeline.chain import Pipeline
from synth.factory import make_page
from synth.signals import simulate_record


def _seconds(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages-per-type", type=int, default=2)
    parser.add_argument("--types", default=",".join(IMAGE_TYPES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    args = parser.parse_args(argv)
    import cv2
    import torch

    from source_classifier.infer import SourceClassifier
    from source_classifier.routing import route
    from stage0_rectify.grid import rectify_from_grid

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    types = [t for t in args.types.split(",") if t]
    unknown = sorted(set(types) - set(IMAGE_TYPES))
    if unknown:
        parser.error(f"unknown image types {unknown}; known: {','.join(IMAGE_TYPES)}")
    pages = []
    for i in range(args.pages_per_type):
        synth = make_page(simulate_record(np.random.default_rng([11, i])), i, 11, types, layouts=["3x4+II"])
        pages += [Page(f"{i}-{t}", synth.images[t].image_rgb, synth.labels.fs_hz) for t in types]
    pipeline = Pipeline.from_bundles(args.weights)
    classifier = SourceClassifier.from_bundle(f"{args.weights}/source_classifier", num_threads=args.threads)
    # warm-up: first-call allocations and kernel selection are not per-page costs
    pipeline.rectify(pages[0])
    classifier(pages[0])
    rows = []
    for page in pages:
        settings = route(classifier(page))  # what the pipeline hands stage 0 (a screen is taken as flat)
        rows.append((page.image_id.rsplit("-", 1)[1], _seconds(rectify_from_grid, page),
                     _seconds(pipeline.rectify, page, settings), _seconds(classifier, page)))
    table = np.array([r[1:] for r in rows])
    print(f"seconds per page, {args.threads} threads: type | grid rectifier | pipeline stage 0 | classifier | added")
    for t in types:
        sel = table[[r[0] == t for r in rows]]
        grid, stage0, cls = sel.mean(axis=0)
        print(f"{t} | {grid:.3f} | {stage0:.3f} | {cls:.3f} | {stage0 + cls - grid:+.3f}")
    grid, stage0, cls = table.mean(axis=0)
    worst = float(np.max(table[:, 1] + table[:, 2] - table[:, 0]))
    print(f"all ({len(rows)} pages) | {grid:.3f} | {stage0:.3f} | {cls:.3f} | {stage0 + cls - grid:+.3f} "
          f"(worst page {worst:+.3f})")


if __name__ == "__main__":
    main()
