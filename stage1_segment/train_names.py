"""Train the lead-name glyph classifier (:mod:`stage1_segment.lead_names`) on CPU.

    python -m stage1_segment.train_names --signals ../shared/data/signals --out weights/lead_names \
        [--pool /work/pool/eik_train /work/pool/eik_train2] [--pool-val /work/pool/eik_val] [--pages 400]
        [--pool-pages 200] [--synthetic 3000] [--minutes 10] [--seed 7] [--init BUNDLE]
        [--time-marks SHARE] [--gaps SHARE] [--outside-pulse SHARE] ...

Factory training pages take the arrangements of :mod:`synth.make` at the shares given (time marks, gaps, the pulse
outside the row, ...: ``--time-marks 0.4`` puts ticks or an axis under the panels of 40 % of them).

The crops are cut once, then trained on for ``--minutes``:

* factory pages of the training records (:func:`stage1_segment.data.split_records`), drawn on the fly in every
  layout, style (fonts, sizes, colours; 30 % with ECG-Image-Kit's look, names below the baseline) and image type
  (its degradations), rectified through their exact maps; on :data:`CABRERA_SHARE` of them the aVR name is
  redrawn as "-aVR" in the page's font (Cabrera's inverted aVR);
* ECG-Image-Kit pages from ``--pool`` folders (as stage 1 reads them, half of the plain ones degraded);
* ``--synthetic`` names drawn in matplotlib's TrueType fonts (DejaVu, STIX, Computer Modern: faces neither
  renderer uses) over windows that hold no name.

Each panel gives its two windows at the labelled start, jittered by up to :data:`JITTER_X_PX` and
:data:`JITTER_Y_PX` (the finder's error), plus two at a place inside the panel (mostly "none"). A window's class
is the name whose box lies inside it, "none" without one; a window that cuts a name, or holds two, is left out.
Validation: factory pages of the held-out records (another seed) and the ``--pool-val`` pages, unjittered.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from common.geometry import CANONICAL
from common.layouts import LAYOUTS, get_layout
from common.types import IMAGE_TYPES
from common.weights import save_model_bundle
from stage1_segment.data import split_records
from stage1_segment.lead_names import (
    NAMES,
    NONE,
    NameNet,
    bright_channel,
    cut,
    normalise,
    window_boxes,
    window_config,
)
from synth.make import add_arrangement_args, arrangements_from

JITTER_X_PX = 12.0  # sheet px: the finder's panel starts are within 1 mm (8 px) of the truth
JITTER_Y_PX = 10.0  # sheet px: its baselines within a few px
CABRERA_SHARE = 0.3  # factory pages whose aVR is printed "-aVR"
EIK_LOOK = 0.3  # factory pages with ECG-Image-Kit's marks (names below the baseline)
BOX_SLACK_PX = 3.0  # a name's box may reach this far beyond its window and still count as inside it
INSIDE_S = (0.6, 1.9)  # s after a panel's start: where its extra (mostly "none") windows stand
TTF_FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSansMono.ttf",
             "DejaVuSansMono-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf",
             "STIXGeneral.ttf", "STIXGeneralBol.ttf", "cmr10.ttf", "cmss10.ttf", "cmtt10.ttf", "cmb10.ttf")


# --- crops of a page ------------------------------------------------------------------------------------
def window_class(box: tuple[int, int, int, int], name_boxes: np.ndarray, names: list[str]) -> int | None:
    """The class of a window: the name whose box lies inside it, NONE without one, None when it cuts a name
    or holds two. Boxes lose their lowest quarter (the descender room of the renderers' text boxes; no lead
    name has a descender)."""
    x0, y0, x1, y1 = box
    found = []
    for (bx0, by0, bx1, by1), name in zip(name_boxes, names, strict=True):
        if not np.isfinite([bx0, by0, bx1, by1]).all():
            continue
        by1 = by1 - 0.25 * (by1 - by0)
        if bx1 <= x0 or bx0 >= x1 or by1 <= y0 or by0 >= y1:
            continue
        s = BOX_SLACK_PX
        if bx0 < x0 - s or bx1 > x1 + s or by0 < y0 - s or by1 > y1 + s:
            return None
        found.append(name)
    if len(found) > 1:
        return None
    return NAMES.index(found[0]) if found else NONE


def page_crops(sheet: np.ndarray, layout_name: str, x0_px: float, baselines: tuple, names: list[str],
               name_boxes: np.ndarray, rng: np.random.Generator | None, keep_raw: list | None = None):
    """(crops, classes) of a rectified page whose labels are given; ``rng`` None: unjittered, no extra windows
    (validation). ``keep_raw`` collects sheet-resolution "none" windows (backgrounds for synthetic names)."""
    bright = bright_channel(sheet)
    layout = get_layout(layout_name)
    crops, classes = [], []
    for k in range(layout.n_rows):
        for panel in layout.row_panels(k):
            x_s = x0_px + panel.x_offset_s * CANONICAL.px_per_s
            places = [(x_s, baselines[k])]
            if rng is not None:
                places = [(x_s + rng.uniform(-JITTER_X_PX, JITTER_X_PX), baselines[k] + rng.uniform(-JITTER_Y_PX,
                                                                                                      JITTER_Y_PX)),
                          (x_s + rng.uniform(*INSIDE_S) * CANONICAL.px_per_s, baselines[k])]
            for x, y in places:
                for box in window_boxes(x, y):
                    c = window_class(box, name_boxes, names)
                    if c is None:
                        continue
                    raw = cut(bright, box)
                    crops.append(normalise(raw))
                    classes.append(c)
                    if keep_raw is not None and c == NONE and len(keep_raw) < 4000:
                        keep_raw.append(raw)
    return crops, classes


def redraw_name(sheet: np.ndarray, labels, style, k: int, text: str) -> np.ndarray:
    """Print ``text`` in place of the name of panel ``k`` (``labels.panel_leads`` order) of a factory page drawn
    in ``style``, in its font: the name's box is painted back to the grid (the trace's pixels kept), then
    ``text`` drawn from its left end on its baseline. Returns the new box (sheet px x0, y0, x1, y1)."""
    from synth.render import HERSHEY_FONTS, _put_text, draw_grid

    x0, y0, x1, y1 = (int(v) for v in labels.label_boxes_px[k])
    grid = np.empty_like(sheet)
    draw_grid(grid, style)
    row = [p.row for r in range(labels.layout.n_rows) for p in labels.layout.row_panels(r)][k]
    ys, xs = slice(max(y0 - 3, 0), y1 + 3), slice(max(x0 - 3, 0), x1 + 3)
    trace = labels.row_masks[row][ys, xs] > 0
    sheet[ys, xs] = np.where(trace[..., None], sheet[ys, xs], grid[ys, xs])
    thickness = max(1, int(round(style.font_scale * 1.6)))  # the renderer's rule
    (_, th), _ = cv2.getTextSize(labels.panel_leads[k], HERSHEY_FONTS[style.font], style.font_scale, thickness)
    return _put_text(sheet, text, (x0, y0 + th), style, style.font_scale, (0, 0, 0))


def factory_crops(record, index: int, seed: int, jitter: bool, keep_raw: list | None = None, arrangements=None):
    """Crops of one factory page of ``record`` (see the module doc), drawn in ``arrangements`` at their shares
    (:class:`synth.render.Arrangements`; None: none)."""
    from synth.degrade import degrade
    from synth.factory import page_rng
    from synth.render import render_page, sample_style
    from synth.signals import enforce_einthoven, prepare

    rng = page_rng(seed, index)
    fs_hz = int(rng.choice([250, 500, 1000]))
    signals = enforce_einthoven(prepare(record, fs_hz).leads_mv)
    style = sample_style(rng, str(rng.choice(list(LAYOUTS))), EIK_LOOK, arrangements)
    page = render_page(signals, fs_hz, record.record_id, style, rng)
    sheet, labels = page.sheet_rgb.copy(), page.labels
    names, boxes = list(labels.panel_leads), labels.label_boxes_px.copy()
    if "aVR" in names and rng.random() < CABRERA_SHARE:
        k = names.index("aVR")
        boxes[k] = redraw_name(sheet, labels, style, k, "-aVR")
        names[k] = "-aVR"
    image_type = str(rng.choice(IMAGE_TYPES))
    out = degrade(sheet, image_type, page_rng(seed, index, 99))
    rectified = out.sheet_map.rectify(out.image_rgb)
    return page_crops(rectified, labels.layout_name, labels.x0_px, labels.baselines_y_px, names, boxes,
                      rng if jitter else None, keep_raw)


def pool_crops(folder: Path, rng: np.random.Generator, jitter: bool):
    """Crops of one written ECG-Image-Kit page (degraded half the time, as stage 1 reads them)."""
    from synth.eik import load_pool_page

    page = load_pool_page(folder, rng, degrade_share=0.5 if jitter else 0.0)
    (image,) = page.images.values()
    sheet = image.sheet_map.rectify(image.image_rgb)
    labels = page.labels
    return page_crops(sheet, labels.layout_name, labels.x0_px, labels.baselines_y_px, list(labels.panel_leads),
                      labels.label_boxes_px, rng if jitter else None)


def synthetic_crops(backgrounds: list, n: int, rng: np.random.Generator):
    """``n`` names (every class but none, equally often) in matplotlib's fonts over name-less windows: the cap
    height 10-34 px, grey 0-90, anywhere its box fits in the window's first 110 px."""
    import matplotlib
    from PIL import Image, ImageDraw, ImageFont

    font_dir = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    fonts = [font_dir / f for f in TTF_FONTS if (font_dir / f).is_file()]
    crops, classes = [], []
    for _ in range(n):
        c = int(rng.integers(NONE))
        bg = Image.fromarray(backgrounds[int(rng.integers(len(backgrounds)))])
        font = ImageFont.truetype(str(fonts[int(rng.integers(len(fonts)))]), int(rng.uniform(10, 34) / 0.72))
        draw = ImageDraw.Draw(bg)
        left, t, r, b = draw.textbbox((0, 0), NAMES[c], font=font)
        w, h = bg.size
        if r - left > w - 20 or b - t > h - 8:
            continue
        x = rng.uniform(4, min(110.0, w - (r - left) - 4)) - left
        y = rng.uniform(4, h - (b - t) - 4) - t
        draw.text((x, y), NAMES[c], fill=int(rng.integers(0, 90)), font=font)
        crops.append(normalise(np.asarray(bg)))
        classes.append(c)
    return crops, classes


# --- training -------------------------------------------------------------------------------------------
def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Shift by up to 6 px, fade the ink to 60-100 %, add noise of sd 0.03."""
    n = x.shape[0]
    dx, dy = (int(v) for v in torch.randint(-6, 7, (2,), generator=gen))
    x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    fade = 0.6 + 0.4 * torch.rand(n, 1, 1, 1, generator=gen)
    return (x * fade + 0.03 * torch.randn(x.shape, generator=gen)).clamp(0, 1)


def accuracy(model: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    model.eval()
    with torch.inference_mode():
        pred = torch.cat([model(torch.from_numpy(x[i : i + 256, None].astype(np.float32) / 255.0)).argmax(1)
                          for i in range(0, len(x), 256)]).numpy()
    model.train()
    return float(np.mean(pred == y)) if len(y) else float("nan")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stage1_segment.train_names", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--signals", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--pool", type=Path, nargs="*", default=[], help="ECG-Image-Kit page pools (train split)")
    parser.add_argument("--pool-val", type=Path, default=None, help="ECG-Image-Kit pool of the validation records")
    parser.add_argument("--pages", type=int, default=400, help="factory training pages")
    parser.add_argument("--val-pages", type=int, default=60, help="factory validation pages")
    parser.add_argument("--pool-pages", type=int, default=200, help="ECG-Image-Kit training pages at most")
    parser.add_argument("--synthetic", type=int, default=3000, help="names drawn in TrueType fonts")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--init", type=Path, default=None, help="start from this bundle's weights")
    parser.add_argument("--threads", type=int, default=1)
    add_arrangement_args(parser)  # --gaps, --outside-pulse, --time-marks ...: shares of the factory training pages
    args = parser.parse_args(argv)
    arrangements = arrangements_from(args, parser)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    from synth.eik import pool_pages

    t0 = time.time()
    train_recs, val_recs, _ = split_records(args.signals)
    xs, ys, raw = [], [], []
    for i in range(args.pages):
        c, y = factory_crops(train_recs[i % len(train_recs)], i, args.seed, True, raw, arrangements)
        xs += c
        ys += y
    n_factory = len(ys)
    folders = [f for pool in args.pool for f in pool_pages(pool)]
    folders = [folders[i] for i in rng.permutation(len(folders))[: args.pool_pages]]
    for folder in folders:
        c, y = pool_crops(folder, rng, True)
        xs += c
        ys += y
    n_pool = len(ys) - n_factory
    c, y = synthetic_crops(raw, args.synthetic, rng)
    xs += c
    ys += y
    x_train, y_train = np.stack(xs), np.asarray(ys, np.int64)
    val_sets = {}
    fx, fy = [], []
    for i in range(args.val_pages):
        c, y = factory_crops(val_recs[i % len(val_recs)], i, args.seed + 1000, False)
        fx += c
        fy += y
    val_sets["factory"] = (np.stack(fx), np.asarray(fy, np.int64))
    if args.pool_val is not None:
        px, py = [], []
        for folder in pool_pages(args.pool_val):
            c, y = pool_crops(folder, rng, False)
            px += c
            py += y
        val_sets["ecg_image_kit"] = (np.stack(px), np.asarray(py, np.int64))
    counts = np.bincount(y_train, minlength=len(NAMES))
    print(f"{len(y_train)} training crops ({n_factory} factory from {args.pages} pages, {n_pool} from "
          f"{len(folders)} ECG-Image-Kit pages, {len(y_train) - n_factory - n_pool} synthetic) in "
          f"{time.time() - t0:.0f} s; per class {dict(zip(NAMES, counts.tolist(), strict=True))}; validation "
          + ", ".join(f"{k} {len(v[1])}" for k, v in val_sets.items()), flush=True)

    model_kwargs = {"widths": [8, 16, 32, 48, 64, 96], "n_classes": len(NAMES), "dropout": 0.2}
    model = NameNet(**{**model_kwargs, "widths": tuple(model_kwargs["widths"])})
    if args.init is not None:
        from stage1_segment.lead_names import LeadNameReader

        model.load_state_dict(LeadNameReader.from_bundle(args.init).model.state_dict())
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(args.seed)
    deadline, step, best, history = time.time() + 60 * args.minutes, 0, -1.0, []
    x_all = torch.from_numpy(x_train[:, None])
    y_all = torch.from_numpy(y_train)
    start = time.time()
    while time.time() < deadline:
        frac = (time.time() - start) / (60 * args.minutes)
        for g in opt.param_groups:  # cosine decay over the time budget
            g["lr"] = args.lr * 0.5 * (1 + np.cos(np.pi * min(frac, 1.0)))
        idx = torch.randint(len(y_all), (args.batch,), generator=gen)
        x = augment(x_all[idx].float() / 255.0, gen)
        loss = F.cross_entropy(model(x), y_all[idx], label_smoothing=0.05)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 300 == 0 or time.time() >= deadline:
            acc = {k: accuracy(model, *v) for k, v in val_sets.items()}
            score = float(np.mean(list(acc.values())))
            history.append({"step": step, "loss": float(loss.detach()), **acc})
            print(f"step {step} loss {float(loss.detach()):.3f} " + " ".join(f"{k} {v:.4f}" for k, v in acc.items()),
                  flush=True)
            if score > best:
                best = score
                config = {"model_name": "name_cnn", "model_kwargs": model_kwargs, "classes": list(NAMES),
                          "window": window_config(), "steps": step, "validation_accuracy": acc,
                          "training_data": {"factory_pages": args.pages, "factory_crops": n_factory,
                                            "pools": [str(p) for p in args.pool], "pool_pages": len(folders),
                                            "pool_crops": n_pool, "synthetic_crops": args.synthetic,
                                            "cabrera_share": CABRERA_SHARE, "eik_look": EIK_LOOK,
                                            "seed": args.seed, "pool_val": str(args.pool_val),
                                            "val_factory_pages": args.val_pages,
                                            **({} if arrangements is None else
                                               {"arrangements": dataclasses.asdict(arrangements)})},
                          "command": "python -m stage1_segment.train_names " + " ".join(argv or __import__(
                              "sys").argv[1:])}
                save_model_bundle(model, config, args.out)
    (args.out / "history.json").write_text(json.dumps(history, indent=1))
    print(f"best validation accuracy {best:.4f} -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
