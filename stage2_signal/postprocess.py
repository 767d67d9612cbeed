"""Combine panel readings into leads: fuse printed copies of a lead, enforce Einthoven/Goldberger, and cut
each lead to the number of samples the caller asks for.

* Copies: a lead printed twice (lead II in row 2 and on the rhythm strip of 3x4+II) is averaged where
  both exist, weighted by confidence, after shifting each copy by the least-squares offset that aligns it
  with the longest copy (their baselines were estimated separately).
* Einthoven: the six limb leads are functions of two (III = II - I, aVR = -(I + II)/2, aVL = I - II/2,
  aVF = II - I/2). At every sample the limb leads printed *at that time* are projected onto that 2-D
  subspace by confidence-weighted least squares. Only leads printed over the same time span coincide: in
  3x4 that is I/II/III over 0-2.5 s and aVR/aVL/aVF (+ the rhythm strip's II) over 2.5-5 s; in 6x2 and 12x1
  all six. The per-lead constant part of the inconsistency (separately estimated baselines) is kept out
  of the projection, so it cannot leak into other leads as a step; consistent inputs come out unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.layouts import LEADS, LIMB_LEADS
from stage2_signal.calibrate import PanelReading
from stage2_signal.settings import Settings

# limb leads as combinations of (I, II)
EINTHOVEN_BASIS = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 1.0], [-0.5, -0.5], [1.0, -0.5], [-0.5, 1.0]])


@dataclass(frozen=True)
class PostConfig(Settings):
    SECTION = "postprocess"

    fuse_copies: bool = True  # average a lead's printed copies (else the longest copy wins where it exists)
    align_copies: bool = True  # remove the constant offset between copies before fusing
    einthoven: bool = True
    min_weight: float = 0.05  # confidence floor used as a least-squares weight



def fuse_lead(readings: list[PanelReading], n_full: int, cfg: PostConfig) -> tuple[np.ndarray, np.ndarray]:
    """One lead over the record's samples (NaN where not printed) and its weight, from its panels."""
    values = np.full(n_full, np.nan)
    weight = np.zeros(n_full)
    for k, rd in enumerate(sorted(readings, key=lambda r: r.i1 - r.i0, reverse=True)):
        v = np.asarray(rd.mv, dtype=np.float64).copy()
        w = np.maximum(np.asarray(rd.conf, dtype=np.float64), cfg.min_weight)
        sl = slice(rd.i0, rd.i1)
        have = np.isfinite(values[sl])
        if k == 0 or not have.any():
            values[sl] = np.where(have, values[sl], v)
            weight[sl] = np.where(have, weight[sl], w)
            continue
        if cfg.align_copies:
            ww = weight[sl][have] * w[have]
            v += float(np.sum(ww * (values[sl][have] - v[have])) / np.sum(ww))
        if cfg.fuse_copies:
            tot = weight[sl] + w
            values[sl] = np.where(have, (weight[sl] * values[sl] + w * v) / tot, v)
            weight[sl] = np.where(have, tot, w)
        else:
            values[sl] = np.where(have, values[sl], v)
            weight[sl] = np.where(have, weight[sl], w)
    return values, weight


def einthoven_project(values: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Project limb leads (6, n) [I, II, III, aVR, aVL, aVF], NaN where not printed, onto Einthoven's
    2-D subspace at every sample where at least three coincide (see the module doc). Returns a copy."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] != len(LIMB_LEADS):
        raise ValueError(f"einthoven_project needs (6, n) limb leads, got {values.shape}")
    w_all = np.ones_like(values) if weights is None else np.asarray(weights, dtype=np.float64)
    out = values.copy()
    present = np.isfinite(values)
    code = (present * (1 << np.arange(6))[:, None]).sum(axis=0)
    for c in np.unique(code):
        leads = np.flatnonzero((c >> np.arange(6)) & 1)
        if leads.size < 3:
            continue
        basis = EINTHOVEN_BASIS[leads]  # (k, 2)
        if np.linalg.matrix_rank(basis) < 2:
            continue
        cols = np.flatnonzero(code == c)
        v = values[np.ix_(leads, cols)]  # (k, m)
        w = np.maximum(w_all[np.ix_(leads, cols)], 1e-6)
        # keep the constant inconsistency (separately estimated baselines) out of the projection
        proj = basis @ np.linalg.pinv(basis)
        mean = v.mean(axis=1)
        const = mean - proj @ mean
        v = v - const[:, None]
        a = np.einsum("km,ki,kj->mij", w, basis, basis)  # (m, 2, 2)
        b = np.einsum("km,km,ki->mi", w, v, basis)  # (m, 2)
        ab = np.linalg.solve(a, b[..., None])[..., 0]  # (m, 2)
        out[np.ix_(leads, cols)] = (ab @ basis.T).T + const[:, None]
    return out


def to_requested_length(values: np.ndarray, n_req: int) -> np.ndarray:
    """A lead's printed samples (NaN elsewhere) as exactly ``n_req`` values.

    If ``n_req`` equals the number of printed samples, those (in time order); if it is the whole record,
    every sample, the unprinted ones interpolated (held beyond the ends); otherwise ``n_req`` consecutive
    samples from the first printed one.
    """
    idx = np.flatnonzero(np.isfinite(values))
    if idx.size == 0:
        raise ValueError("lead was not read at any sample")
    if n_req == idx.size:
        return values[idx].copy()
    if n_req == values.size:
        pos = np.arange(n_req)
    else:
        pos = idx[0] + np.arange(n_req)
    return np.interp(pos, idx, values[idx])


def assemble_leads(readings: list[PanelReading], n_full: int, n_requested: dict,
                   cfg: PostConfig | None = None) -> tuple[dict, dict]:
    """Leads in mV at the requested lengths, and their per-sample confidence (same lengths)."""
    cfg = cfg or PostConfig()
    values = np.full((len(LEADS), n_full), np.nan)
    weights = np.zeros((len(LEADS), n_full))
    for i, lead in enumerate(LEADS):
        rds = [r for r in readings if r.panel.lead == lead]
        if not rds:
            raise ValueError(f"lead {lead} is not printed in the layout")
        values[i], weights[i] = fuse_lead(rds, n_full, cfg)
    if cfg.einthoven:
        values[:6] = einthoven_project(values[:6], weights[:6])
    leads, conf = {}, {}
    for i, lead in enumerate(LEADS):
        n_req = int(n_requested[lead])
        leads[lead] = to_requested_length(values[i], n_req)
        w = np.where(np.isfinite(values[i]), np.minimum(weights[i], 1.0), np.nan)
        conf[lead] = np.nan_to_num(to_requested_length(w, n_req), nan=0.0)
    return leads, conf
