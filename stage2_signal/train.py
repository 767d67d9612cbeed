"""Train the stage-2 refiner on collected readings (see :mod:`stage2_signal.data`) and write a stage-2 bundle.

    python -m stage2_signal.train --train runs/refiner/train.npz --val runs/refiner/val.npz \
        --base weights/stage2_signal --out runs/refiner/bundle [--minutes 10] [--seed 0]

The loss is the metric's: per page, noise over signal power after each lead's constant offset is removed
(:func:`stage2_signal.model.snr_loss`), against the truth shifted by the lag the metric would choose for the
reading (the metric forgives a lag, so the refiner must not be taught to blur a shifted QRS into place).
``--loss pages`` averages log SNR over pages; ``--loss metric`` weights each page by its linear SNR (the
gradient of the metric's mean linear SNR: improve the pages that carry the score). Validation reports, before
and after the refiner, on the same lag-aligned truth, the mean page SNR (dB, uncapped) and the metric's score
(10 log10 of the mean linear page SNR capped at 384); the one matching the loss decides. The bundle (the base
bundle's reading settings + the refiner) is written whenever validation improves and records data, steps and
the scores.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from common.layouts import LEADS
from common.metric import MAX_SNR, lead_powers
from stage2_signal.data import load_leads
from stage2_signal.infer import ExtractorConfig, SignalExtractor
from stage2_signal.model import LOSS_WEIGHTINGS, REFINE_FS_HZ, create_refiner, page_powers, snr_loss
from stage2_signal.refine import Refiner, lead_tensors

DEFAULT_REFINER = {"name": "lead_cnn", "kwargs": {"channels": 32, "kernel": 5, "dilations": [1, 2, 4, 8, 16, 1]}}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def align_truth(data: dict) -> dict:
    """Each lead's truth moved by the metric's lag for its reading, into the reading's time frame (held at the
    ends): what the metric compares the reading with."""
    aligned = []
    for x, y in zip(data["x"], data["y"], strict=True):
        _, _, lag, _ = lead_powers(y.astype(np.float64), x.astype(np.float64), REFINE_FS_HZ)
        aligned.append(np.interp(np.arange(y.size) + lag, np.arange(y.size), y).astype(np.float32))
    return {**data, "y": aligned}


def page_batches(data: dict) -> list[np.ndarray]:
    """Indices of each page's leads (a page is the unit the metric scores)."""
    order = np.argsort(data["page"], kind="stable")
    cuts = np.flatnonzero(np.diff(data["page"][order])) + 1
    return np.split(order, cuts)


def batch_tensors(data: dict, idx: np.ndarray, crop: int | None = None, rng: np.random.Generator | None = None):
    """Inputs, printed mask, truth and page of leads ``idx``; with ``crop``, a random window of that many samples
    from each longer lead (the rhythm strip), so a batch is not mostly padding."""
    xs, cs, ys = [], [], []
    for i in idx:
        x, c, y = data["x"][i], data["c"][i], data["y"][i]
        if crop is not None and x.size > crop:
            a = int(rng.integers(0, x.size - crop + 1))
            x, c, y = x[a : a + crop], c[a : a + crop], y[a : a + crop]
        xs.append(x)
        cs.append(c)
        ys.append(y)
    inputs, printed = lead_tensors(xs, cs, [LEADS[int(data["lead"][i])] for i in idx])
    truth = torch.zeros_like(printed)
    for k, y in enumerate(ys):
        truth[k, : y.size] = torch.from_numpy(y)
    return inputs, printed, truth, torch.from_numpy(data["page"][idx])


def page_snr(pred: torch.Tensor, y: torch.Tensor, printed: torch.Tensor, page: torch.Tensor) -> np.ndarray:
    """Per page linear SNR (uncapped) as the loss sees it."""
    noise, signal = page_powers(pred, y, printed, page)
    return ((signal + 1e-4) / (noise + 1e-4)).numpy()


def scores(snr: np.ndarray) -> dict:
    """Mean page dB (uncapped) and the metric's score (dB of the mean capped linear SNR)."""
    return {"pages": float(np.mean(10 * np.log10(snr))),
            "metric": float(10 * np.log10(np.mean(np.minimum(snr, MAX_SNR))))}


@torch.no_grad()
def evaluate(model, val: dict, pages: list[np.ndarray]) -> tuple[dict, dict]:
    """Scores (see :func:`scores`) of the readings and of the refined readings."""
    model.eval()
    before, after = [], []
    for k in range(0, len(pages), 16):
        idx = np.concatenate(pages[k : k + 16])
        inputs, printed, y, page = batch_tensors(val, idx)
        x = inputs[:, 0]
        before.append(page_snr(x, y, printed, page))
        after.append(page_snr(x + model(inputs), y, printed, page))
    model.train()
    return scores(np.concatenate(before)), scores(np.concatenate(after))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--val", type=Path, required=True)
    parser.add_argument("--base", type=Path, default=Path("weights/stage2_signal"),
                        help="stage-2 bundle whose reading settings the new bundle keeps")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", type=json.loads, default=DEFAULT_REFINER)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--pages-per-batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=int(2.5 * REFINE_FS_HZ), help="training window (samples)")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--loss", choices=LOSS_WEIGHTINGS, default="metric",
                        help="pages: every page alike; metric: pages weighted by linear SNR, as the score is")
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    for p in (args.train, args.val, args.base / "config.json"):
        if not p.is_file():
            parser.error(f"{p} does not exist")
    base_cfg = ExtractorConfig.from_dict(json.loads((args.base / "config.json").read_text()))
    train, val = align_truth(load_leads(args.train)), align_truth(load_leads(args.val))
    train_pages, val_pages = page_batches(train), page_batches(val)
    log(f"{len(train_pages)} train pages, {len(val_pages)} val pages")
    model = create_refiner(args.model["name"], **args.model["kwargs"])
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    before, untrained = evaluate(model, val, val_pages)
    best = untrained[args.loss]
    log(f"val: readings {before['pages']:.2f} dB per page, score {before['metric']:.2f} dB; "
        f"untrained refiner {untrained[args.loss]:.2f} dB ({args.loss})")
    start, step = time.time(), 0
    history = []

    def save(after: dict) -> None:
        trained = {"train_data": str(args.train), "val_data": str(args.val), "steps": step,
                   "train_pages": len(train_pages), "val_pages": len(val_pages),
                   "val_readings_db": {k: round(v, 3) for k, v in before.items()},
                   "val_refined_db": {k: round(v, 3) for k, v in after.items()},
                   "selected_on": args.loss,
                   "loss": f"per-page log10(noise/signal), per-lead offset removed, weighting {args.loss!r}"}
        section = Refiner.save(model, args.model["name"], args.model["kwargs"], REFINE_FS_HZ, args.out, trained)
        cfg = ExtractorConfig(base_cfg.extract, base_cfg.calibrate, base_cfg.postprocess, section)
        SignalExtractor(cfg, args.out).save_bundle(args.out)
        log(f"bundle written to {args.out} (val {after[args.loss]:.2f} dB, {args.loss})")

    def out_of_time() -> bool:
        return time.time() - start > 60 * args.minutes or (args.max_steps is not None and step >= args.max_steps)

    while not out_of_time():
        chosen = rng.choice(len(train_pages), size=min(args.pages_per_batch, len(train_pages)), replace=False)
        idx = np.concatenate([train_pages[i] for i in chosen])
        inputs, printed, y, page = batch_tensors(train, idx, args.crop, rng)
        loss = snr_loss(inputs[:, 0] + model(inputs), y, printed, page, args.loss)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % args.eval_every == 0 or out_of_time():
            _, after = evaluate(model, val, val_pages)
            history.append({"step": step, "train_loss": float(loss.detach()), "val_db": after})
            log(f"step {step} loss {float(loss.detach()):.3f} | val per page {after['pages']:.2f} dB "
                f"(readings {before['pages']:.2f}), score {after['metric']:.2f} dB (readings {before['metric']:.2f})")
            if after[args.loss] > best:
                best = after[args.loss]
                save(after)
    if not (args.out / "config.json").is_file():
        log(f"the refiner never beat the readings on validation ({best:.2f} vs {before[args.loss]:.2f} dB, "
            f"{args.loss}): no bundle")
        return 1
    (args.out / "history.json").write_text(json.dumps(history, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
