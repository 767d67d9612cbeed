"""Train the stage-1 row-trace U-Net on pages rendered on the fly, on CPU or a GPU.

    python -m stage1_segment.train --signals /work/shared/data/signals --out weights/stage1_segment \
        [--steps N] [--minutes M] [--resume] [--device cuda --producers 13 --batch 24 --bf16]

``--producers`` processes render pages (SynthPageDataset, layout 3x4+II, all nine image types, all six fs),
rectifies each through its labelled sheet map and downscales it to the map scale; the trainer keeps the
latest pages in a replay buffer and trains on full-height, random-width crops from it, so rendering (about
1 s a page) does not bound the step rate. Records are split by path: every 10th record path of each source
goes to validation. Every ``--eval-min`` minutes it evaluates on fixed validation pages (mean |y error| of the
column soft-argmax in sheet px, and the competition SNR of the signal read back at the labelled placement),
saves a resumable checkpoint under ``--run-dir`` and, when validation improves, writes the bundle.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing as mp
import os
import queue
import sys
import time
from pathlib import Path

import numpy as np
import torch

from common.geometry import CANONICAL
from common.layouts import LEADS, get_layout
from common.types import IMAGE_TYPES, SUPPORTED_FS_HZ
from stage1_segment.data import MapSpec, PageToSample, split_records
from stage1_segment.infer import DEFAULT_INFERENCE, load_bundle, save_bundle
from stage1_segment.model import create_model, normalise_image, split_logits, trace_loss
from stage1_segment.passes import SPREAD_BAND, checked_spread_band
from synth.make import add_arrangement_args, arrangements_from

LAYOUT = "3x4+II"
DEFAULT_MODEL = {
    "name": "unet_rows",
    "kwargs": {"n_rows": 4, "encoder_name": "tu-mobilenetv4_conv_small", "encoder_depth": 5,
               "decoder_channels": [64, 32, 24, 16, 8], "coord_x": False, "mask_head": True, "position": "anchors"},
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ----------------------------------------------------------------------------------------------- producer


def _producer(records, seed: int, start: int, stride: int, q, spec: MapSpec, jitter: float,
              pools: tuple = (), pool_share: float = 0.0, eik_look: float = 0.0, layouts: tuple = (LAYOUT,),
              n_rows: int = 4, spread_band: float | None = SPREAD_BAND, arrangements=None,
              image_types: tuple = IMAGE_TYPES) -> None:
    """Render pages start, start + stride, ... (one of ``stride`` producers) into ``q`` forever; page i is, with
    probability ``pool_share``, a page drawn by another generator from the ``pools`` folders (written by
    :mod:`synth.eik`; looked up again every 50 pages, so a pool still being written keeps growing). Factory
    pages take ``arrangements`` (:class:`synth.render.Arrangements`, None: none) at their shares, and the image types
    ``image_types`` in turn (a type named twice comes twice as often)."""
    import cv2

    from synth.dataset import SynthPageDataset
    from synth.eik import load_pool_page, pool_pages

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    to_sample = PageToSample(spec, jitter=jitter, seed=seed + start, layout=LAYOUT, n_model=n_rows,
                             spread_band=spread_band)
    ds = SynthPageDataset(records, list(image_types), seed=seed, length=10**9, layouts=list(layouts),
                          fs_choices=SUPPORTED_FS_HZ, transform=to_sample, eik_look=eik_look,
                          arrangements=arrangements)
    pool: list = []
    # a network trained without clean renders sees every plain drawing through one of its types
    degrade_share = 0.5 if "0001" in image_types else 1.0
    i = start
    while True:
        if pools and (i - start) // stride % 50 == 0:
            pool = [p for folder in pools for p in pool_pages(folder)]
        rng = np.random.default_rng([seed, i, 7])
        try:
            if pool and rng.random() < pool_share:
                sample = to_sample(load_pool_page(pool[int(rng.integers(len(pool)))], rng,
                                                  degrade_share=degrade_share, types=image_types))
            else:
                sample = ds[i]
        except Exception as exc:  # noqa: BLE001 - one bad page must not stop training
            print(f"producer: page {i} failed: {type(exc).__name__}: {exc}", flush=True)
            i += stride
            continue
        sample["index"] = i
        q.put(sample)
        i += stride


# --------------------------------------------------------------------------------------------- evaluation


def selection_score(res: dict, select: str, select_layout: str | None = None,
                    select_types: tuple[str, ...] | None = None) -> float:
    """The number an evaluation's results ``res`` are ranked by (lower is better): the read-back SNR negated
    (``select`` "snr") or the mean column error ("mae", sheet px); a network for one layout's pages is chosen by
    that layout's pages' column error alone, one for some image types by the mean of theirs."""
    if select_layout is not None:
        return float(res["val_mae_px_by_type"][f"layout {select_layout}"])
    if select_types is not None:
        return float(np.mean([res["val_mae_px_by_type"][t] for t in select_types]))
    return float(-res["val_snr_db"] if select == "snr" and "val_snr_db" in res else res["val_mae_px"])


def read_back(y_sheet: np.ndarray, sample: dict, spec: MapSpec) -> tuple[dict, dict]:
    """Signals (mV) read from per-column trace y (sheet px, (R, Wm)) at the labelled placement.

    Each lead comes from the panel that prints most of it (lead II: the rhythm strip)."""
    layout = get_layout(sample["layout_name"])
    fs = sample["fs_hz"]
    xs = spec.map_x_sheet()
    from common.layouts import Placement

    placement = Placement(sample["x0_px"], tuple(sample["baselines_y_px"]))
    n = sample["signals_mv"].shape[1]
    truth, pred = {}, {}
    for lead in LEADS:
        panels = sorted(layout.lead_panels(lead), key=lambda p: -p.duration_s)
        panel = panels[0]
        i0, i1 = panel.sample_range(fs, n)
        t = np.arange(i0, i1) / fs
        x = placement.panel_x_px(panel, t)
        yc = y_sheet[panel.row]
        ok = np.isfinite(yc)
        y = np.interp(x, xs[ok], yc[ok])
        values = sample["signals_mv"][LEADS.index(lead), i0:i1].astype(np.float64)
        printed = np.isfinite(values)  # another generator may print a sample fewer (ECG-Image-Kit at 1025 Hz)
        pred[lead] = panel.sign * CANONICAL.y_to_mv(y, placement.baselines_y_px[panel.row])[printed]
        truth[lead] = values[printed]
    return truth, pred


@torch.inference_mode()
def evaluate(model, val: list[dict], spec: MapSpec, n_rows: int, autocast: bool,
             device: str | torch.device = "cpu") -> dict:
    from stage1_segment.model import column_mean_y

    try:
        from common.metric import image_snr, snr_db_from_linear
    except ImportError:  # the metric module is someone else's, optional here
        image_snr = snr_db_from_linear = None
    model.eval()
    hm, wm = spec.shape_hw
    errs, errs_local, snrs, snrs_oracle, per_type = [], [], [], [], {}
    t0 = time.time()
    for s in val:
        x = normalise_image(torch.from_numpy(s["image"]).to(device).permute(2, 0, 1)[None])
        pos = model.position_channels(1, hm, wm, 0, wm, s["anchors_map_y"][None], spec.scale_y, device=device)
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=autocast):
            out = model(x, pos)
        y_logits, _ = split_logits(out.float(), n_rows)
        p = torch.softmax(y_logits[0], dim=1).cpu()  # (R, H, W)
        ys = torch.arange(hm, dtype=torch.float32)
        y_full = (p * ys[None, :, None]).sum(1).numpy()
        # local soft-argmax: +-12 map px around the argmax
        am = p.argmax(1)  # (R, W)
        win = (ys[None, :, None] - am[:, None, :].float()).abs() <= 12
        pl = p * win
        y_loc = ((pl * ys[None, :, None]).sum(1) / pl.sum(1).clamp(min=1e-12)).numpy()
        y_true = column_mean_y(torch.from_numpy(s["col_y"])).numpy()
        ok = np.isfinite(y_true)
        e = np.abs(y_full - y_true)[ok] / spec.scale_y
        el = np.abs(y_loc - y_true)[ok] / spec.scale_y
        errs.append(e.mean())
        errs_local.append(el.mean())
        per_type.setdefault(s["image_type"], []).append(e.mean())
        if image_snr is not None and "fs_hz" in s:  # a page of another layout is scored by its column error only
            y_pred_sheet = np.where(ok, spec.map_to_sheet_y(y_full), np.nan)
            y_true_sheet = np.where(ok, spec.map_to_sheet_y(y_true), np.nan)
            truth, pred = read_back(y_pred_sheet, s, spec)
            snrs.append(image_snr(truth, pred, s["fs_hz"]))
            truth, pred_o = read_back(y_true_sheet, s, spec)
            snrs_oracle.append(image_snr(truth, pred_o, s["fs_hz"]))
    model.train()
    res = {
        "val_mae_px": float(np.mean(errs)),
        "val_mae_local_px": float(np.mean(errs_local)),
        "val_median_page_mae_px": float(np.median(errs)),
        "val_mae_px_by_type": {k: round(float(np.mean(v)), 3) for k, v in sorted(per_type.items())},
        "eval_s": time.time() - t0,
    }
    if snrs:
        res["val_snr_db"] = snr_db_from_linear(snrs)
        res["val_snr_db_column_oracle"] = snr_db_from_linear(snrs_oracle)
    return res


# --------------------------------------------------------------------------------------------------- main


def make_batch(model, buffer: list[dict], rng: np.random.Generator, batch: int, crop: int, spec: MapSpec,
               device: str | torch.device = "cpu"):
    """Random full-height crops as device tensors; pixels and masks travel as uint8 (4x fewer bytes)."""
    hm, wm = spec.shape_hw
    picks = rng.integers(0, len(buffer), size=batch)
    imgs, cols, masks, offs, anchors = [], [], [], [], []
    for i in picks:
        s = buffer[int(i)]
        x0 = int(rng.integers(0, wm - crop + 1))
        imgs.append(s["image"][:, x0 : x0 + crop])
        cols.append(s["col_y"][:, x0 : x0 + crop])
        masks.append(s["masks"][:, :, x0 : x0 + crop])
        offs.append(x0)
        anchors.append(s["anchors_map_y"])
    img = normalise_image(torch.from_numpy(np.stack(imgs)).to(device).permute(0, 3, 1, 2))
    coords = model.position_channels(batch, hm, crop, torch.tensor(offs), wm, np.stack(anchors), spec.scale_y,
                                     device=device)
    col_y = torch.from_numpy(np.stack(cols)).to(device)
    mk = torch.from_numpy(np.stack(masks)).to(device).float() / 255.0
    return img.contiguous(memory_format=torch.channels_last), coords, col_y, mk


def transplant(source: torch.nn.Module, target: torch.nn.Module) -> torch.nn.Module:
    """``target`` with every tensor of ``source`` that has the same name and shape; an input convolution with
    other input channels keeps the shared leading (RGB) channels and starts the others at zero."""
    src, dst = source.state_dict(), target.state_dict()
    copied, partial = 0, []
    for name, t in dst.items():
        s = src.get(name)
        if s is None:
            continue
        if s.shape == t.shape:
            dst[name] = s.clone()
            copied += 1
        elif s.ndim == 4 and s.shape[0] == t.shape[0] and s.shape[2:] == t.shape[2:]:
            new = torch.zeros_like(t)
            k = min(3, s.shape[1], t.shape[1])
            new[:, :k] = s[:, :k]
            dst[name] = new
            partial.append(name)
    target.load_state_dict(dst)
    log(f"init: {copied}/{len(dst)} tensors copied, input channels remapped in {partial}")
    return target


def lr_at(progress: float, step: int, base: float, warmup: int) -> float:
    w = min(1.0, (step + 1) / warmup)
    return base * w * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--signals", type=Path, required=True, help="folder of signal sources (ludb/, cpsc2018/, ...)")
    ap.add_argument("--out", type=Path, default=Path("weights/stage1_segment"), help="bundle folder")
    ap.add_argument("--run-dir", type=Path, default=Path("runs/stage1_segment"), help="checkpoint + logs")
    ap.add_argument("--steps", type=int, default=None, help="stop after this many steps in total")
    ap.add_argument("--minutes", type=float, default=None, help="stop after this much wall time in total")
    ap.add_argument("--resume", action="store_true", help="continue from <run-dir>/ckpt.pt")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--crop", type=int, default=320, help="crop width at map scale")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--scale-x", type=float, default=1.0, help="map scale of the canonical sheet in x")
    ap.add_argument("--scale-y", type=float, default=0.5, help="map scale of the canonical sheet in y")
    ap.add_argument("--buffer", type=int, default=64, help="pages kept for replay")
    ap.add_argument("--min-buffer", type=int, default=6)
    ap.add_argument("--val-pages", type=int, default=18)
    ap.add_argument("--eval-min", type=float, default=6.0)
    ap.add_argument("--log-every", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="auto", help="torch device: auto (cuda when there is one), cpu, cuda")
    ap.add_argument("--producers", type=int, default=1,
                    help="page-rendering processes (about 1 page/s each; one per spare CPU core on a GPU machine)")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (slow on CPUs without AVX512-BF16/AMX)")
    ap.add_argument("--jitter", type=float, default=0.5, help="probability of vertical affine jitter")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--select-layout", default=None,
                    help="choose the bundle by this layout's validation pages' column error alone (one of --layouts)")
    ap.add_argument("--select", choices=["snr", "mae"], default="snr",
                    help="bundle when validation SNR of the read-back signal rises (snr) or the mean |y error| falls")
    ap.add_argument("--select-types", default=None,
                    help="choose the bundle by the mean column error of these image types' validation pages alone "
                         "(separated by ';'; e.g. a network for photos)")
    ap.add_argument("--model", type=str, default=None, help="JSON {name, kwargs} overriding the default model")
    ap.add_argument("--eik-look", type=float, default=0.0,
                    help="share of factory pages drawn with ECG-Image-Kit's marks (bold bars, abutting pulse, ...)")
    ap.add_argument("--layouts", default=LAYOUT,
                    help="layouts the factory's training pages are drawn in, separated by ';' (each page draws one; "
                         "name one twice to draw it twice as often); a page in another layout than the network's "
                         "own is shown as inference shows it (stage1_segment.passes)")
    ap.add_argument("--types", default=";".join(IMAGE_TYPES),
                    help="image types the factory's training pages are degraded as, separated by ';' (in turn; name "
                         "one twice to draw it twice as often); validation keeps every type")
    add_arrangement_args(ap)  # --gaps, --gap-mm, --outside-pulse, --signal-rows, --cabrera, --time-marks,
    # --half-gain: shares
    ap.add_argument("--close-rows", choices=["spread", "in_place"], default="spread",
                    help="how pages with rows closer than stage1_segment.passes.CLOSE_PITCH_PX are shown (and, "
                         "written into the bundle, read): moved apart, or where they are")
    ap.add_argument("--spread-band", type=float, default=SPREAD_BAND,
                    help="close rows moved apart are each cut in a band of this many row pitches around their "
                         "baseline (the default: what a network never trained on them reads best; written into "
                         "the bundle when another)")
    ap.add_argument("--val-layout-pages", type=int, default=4,
                    help="validation pages per --layouts layout other than the network's own (column error only)")
    ap.add_argument("--pool", type=Path, nargs="*", default=[],
                    help="folders of pages drawn by another generator (python -m synth.eik ... --split train)")
    ap.add_argument("--pool-share", type=float, default=0.0, help="share of training pages taken from --pool")
    ap.add_argument("--pool-val", type=Path, default=None,
                    help="a folder of such pages from the validation records (synth.eik --split val), validated on "
                         "beside the factory's pages")
    ap.add_argument("--init", type=Path, default=None,
                    help="start from the weights of this bundle (e.g. the committed weights/stage1_segment); its "
                         "model config is used")
    args = ap.parse_args(argv)
    if args.steps is None and args.minutes is None:
        ap.error("give --steps and/or --minutes")
    image_types = tuple(name.strip() for name in args.types.split(";") if name.strip())
    unknown = sorted(set(image_types) - set(IMAGE_TYPES))
    if unknown or not image_types:
        ap.error(f"--types: unknown image types {unknown}; known: {';'.join(IMAGE_TYPES)}")
    select_types = None if args.select_types is None else tuple(
        name.strip() for name in args.select_types.split(";") if name.strip())
    if select_types is not None and (not select_types or set(select_types) - set(IMAGE_TYPES)):
        ap.error(f"--select-types: give image types from {';'.join(IMAGE_TYPES)}, got {args.select_types!r}")
    if select_types is not None and args.select_layout is not None:
        ap.error("--select-types and --select-layout exclude each other")
    try:
        checked_spread_band(args.spread_band)
    except ValueError as err:
        ap.error(f"--spread-band: {err}")
    spread_band = args.spread_band if args.close_rows == "spread" else None  # None: close rows shown in place

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    if args.producers < 1:
        ap.error("--producers must be at least 1")
    spec = MapSpec(args.scale_x, args.scale_y)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    if not (args.run_dir / ".gitignore").exists():  # checkpoints and logs never go into git
        (args.run_dir / ".gitignore").write_text("*\n")
    ckpt_path = args.run_dir / "ckpt.pt"
    model_cfg = json.loads(args.model) if args.model else DEFAULT_MODEL
    init_model = None
    if args.init is not None:
        if args.resume:
            ap.error("--init and --resume exclude each other")
        init_model, init_cfg = load_bundle(args.init)
        init_model_cfg = {"name": init_cfg["model_name"], "kwargs": init_cfg["model_kwargs"]}
        if args.model and json.loads(args.model) != init_model_cfg:
            # another network: start from the bundle's weights wherever the tensors fit
            init_model = transplant(init_model, create_model(model_cfg["name"], **model_cfg["kwargs"]))
        else:
            model_cfg = init_model_cfg

    t_load = time.time()
    train_recs, val_recs, data_desc = split_records(args.signals)
    log(f"records: {len(train_recs)} train / {len(val_recs)} val windows from {data_desc} "
        f"({time.time() - t_load:.1f}s)")

    model = init_model if init_model is not None else create_model(model_cfg["name"], **model_cfg["kwargs"])
    model = model.train().to(device=device, memory_format=torch.channels_last)
    log(f"training on {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    n_rows = int(model_cfg["kwargs"]["n_rows"])
    layouts = tuple(name.strip() for name in args.layouts.split(";") if name.strip())
    arrangements = arrangements_from(args, ap)
    for name in layouts:
        get_layout(name)  # an unknown name fails here, not in the page renderers
    if args.select_layout is not None and (args.select_layout not in layouts or args.select_layout == LAYOUT):
        ap.error(f"--select-layout must be one of --layouts other than {LAYOUT}, got {args.select_layout!r}")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    step, wall_prev, best, history = 0, 0.0, float("inf"), []
    produced = 0
    if args.resume:
        if not ckpt_path.is_file():
            raise FileNotFoundError(f"--resume: {ckpt_path} is missing")
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if ck["model_cfg"] != model_cfg:
            raise ValueError(f"{ckpt_path} was trained as {ck['model_cfg']}, not {model_cfg}")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, wall_prev, best, history = ck["step"], ck["wall_s"], ck["best"], ck["history"]
        produced = ck["produced"]
        if ck.get("select", "mae") != args.select:  # another criterion: the next evaluation writes the bundle
            best = float("inf")
        log(f"resumed {ckpt_path} at step {step}, {wall_prev / 60:.1f} min, best {args.select} {abs(best):.3f}")

    # Fixed validation pages: rendered once (2 per image type by default).
    t_val = time.time()
    from synth.dataset import SynthPageDataset

    val_ds = SynthPageDataset(val_recs, IMAGE_TYPES, seed=12345, length=args.val_pages, layouts=[LAYOUT],
                              fs_choices=SUPPORTED_FS_HZ, transform=PageToSample(spec, keep_labels=True))
    val = [val_ds[i] for i in range(len(val_ds))]
    if args.pool_val is not None:
        from synth.eik import load_pool_page, pool_pages

        to_val = PageToSample(spec, keep_labels=True)
        pool_val = [to_val(load_pool_page(p, np.random.default_rng(k), degrade_share=0.0))
                    for k, p in enumerate(pool_pages(args.pool_val))]
        for s in pool_val:
            s["image_type"] = f"pool-{s['image_type']}"  # reported apart from the factory's pages
        val += pool_val
    for name in layouts:
        if name == LAYOUT:
            continue
        # pages of the other layouts, one pass each as inference reads them: column error only (the read-back
        # needs the whole page)
        lay_ds = SynthPageDataset(val_recs, IMAGE_TYPES, seed=777, length=args.val_layout_pages, layouts=[name],
                                  fs_choices=SUPPORTED_FS_HZ, transform=PageToSample(spec, seed=7, n_model=n_rows,
                                                                         spread_band=spread_band))
        for i in range(len(lay_ds)):
            sample = lay_ds[i]
            sample["image_type"] = f"layout {name}"
            val.append(sample)
    for s in val:
        del s["masks"]
    log(f"{len(val)} validation pages rendered in {time.time() - t_val:.1f}s")

    ctx = mp.get_context("spawn")
    q = ctx.Queue(maxsize=4 * args.producers)
    producers = [ctx.Process(target=_producer, args=(train_recs, args.seed, produced + k, args.producers, q, spec,
                                                     args.jitter, tuple(args.pool), args.pool_share, args.eik_look,
                                                     layouts, n_rows, spread_band, arrangements,
                                                     image_types),
                             daemon=True)
                 for k in range(args.producers)]
    for prod in producers:
        prod.start()

    rng = np.random.default_rng(args.seed * 1000 + step)
    buffer: list[dict] = []
    ring = 0
    t_start = time.time()
    last_eval = time.time()
    run_losses: list[dict] = []
    step_times: list[float] = []
    base_cfg = {
        "model_name": model_cfg["name"],
        "model_kwargs": model_cfg["kwargs"],
        "scale_x": spec.scale_x,
        "scale_y": spec.scale_y,
        "layout": LAYOUT,
        "input": "RGB page rectified onto the canonical 2200x1700 sheet, resized (INTER_AREA) to the map scale, "
                 "(x/255-0.5)/0.25, + position channels (model kwargs 'position': sheet coordinates, or per-row "
                 "distances to the rows' baselines found by stage1_segment.anchors)",
        "output": "per layout row, softmax over y per map column (TraceMaps)",
        "inference": {**DEFAULT_INFERENCE, **({"close_rows": "in_place"} if spread_band is None else {}),
                      **({"spread_band": spread_band} if spread_band not in (None, SPREAD_BAND) else {})},
        "training_data": {
            "signals": str(args.signals), "sources": data_desc, "split": "every 10th record path per source -> val",
            "image_types": list(image_types), "fs_choices": list(SUPPORTED_FS_HZ), "layouts": list(layouts),
            "rectification": "labelled sheet_map (exact)", "jitter_p": args.jitter,
            "val_pages": args.val_pages, "pools": [str(p) for p in args.pool], "pool_share": args.pool_share,
            "eik_look": args.eik_look,
            **({} if arrangements is None else {"arrangements": dataclasses.asdict(arrangements)}),
            "pool_val": None if args.pool_val is None else str(args.pool_val),
        },
        "train_args": {k: (str(v) if isinstance(v, Path) else [str(x) for x in v] if isinstance(v, list) else v)
                       for k, v in vars(args).items()},
    }

    def elapsed() -> float:
        return wall_prev + time.time() - t_start

    def progress() -> float:
        fr = []
        if args.steps:
            fr.append(step / args.steps)
        if args.minutes:
            fr.append(elapsed() / (60 * args.minutes))
        return max(fr)

    def do_eval_and_save() -> None:
        nonlocal best
        res = evaluate(model, val, spec, n_rows, args.bf16, device)
        res.update({"step": step, "wall_min": round(elapsed() / 60, 2), "pages_seen": produced})
        history.append(res)
        score = selection_score(res, args.select, args.select_layout, select_types)
        improved = score < best
        if improved:
            best = score
            cfg = dict(base_cfg)
            cfg.update({"steps": step, "wall_s": round(elapsed(), 1), "pages_rendered": produced,
                        "validation": res, "saved_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())})
            save_bundle(model, cfg, args.out)
        log(f"eval step {step}: " + json.dumps({k: (round(v, 3) if isinstance(v, float) else v)
                                                  for k, v in res.items()}) + (" -> bundle" if improved else ""))
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "wall_s": elapsed(),
                    "best": best, "history": history, "produced": produced, "model_cfg": model_cfg,
                    "select": args.select},
                   str(ckpt_path) + ".tmp")
        os.replace(str(ckpt_path) + ".tmp", ckpt_path)
        with open(args.run_dir / "history.jsonl", "a") as f:
            f.write(json.dumps(res) + "\n")

    model.train()
    try:
        while progress() < 1.0:
            got = 0
            while True:
                try:
                    item = q.get(timeout=60) if len(buffer) < args.min_buffer else q.get_nowait()
                except queue.Empty:
                    if len(buffer) < args.min_buffer and not any(p.is_alive() for p in producers):
                        raise RuntimeError("page producer died") from None
                    break
                produced += 1
                got += 1
                if len(buffer) < args.buffer:
                    buffer.append(item)
                else:
                    buffer[ring] = item
                    ring = (ring + 1) % args.buffer
                if len(buffer) >= args.min_buffer and got >= 2:
                    break
            if len(buffer) < args.min_buffer:
                continue
            t0 = time.time()
            lr = lr_at(progress(), step, args.lr, args.warmup)
            for g in opt.param_groups:
                g["lr"] = lr
            img, coords, col_y, mk = make_batch(model, buffer, rng, args.batch, args.crop, spec, device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
                out = model(img, coords)
            loss, parts = trace_loss(out.float(), col_y, mk, n_rows)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
            opt.step()
            step += 1
            step_times.append(time.time() - t0)
            run_losses.append(parts)
            if step % args.log_every == 0:
                mean = {k: np.mean([p[k] for p in run_losses if k in p]) for k in run_losses[-1]}
                log(f"step {step} lr {lr:.2e} " + " ".join(f"{k} {v:.4f}" for k, v in mean.items())
                    + f" | {np.mean(step_times):.2f}s/step ({1 / np.mean(step_times):.2f} steps/s) "
                    f"pages {produced} buffer {len(buffer)} wall {elapsed() / 60:.1f}min")
                run_losses.clear()
                step_times.clear()
            if time.time() - last_eval > 60 * args.eval_min:
                do_eval_and_save()
                last_eval = time.time()
        do_eval_and_save()
    finally:
        for prod in producers:
            prod.terminate()
    log(f"done: {step} steps, {elapsed() / 60:.1f} min, best {args.select} {abs(best):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
