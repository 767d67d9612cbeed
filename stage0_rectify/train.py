"""Train the stage-0 keypoint network on the factory's photo pages (and some scans / renders), on the CPU.

    python -m stage0_rectify.train --signals /work/shared/data/signals --out weights/stage0_rectify \
        [--pool /work/pool/kp] [--pool-pages 700] [--val-pages 40] [--minutes 45] [--batch 8] [--resume] \
        [--eik-pool POOL/eik_train --eik-val-pool POOL/eik_val] [--init weights/stage0_rectify]

First the pool (:mod:`stage0_rectify.data`; never committed) is completed: ``--pool-pages`` training record
windows under POOL/train, ``--val-pages`` validation windows (other records, other seed) under POOL/val, each
as every pool type, long side 320 px (with ``--eik-pool`` / ``--eik-val-pool``, the plain ECG-Image-Kit
drawings of those sets degraded as every pool type too: :func:`stage0_rectify.data.write_eik_pool`). Then the
network trains on samples drawn from POOL/train: shrunk to the input side (sometimes further, down to 55 %: a
page that fills half the frame), turned by a quarter turn now and then (all four orientations), placed at a
random spot of the square canvas, colours jittered.
Every ``--eval-min`` minutes it fits homographies on POOL/val exactly as inference does and measures the map
error on the sheet (median over a lattice of sheet points of |H(true image point) - sheet point|, px; the
paper's curl is in the truth, so even a perfect homography is not at 0); the bundle is written when that
improves. ``--init`` starts from a bundle's weights, validated first: its score is the one to beat.
``torch.set_num_threads(1)``: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from common.geometry import CANONICAL
from common.sheet_map import SheetMap, apply_homography
from stage0_rectify.data import (
    INPUT_SIDE,
    TRAIN_SEED,
    VAL_SEED,
    downscale,
    list_pool,
    load_pool_item,
    targets,
    write_eik_pool,
)
from stage0_rectify.infer import PAD_VALUE, KeypointRectifier, RoutingConfig, load_bundle, save_bundle
from stage0_rectify.model import create_model, keypoint_loss, normalise_image

NET_SIDE = 256  # the network's input side (px); the pool's 320 px leave room to shrink
DEFAULT_MODEL = {"name": "unet_keypoints",
                 "kwargs": {"encoder_name": "tu-mobilenetv4_conv_small", "encoder_depth": 5,
                            "decoder_channels": [64, 48, 32, 16, 8]}}
W, H = CANONICAL.width_px, CANONICAL.height_px
# sheet points the validation error is measured at: a 9 x 7 lattice from corner to corner
LATTICE = np.stack(np.meshgrid(np.linspace(0, W - 1, 9), np.linspace(0, H - 1, 7)), -1).reshape(-1, 2)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _rot90_h(hw: tuple[int, int], k: int) -> np.ndarray:
    """Homography of ``np.rot90(image, k)`` (counter-clockwise quarter turns) on pixel coordinates."""
    h, w = hw
    m = np.eye(3)
    for _ in range(k % 4):
        m = np.array([[0.0, 1, 0], [-1, 0, w - 1], [0, 0, 1]]) @ m  # (x, y) -> (y, w - 1 - x)
        h, w = w, h
    return m


def make_sample(img: np.ndarray, sheet_map: SheetMap, rng: np.random.Generator | None,
                side: int = NET_SIDE) -> dict:
    """A pool image -> network input canvas (side x side uint8) and targets; ``rng`` None: no augmentation
    (centred, as inference letterboxes)."""
    long_side = side
    if rng is not None and rng.random() < 0.3:
        long_side = int(round(side * rng.uniform(0.55, 1.0)))
    small, a = downscale(img, long_side)
    h_img = a
    if rng is not None and rng.random() < 0.3:
        k = int(rng.integers(1, 4))
        h_img = _rot90_h(small.shape[:2], k) @ h_img
        small = np.ascontiguousarray(np.rot90(small, k))
    sh, sw = small.shape[:2]
    if rng is None:
        oy, ox = (side - sh) // 2, (side - sw) // 2
    else:
        oy, ox = int(rng.integers(0, side - sh + 1)), int(rng.integers(0, side - sw + 1))
    canvas = np.full((side, side, 3), PAD_VALUE, np.uint8)
    canvas[oy : oy + sh, ox : ox + sw] = small
    if rng is not None:
        gain = rng.uniform(0.75, 1.2) * rng.uniform(0.9, 1.1, 3)
        canvas = np.clip(canvas * gain + rng.uniform(-20, 20), 0, 255).astype(np.uint8)
        if rng.random() < 0.1:
            canvas = np.repeat(cv2.cvtColor(canvas, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    sm = sheet_map.then_image_transform(np.array([[1.0, 0, ox], [0, 1.0, oy], [0, 0, 1]]) @ h_img)
    t = targets(sm, (side, side))
    return {"image": canvas, **t}


def collate(samples: list[dict]) -> dict:
    return {"image": torch.from_numpy(np.stack([s["image"] for s in samples])).permute(0, 3, 1, 2),
            "corners": torch.from_numpy(np.stack([s["corners"] for s in samples])),
            "uv": torch.from_numpy(np.stack([s["uv"] for s in samples])),
            "mask": torch.from_numpy(np.stack([s["mask"] for s in samples]))}


def map_error(h_pred: np.ndarray | None, sheet_map: SheetMap) -> np.ndarray:
    """|H(true image point) - sheet point| (sheet px) over :data:`LATTICE`; 1e4 when no homography."""
    if h_pred is None:
        return np.full(len(LATTICE), 1e4)
    err = np.linalg.norm(apply_homography(h_pred, sheet_map.sheet_to_image(LATTICE)) - LATTICE, axis=1)
    return np.minimum(err, 1e4)


def validate(model: torch.nn.Module, config: dict, items: list) -> dict:
    """Per image type: median over images of the lattice-median map error, and its 95th percentile; the
    share of confident fits."""
    model.eval()
    rect = KeypointRectifier(model, config, RoutingConfig(**config["routing"]))
    per: dict = {}
    for img, sm, meta in items:
        fit = rect.detect(img)
        e = float(np.median(map_error(fit.image_to_sheet_h, sm)))
        per.setdefault(meta["image_type"], []).append((e, fit.confident))
    out = {}
    for t, rows in sorted(per.items()):
        e = np.array([r[0] for r in rows])
        out[t] = {"median_px": round(float(np.median(e)), 2), "p95_px": round(float(np.percentile(e, 95)), 1),
                  "confident": round(float(np.mean([r[1] for r in rows])), 3), "n": len(rows)}
    all_e = np.concatenate([[r[0] for r in rows] for rows in per.values()])
    out["score"] = round(float(np.mean(np.minimum(all_e, 200.0))), 3)  # mean of clipped errors: lower is better
    model.train()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--signals", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True, help="bundle folder (weights/stage0_rectify)")
    ap.add_argument("--pool", type=Path, default=Path("/work/pool/kp"))
    ap.add_argument("--pool-pages", type=int, default=700)
    ap.add_argument("--val-pages", type=int, default=40)
    ap.add_argument("--minutes", type=float, default=45.0, help="training time (after the pool is complete)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--eval-min", type=float, default=6.0)
    ap.add_argument("--run-dir", type=Path, default=Path("runs/stage0_keypoints"))
    ap.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint.pt")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eik-pool", type=Path, help="ECG-Image-Kit set whose plain drawings join the training pool")
    ap.add_argument("--eik-val-pool", type=Path, help="ECG-Image-Kit set whose plain drawings join validation")
    ap.add_argument("--init", type=Path, help="start from this bundle's weights (its network configuration)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    from stage0_rectify.data import main as pool_main

    for sub, pages, extra in (("train", args.pool_pages, []), ("val", args.val_pages, ["--val"])):
        if len(list((args.pool / sub).glob("*.done"))) < pages:
            log(f"completing the pool {args.pool / sub} ({pages} pages)")
            pool_main(["--signals", str(args.signals), "--out", str(args.pool / sub), "--pages", str(pages), *extra])
    for sub, eik, seed in (("train", args.eik_pool, TRAIN_SEED), ("val", args.eik_val_pool, VAL_SEED)):
        if eik is not None:
            n_new = write_eik_pool(args.pool / sub, eik, seed)
            log(f"ECG-Image-Kit drawings of {eik} into {args.pool / sub}: {n_new} new images")
    train_files = list_pool(args.pool / "train")
    val_items = [load_pool_item(p) for p in list_pool(args.pool / "val")]
    log(f"pool: {len(train_files)} training images, {len(val_items)} validation images")

    config = {"model_name": DEFAULT_MODEL["name"], "model_kwargs": DEFAULT_MODEL["kwargs"], "input_side": NET_SIDE,
              "routing": RoutingConfig().__dict__,
              "input": "RGB image, long side input_side px (INTER_AREA), centred on a grey (127) square canvas, "
                       "(x/255-0.5)/0.25",
              "output": "4 corner spatial-softmax logits (sheet TL, TR, BR, BL), sheet u, v, page-mask logit"}
    if args.init is not None:
        model, init_config = load_bundle(args.init)
        config.update(model_name=init_config["model_name"], model_kwargs=init_config["model_kwargs"],
                      routing={**config["routing"], **init_config.get("routing", {})})
    else:
        model = create_model(config["model_name"], **config["model_kwargs"])
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = args.run_dir / "checkpoint.pt"
    step, best, spent = 0, math.inf, 0.0
    if args.resume and ckpt.is_file():
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, best, spent = state["step"], state["best"], state["spent_s"]
        log(f"resumed at step {step}, best {best}, {spent / 60:.1f} min spent")
    elif args.init is not None:
        best = validate(model, config, val_items)["score"]
        log(f"from {args.init}: validation score {best} to beat")
    rng = np.random.default_rng([args.seed, step])
    budget = args.minutes * 60.0
    t_start = time.time() - spent
    t_eval = time.time()
    model.train()
    running: dict = {}
    while True:
        elapsed = time.time() - t_start
        frac = min(1.0, elapsed / budget)
        lr = args.lr * min(1.0, (step + 1) / 50) * 0.5 * (1 + math.cos(math.pi * frac))
        for g in opt.param_groups:
            g["lr"] = lr
        batch = []
        for i in rng.integers(0, len(train_files), args.batch):
            img, sm, _ = load_pool_item(train_files[i])
            batch.append(make_sample(img, sm, rng))
        b = collate(batch)
        out = model(normalise_image(b["image"]))
        loss, parts = keypoint_loss(out, b["corners"], b["uv"], b["mask"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        step += 1
        for k, v in parts.items():
            running[k] = 0.98 * running.get(k, v) + 0.02 * v
        if step % 25 == 0:
            log(f"step {step} lr {lr:.2e} " + " ".join(f"{k} {v:.4f}" for k, v in running.items()))
        done = elapsed >= budget
        if done or time.time() - t_eval >= args.eval_min * 60:
            val = validate(model, config, val_items)
            log(f"validation at step {step}: {json.dumps(val)}")
            if val["score"] < best:
                best = val["score"]
                save_bundle(model, dict(config, steps=step, train_minutes=round(elapsed / 60, 1), validation=val,
                                        training_data={"signals": str(args.signals), "pool": str(args.pool),
                                                       "pool_pages": args.pool_pages, "val_pages": args.val_pages,
                                                       "train_images_listed": len(train_files),
                                                       "val_images": len(val_items), "pool_side": INPUT_SIDE,
                                                       "batch": args.batch, "lr": args.lr,
                                                       "eik_pool": str(args.eik_pool), "eik_val_pool":
                                                       str(args.eik_val_pool), "init": str(args.init),
                                                       "command": " ".join(sys.argv)}), args.out)
                log(f"bundle written to {args.out} (score {best})")
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "best": best,
                        "spent_s": time.time() - t_start}, ckpt)
            t_eval = time.time()
            train_files = list_pool(args.pool / "train")  # a pool still being written keeps growing
        if done:
            break
    load_bundle(args.out)  # the written bundle loads strictly
    log(f"done: {step} steps, best validation score {best}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
