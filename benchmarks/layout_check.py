"""How often the layout finder (:mod:`stage1_segment.layout_finder`) reads a page's layout right, per layout.

    python -m benchmarks.layout_check --data-dir DIR [--types 0001,0003] [--stage0] [--threads 2] [--out CSV]

``--data-dir`` is a train-layout folder written by ``synth.make``, ``benchmarks.make_eval_set`` or ``synth.eik``
(each record's labels and each image's exact map onto the sheet beside the images). Each image is put on the
sheet by its exact map (the finder alone is measured), or by stage 0 as the pipeline runs it (``--stage0``:
:meth:`pipeline.chain.Pipeline.rectify` with the bundles of ``--weights``, the keypoint route and the grid's
corrections included; the truth is carried into the rectified sheet through both maps); as in the pipeline,
time axes ruled under the rows are painted out first (:mod:`stage1_segment.ruled_lines`). A page is right when
it has the labelled number of rows, every panel's start and end lie within 1 mm of the labelled ones (the
layout's panel times from the labelled origin x0) and the layout's name is right: its base layout, and a gap
between panels found where one is printed (its width is what the extents check; the lead order is not read, so
a Cabrera page is right found in the standard order);
``layout_right`` also asks the found layout's lead order to be the printed one (Cabrera's, the rhythm strips'
order: what the lead names read chose, or the prior without a name reader: the order the pipeline reads the page
by); ``leads_right`` asks every panel's lead as the finder reports it (``FoundRow.leads``: a name read surely, the
layout's own elsewhere; drawn by ``benchmarks.layout_sheet``) to be the printed one. An
image without its ``.map.json``, such as a warped ECG-Image-Kit page, is listed and not scored. Pages are grouped
by their base layout and arrangement ("3x4+II/gap" for any gap). Also printed: pulses right (a row's pulse
found where one is printed, its centre within 1 mm, and none found where none is), the rows' baseline error
(found vs the labelled 0 mV line, sheet px), and the finder's time per page on ``--threads`` threads: wall
clock (``seconds``) and CPU time over all threads (``cpu_s``; on a shared machine the wall clock includes
waiting for a core).

With the lead-name reader (``--names``, default ``weights/lead_names``; ``--no-names`` to leave it out) the
finder reads each panel's printed name too (its time is in ``seconds``): ``panel_names`` is the share of the
labelled panels whose name was read right (its most probable class, confident or not; "-aVR" for Cabrera's
inverted aVR), ``page_names`` the share of pages with every name right, ``right_named`` the share of pages right
with every name right.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from common.geometry import CANONICAL
from common.layouts import Placement, base_name, gap_mm_of, get_layout
from common.sheet_map import SheetMap
from common.types import Page
from pipeline.chain import Pipeline, read_image_rgb
from stage1_segment.layout_finder import FoundLayout, find_layout, printed_name
from stage1_segment.ruled_lines import without_ruled_lines
from synth.make import parse_types

TOL_PX = CANONICAL.px_per_mm  # 1 mm


def truth_of(labels_json: Path) -> dict:
    """Layout name, baselines, per row the panels' (x_start, x_end) and the pulse boxes, canonical sheet px."""
    meta = json.loads(labels_json.read_text())
    layout = get_layout(meta["layout_name"])
    placement = Placement(meta["x0_px"], tuple(meta["baselines_y_px"]))
    panels = [[(float(placement.panel_x_px(p, p.t0_s)), float(placement.panel_x_px(p, p.t1_s)))
               for p in layout.row_panels(k)] for k in range(layout.n_rows)]
    with np.load(labels_json.with_suffix(".npz")) as z:
        pulses = z["pulse_boxes_px"].astype(np.float64)
    names = [[printed_name(p) for p in layout.row_panels(k)] for k in range(layout.n_rows)]
    return {"layout": layout.name, "baselines": np.asarray(meta["baselines_y_px"], dtype=np.float64),
            "panels": panels, "pulses": pulses, "names": names,
            "leads": [[p.lead for p in layout.row_panels(k)] for k in range(layout.n_rows)]}


def leads_right(found: FoundLayout, truth: dict) -> bool:
    """Whether every panel is read as its printed lead: the leads the found layout gives its panels (the names read
    surely, the layout's own elsewhere) are the labelled ones, row by row."""
    if found.n_rows != len(truth["leads"]):
        return False
    return all(row.leads is not None and list(row.leads) == leads
               for row, leads in zip(found.rows, truth["leads"], strict=True))


def score_names(found: FoundLayout, truth: dict) -> dict:
    """Share of the labelled panels whose printed name was read right, and whether all were (a row found with
    another panel count, or a row missing, reads none right)."""
    right, total, wrong = 0, sum(len(n) for n in truth["names"]), []
    if found.n_rows == len(truth["names"]):
        for row, names in zip(found.rows, truth["names"], strict=True):
            if row.names is not None and len(row.names) == len(names):
                right += sum(read == name for (read, _), name in zip(row.names, names, strict=True))
                wrong += [f"{name}->{read}" for (read, _), name in zip(row.names, names, strict=True) if read != name]
    return {"panel_names": right / total, "page_names": right == total, "names_wrong": " ".join(wrong)}


def _to_sheet(true_map: SheetMap, found_map: SheetMap | None, xy: np.ndarray) -> np.ndarray:
    """Canonical-sheet points of the labels into the sheet the finder saw."""
    if found_map is None:
        return xy
    return found_map.image_to_sheet(true_map.sheet_to_image(xy))


def layout_kind(name: str) -> str:
    """A layout name without its gap's width ("3x4+II/cabrera/gap4.2mm" -> "3x4+II/cabrera/gap")."""
    return name.split("/gap", 1)[0] + ("/gap" if gap_mm_of(name) > 0 else "")


def name_right(found: str | None, true: str) -> bool:
    """The base layout found, with a gap where one is printed (see the module doc)."""
    return found is not None and base_name(found) == base_name(true) and (gap_mm_of(found) > 0) == (
        gap_mm_of(true) > 0)


def score_page(found: FoundLayout, truth: dict, true_map: SheetMap, found_map: SheetMap | None) -> dict:
    n_true = len(truth["baselines"])
    out = {"rows_right": found.n_rows == n_true, "name_right": name_right(found.layout_name, truth["layout"]),
           "extents_right": False, "pulses_right": False, "baseline_err_px": np.nan, "extent_err_px": np.nan}
    if not out["rows_right"]:
        return out
    errs, panels_match, base_errs, pulses_ok = [], True, [], True
    for k, (row, y_true) in enumerate(zip(found.rows, truth["baselines"], strict=True)):
        ends = np.array([[x, y_true] for pair in truth["panels"][k] for x in pair])
        ends = _to_sheet(true_map, found_map, ends)
        base_errs.append(abs(row.y_px - float(ends[:, 1].mean())))
        if len(row.panels) != len(truth["panels"][k]):
            panels_match = False
            continue
        errs.extend(np.abs(np.asarray(row.panels, dtype=np.float64).ravel() - ends[:, 0]).tolist())
        box = truth["pulses"][k]
        if np.isfinite(box).all():
            centre = _to_sheet(true_map, found_map, np.array([[0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3])]]))
            pulses_ok &= row.pulse is not None and abs(0.5 * (row.pulse[0] + row.pulse[2]) - centre[0, 0]) <= TOL_PX
        else:
            pulses_ok &= row.pulse is None
    out["baseline_err_px"] = float(np.max(base_errs))
    if panels_match and errs:
        out["extent_err_px"] = float(np.max(errs))
        out["extents_right"] = out["extent_err_px"] <= TOL_PX
    out["pulses_right"] = bool(pulses_ok)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.layout_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--types", type=parse_types, default=None, help="comma-separated image types (default all)")
    parser.add_argument("--stage0", action="store_true", help="rectify with stage 0 instead of the exact map")
    parser.add_argument("--weights", type=Path, default=Path("weights"), help="bundles of stage 0 (with --stage0)")
    parser.add_argument("--threads", type=int, default=2, help="OpenCV threads for the finder")
    parser.add_argument("--names", type=Path, default=Path("weights/lead_names"), help="lead-name bundle")
    parser.add_argument("--no-names", action="store_true", help="do not read the lead names")
    parser.add_argument("--out", type=Path, default=None, help="per-page CSV")
    args = parser.parse_args(argv)
    cv2.setNumThreads(args.threads)
    pngs = sorted((args.data_dir / "train").glob("*/*-*.png"))
    if args.types:
        pngs = [p for p in pngs if p.stem.rsplit("-", 1)[1] in args.types]
    if not pngs:
        parser.error(f"no train-layout images under {args.data_dir}/train")
    reader = None
    if not args.no_names:
        import torch

        from stage1_segment.lead_names import LeadNameReader

        torch.set_num_threads(args.threads)
        reader = LeadNameReader.from_bundle(args.names)
    pipeline = Pipeline.from_bundles(args.weights) if args.stage0 else None
    rows, unmapped = [], []
    for png in pngs:
        record = png.parent.name
        if not png.with_suffix(".map.json").exists():  # an image whose map onto the sheet is not known
            unmapped.append(png.stem)
            continue
        truth = truth_of(png.parent / f"{record}.labels.json")
        true_map = SheetMap.from_dict(json.loads(png.with_suffix(".map.json").read_text()))
        image = read_image_rgb(png)
        found_map = None
        if pipeline is not None:
            rectified = pipeline.rectify(Page(png.stem, image, 500.0))
            sheet, found_map = rectified.sheet_rgb, rectified.sheet_map
        else:
            sheet = true_map.rectify(image)
        t, cpu = time.perf_counter(), time.process_time()
        found = find_layout(without_ruled_lines(sheet), reader)
        seconds, cpu_s = time.perf_counter() - t, time.process_time() - cpu
        score = score_page(found, truth, true_map, found_map)
        score["right"] = score["rows_right"] and score["extents_right"] and score["name_right"]
        # the layout the page is then read by, every panel's lead included (the order the names chose)
        score["layout_right"] = score["right"] and layout_kind(found.layout_name or "") == layout_kind(truth["layout"])
        score["leads_right"] = score["right"] and leads_right(found, truth)
        if reader is not None:
            score.update(score_names(found, truth))
            score["right_named"] = score["right"] and score["page_names"]
        rows.append({"image": png.stem, "layout": layout_kind(truth["layout"]), "found": found.layout_name,
                     "n_rows": found.n_rows, "confidence": round(found.confidence, 3), "seconds": seconds,
                     "cpu_s": cpu_s, **score})
    if unmapped:
        print(f"{len(unmapped)} images without a map onto the sheet are not scored: {', '.join(unmapped)}")
    if not rows:
        parser.error("no image with a map onto the sheet to score")
    df = pd.DataFrame(rows)
    if args.out:
        df.to_csv(args.out, index=False)
    named = ("panel_names", "page_names", "right_named") if reader is not None else ()
    pct = {c: (c, lambda s: 100.0 * s.mean()) for c in ("rows_right", "extents_right", "name_right", "right",
                                                          "layout_right", "leads_right", "pulses_right",
                                                          *named)}
    table = df.groupby("layout").agg(pages=("image", "size"), **pct,
                                     baseline_err_px=("baseline_err_px", "median"),
                                     extent_err_px=("extent_err_px", "median"), seconds=("seconds", "mean"),
                                     cpu_s=("cpu_s", "mean"))
    total = df.agg({"image": "size", **{c: lambda s: 100.0 * s.mean() for c in pct},
                    "baseline_err_px": "median", "extent_err_px": "median", "seconds": "mean", "cpu_s": "mean"})
    table.loc["all"] = total.values
    print(table.round(2).to_string())
    wrong = df[~df["right"]]
    if len(wrong):
        print("\nwrong pages:")
        print(wrong[["image", "layout", "found", "n_rows", "confidence", "extent_err_px"]].to_string(index=False))
    if reader is not None and not df["page_names"].all():
        print("\npages with names read wrong (printed->read):")
        print(df[~df["page_names"].astype(bool)][["image", "layout", "found", "names_wrong"]].to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
