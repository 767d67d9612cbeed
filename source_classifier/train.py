"""Train the source classifier on factory pages of all nine image types, on CPU.

    python -m source_classifier.train --signals /work/shared/data/signals --out weights/source_classifier \
        --minutes 50 [--pool /work/pool/cls/train] [--val-pool /work/pool/cls/val] [--producers 1] [--seed 0]

Training images come from ``--pool`` folders written by ``python -m source_classifier.data`` (re-scanned every
``--rescan-min`` minutes, so a pool still being written keeps feeding the run) and/or from ``--producers``
processes that render pages on the fly (:class:`source_classifier.data.PageSource`: one sheet degraded as all
nine types). The newest ``--buffer`` images are kept in memory and sampled uniformly, flipped at random.
Validation pages come from ``--val-pool`` or are rendered at start from the validation records (every 10th
record path of each source) with another seed. Every ``--eval-min`` minutes the run validates; when accuracy
rises (ties: lower loss) the bundle is written. The learning rate follows a cosine over ``--minutes``.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import queue
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from common.types import IMAGE_TYPES
from source_classifier.data import (
    DEFAULT_INPUT_HW,
    EIK_SHARE,
    PageSource,
    eik_sheets,
    load_shards,
    pool_shards,
    read_description,
    split_records,
)
from source_classifier.infer import DEFAULT_THRESHOLD, bf16_native, load_bundle, save_bundle
from source_classifier.model import create_model, normalise_input

DEFAULT_MODEL = {"name": "timm_classifier",
                 "kwargs": {"timm_name": "tinynet_c", "in_chans": 4, "num_classes": len(IMAGE_TYPES), "drop_rate": 0.2}}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _producer(source: PageSource, start: int, stride: int, input_hw: tuple[int, int], q) -> None:
    """Render pages start, start + stride, ... of ``source`` into ``q`` forever (one of ``stride`` producers)."""
    import cv2

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    i = start
    while True:
        try:
            q.put(source.inputs(i, input_hw))
        except Exception as exc:  # noqa: BLE001 - one bad page must not stop training
            print(f"producer: page {i} failed: {type(exc).__name__}: {exc}", flush=True)
        i += stride


class Buffer:
    """A ring of the newest ``cap`` training images (uint8, (cap, h, w, 4)) and their type indices."""

    def __init__(self, cap: int):
        self.cap = int(cap)
        self.x: np.ndarray | None = None
        self.y = np.zeros(self.cap, np.int64)
        self.seen = 0

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        if self.x is None:
            self.x = np.empty((self.cap, *x.shape[1:]), np.uint8)
        for xi, yi in zip(x, y, strict=True):
            self.x[self.seen % self.cap] = xi
            self.y[self.seen % self.cap] = yi
            self.seen += 1

    def __len__(self) -> int:
        return min(self.seen, self.cap)

    def batch(self, rng: np.random.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = rng.integers(0, len(self), size=n)
        x = torch.from_numpy(self.x[idx]).permute(0, 3, 1, 2)  # (B, 4, h, w) uint8
        flip_x, flip_y = rng.random(n) < 0.5, rng.random(n) < 0.5
        x[torch.from_numpy(flip_x)] = x[torch.from_numpy(flip_x)].flip(3)
        x[torch.from_numpy(flip_y)] = x[torch.from_numpy(flip_y)].flip(2)
        return x, torch.from_numpy(self.y[idx].copy())


@torch.inference_mode()
def evaluate(model: torch.nn.Module, x_val: np.ndarray, y_val: np.ndarray, bf16: bool, batch: int = 32) -> dict:
    """Accuracy, mean cross-entropy, per-type accuracy and the confusion matrix (rows: truth, columns:
    prediction, in IMAGE_TYPES order) on the validation images."""
    model.eval()
    logits = []
    for i in range(0, len(y_val), batch):
        x = normalise_input(torch.from_numpy(x_val[i : i + batch]).permute(0, 3, 1, 2))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits.append(model(x.contiguous(memory_format=torch.channels_last)).float())
    model.train()
    out = torch.cat(logits)
    y = torch.from_numpy(y_val)
    pred = out.argmax(1).numpy()
    k = len(IMAGE_TYPES)
    cm = np.zeros((k, k), np.int64)
    np.add.at(cm, (y_val, pred), 1)
    per_type = {t: round(float(cm[i, i] / max(1, cm[i].sum())), 4) for i, t in enumerate(IMAGE_TYPES)}
    return {"accuracy": float((pred == y_val).mean()), "loss": float(F.cross_entropy(out, y)),
            "per_type_accuracy": per_type, "confusion": cm.tolist(), "n": int(len(y_val))}


def lr_at(progress: float, step: int, base: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then a cosine from ``base`` to 2 % of it over the run."""
    w = min(1.0, (step + 1) / warmup)
    return base * w * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m source_classifier.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--signals", type=Path, required=True, help="folder of record sources (cpsc2018, ludb, ...)")
    ap.add_argument("--out", type=Path, default=Path("weights/source_classifier"), help="bundle folder")
    ap.add_argument("--run-dir", type=Path, default=Path("runs/source_classifier"), help="logs, last checkpoint")
    ap.add_argument("--minutes", type=float, required=True, help="wall time of the run (the lr schedule's length)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pool", type=Path, action="append", default=[], help="pre-rendered training pool folder")
    ap.add_argument("--val-pool", type=Path, default=None, help="pre-rendered validation pool folder")
    ap.add_argument("--val-pages", type=int, default=30, help="validation pages (x9 types) rendered without one")
    ap.add_argument("--producers", type=int, default=1, help="on-the-fly page renderers (processes)")
    ap.add_argument("--eik-pool", type=Path, action="append", default=[],
                    help="ECG-Image-Kit pool folders whose plain drawings the producers use as sheets")
    ap.add_argument("--input-hw", type=int, nargs=2, default=list(DEFAULT_INPUT_HW))
    ap.add_argument("--model", type=str, default=None, help="JSON {name, kwargs} overriding the default model")
    ap.add_argument("--init", type=Path, default=None,
                    help="start from this bundle's weights (a continued run); its network unless --model names "
                         "another configuration the weights fit")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--weight-decay", type=float, default=0.02)
    ap.add_argument("--label-smoothing", type=float, default=0.05)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--buffer", type=int, default=12000, help="training images kept in memory (184 KB each)")
    ap.add_argument("--min-buffer", type=int, default=90)
    ap.add_argument("--rescan-min", type=float, default=3.0)
    ap.add_argument("--eval-min", type=float, default=6.0)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the trainer")
    ap.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                    help="top-type probability under which a prediction is low-confidence (written to the bundle)")
    args = ap.parse_args(argv)
    if not args.pool and args.producers < 1:
        ap.error("give --pool folders or at least one --producers")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    input_hw = (int(args.input_hw[0]), int(args.input_hw[1]))
    args.run_dir.mkdir(parents=True, exist_ok=True)
    model_cfg = json.loads(args.model) if args.model else DEFAULT_MODEL
    init_model, init_desc = None, None
    if args.init is not None:
        init_model, init_cfg = load_bundle(args.init)
        init_desc = {"bundle": str(args.init), "model_kwargs": init_cfg["model_kwargs"],
                     "training": init_cfg.get("training"),
                     "validation_accuracy": (init_cfg.get("validation") or {}).get("accuracy")}
        if args.model:  # another configuration of the same weights (e.g. its global pooling)
            init_model = create_model(model_cfg["name"], **model_cfg["kwargs"])
            init_model.load_state_dict(load_bundle(args.init)[0].state_dict(), strict=True)
        else:
            model_cfg = {"name": init_cfg["model_name"], "kwargs": init_cfg["model_kwargs"]}
        if tuple(init_cfg["input_hw"]) != tuple(args.input_hw):
            ap.error(f"--init bundle's input is {init_cfg['input_hw']}, not --input-hw {args.input_hw}")
    bf16 = bf16_native(torch.device("cpu"))
    log(f"bf16 autocast: {bf16} (native bf16 on this CPU: {bf16})")

    train_recs, val_recs, data_desc = split_records(args.signals)
    eik = eik_sheets(args.eik_pool)
    log(f"records: {len(train_recs)} train / {len(val_recs)} val windows {data_desc}; {len(eik)} plain ECG-Image-Kit "
        "sheets")
    if args.val_pool is not None:
        x_val, y_val = load_shards(pool_shards(args.val_pool))
        val_desc = {"pool": str(args.val_pool), "pages": len(pool_shards(args.val_pool)),
                    "rendered": read_description(args.val_pool)}
    else:
        val_src = PageSource(val_recs, "val", args.seed + 1, [])
        parts = [val_src.inputs(i, input_hw) for i in range(args.val_pages)]
        x_val, y_val = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        val_desc = {"rendered": args.val_pages, "seed": args.seed + 1}
    if x_val.shape[1:3] != input_hw:
        raise SystemExit(f"validation inputs are {x_val.shape[1:3]}, not --input-hw {input_hw}")
    log(f"validation: {len(y_val)} images {val_desc}")

    ctx = mp.get_context("spawn")
    q = ctx.Queue(maxsize=32)
    train_src = PageSource(train_recs, "train", args.seed, eik)
    # producers start far past any pool's page indices, so they never redraw a pooled page
    procs = [ctx.Process(target=_producer, args=(train_src, 10**6 + k, args.producers, input_hw, q), daemon=True)
             for k in range(args.producers)]
    for p in procs:
        p.start()

    buf = Buffer(args.buffer)
    loaded: set[Path] = set()

    def rescan() -> int:
        new = [s for folder in args.pool for s in pool_shards(folder) if s not in loaded]
        if new:
            x, y = load_shards(new)
            if x.shape[1:3] != input_hw:
                raise SystemExit(f"pool inputs are {x.shape[1:3]}, not --input-hw {input_hw}")
            buf.add(x, y)
            loaded.update(new)
        return len(new)

    def drain() -> int:
        n = 0
        while True:
            try:
                x, y = q.get_nowait()
            except queue.Empty:
                return n
            buf.add(x, y)
            n += 1

    rescan()
    while len(buf) < args.min_buffer:
        time.sleep(2.0)
        drain()
        rescan()
    log(f"buffer: {len(buf)} images")

    model = init_model if init_model is not None else create_model(model_cfg["name"], **model_cfg["kwargs"])
    model = model.train().to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    t0 = time.time()
    last_eval = last_scan = t0
    step = 0
    best: tuple | None = None
    if init_model is not None:  # a continued run writes its bundle only when it beats the bundle it started from
        res0 = evaluate(model, x_val, y_val, bf16)
        best = (res0["accuracy"], -res0["loss"])
        log(f"--init bundle: accuracy {res0['accuracy']:.4f} loss {res0['loss']:.4f}")
    written = False
    losses: list[float] = []
    history: list[dict] = []
    minutes = float(args.minutes)
    while True:
        elapsed = time.time() - t0
        done = elapsed >= minutes * 60
        if done or time.time() - last_eval >= args.eval_min * 60:
            res = evaluate(model, x_val, y_val, bf16)
            res.update(step=step, minutes=round(elapsed / 60, 2), seen=buf.seen)
            history.append({k: res[k] for k in ("step", "minutes", "accuracy", "loss", "seen")})
            log(f"eval step {step}: accuracy {res['accuracy']:.4f} loss {res['loss']:.4f} "
                f"per type {res['per_type_accuracy']}")
            key = (res["accuracy"], -res["loss"])
            if best is None or key > best:
                best = key
                cfg = {
                    "model_name": model_cfg["name"],
                    "model_kwargs": model_cfg["kwargs"],
                    "class_names": list(IMAGE_TYPES),
                    "input_hw": list(input_hw),
                    "input": "RGB image squashed to input_hw (INTER_AREA) + mean |grey - GaussianBlur(grey, 1 px)| of "
                             "the full-resolution image per input pixel x16 (source_classifier.data.prepare_input), "
                             "uint8, then (x/255-0.5)/0.25",
                    "low_confidence_threshold": float(args.threshold),
                    "inference": {"precision": "auto", "views": ["identity", "flip_x", "flip_y", "flip_xy"]},
                    "training": {
                        "command": " ".join(sys.argv),
                        "steps": step, "minutes": round(elapsed / 60, 2), "batch": args.batch, "lr": args.lr,
                        "images_seen": int(step * args.batch), "distinct_images": buf.seen,
                        "threads": args.threads, "bf16": bf16, "seed": args.seed,
                        "init": init_desc,
                    },
                    "training_data": {
                        "signals": str(args.signals), "sources": data_desc,
                        "split": "every 10th record path per source -> validation",
                        "pools": {str(p): read_description(p) for p in args.pool}, "producers": args.producers,
                        "eik_sheets": len(eik), "eik_share": EIK_SHARE if eik else 0.0,
                        "image_types": list(IMAGE_TYPES),
                    },
                    "validation": {**val_desc, **res},
                    "history": history,
                }
                save_bundle(model, cfg, args.out)
                written = True
                log(f"bundle written to {args.out}")
            last_eval = time.time()
        if done:
            break
        if time.time() - last_scan >= args.rescan_min * 60:
            n = rescan()
            last_scan = time.time()
            log(f"rescan: {n} new shards, buffer {len(buf)} images, {buf.seen} seen")
        drain()
        lr = lr_at(elapsed / (minutes * 60), step, args.lr, args.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        x_u8, y = buf.batch(rng, args.batch)
        x = normalise_input(x_u8).contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(x)
        loss = F.cross_entropy(out.float(), y, label_smoothing=args.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        step += 1
        if step % args.log_every == 0:
            log(f"step {step} loss {np.mean(losses[-args.log_every:]):.4f} lr {lr:.2e} buffer {len(buf)} "
                f"({(time.time() - t0) / step:.2f} s/step)")
    for p in procs:
        p.terminate()
    log(f"done: {step} steps in {(time.time() - t0) / 60:.1f} min; best validation accuracy {best[0]:.4f}"
        + ("" if written else f"; never better than the --init bundle, nothing written to {args.out}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
