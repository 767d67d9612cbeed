"""The exact map between an image's pixels and the canonical sheet's pixels.

A flat page seen by a camera or scanner is a homography. Curled, folded or crumpled paper adds a smooth
residual on top, which we carry as a coarse displacement field over the sheet:

    sheet point s = H(u) + d(H(u))

with u an image point, H a 3x3 homography (image px -> sheet px) and d bilinearly interpolated from a
(gh, gw, 2) grid of displacements (sheet px) whose nodes span the sheet from corner pixel to corner
pixel. With d = 0 this is just H. The page factory records this map as the label of every image; stage 0
estimates the homography part.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from common.geometry import CANONICAL, SheetGeometry


def apply_homography(h: np.ndarray, points_xy: np.ndarray) -> np.ndarray:
    """Map (..., 2) points through a 3x3 homography."""
    pts = np.asarray(points_xy, dtype=np.float64)
    flat = pts.reshape(-1, 2)
    hom = flat @ h[:, :2].T + h[:, 2]
    out = hom[:, :2] / hom[:, 2:3]
    return out.reshape(pts.shape)


@dataclass(frozen=True)
class SheetMap:
    image_to_sheet_h: np.ndarray
    displacement_px: np.ndarray | None = None
    geometry: SheetGeometry = CANONICAL

    def __post_init__(self) -> None:
        h = np.asarray(self.image_to_sheet_h, dtype=np.float64)
        if h.shape != (3, 3) or not np.isfinite(h).all() or abs(np.linalg.det(h)) < 1e-12:
            raise ValueError(f"image_to_sheet_h must be a finite invertible 3x3 matrix, got {h!r}")
        object.__setattr__(self, "image_to_sheet_h", h / h[2, 2])
        if self.displacement_px is not None:
            d = np.asarray(self.displacement_px, dtype=np.float32)
            if d.ndim != 3 or d.shape[2] != 2 or min(d.shape[:2]) < 2 or not np.isfinite(d).all():
                raise ValueError(f"displacement_px must be a finite (gh>=2, gw>=2, 2) grid, got {d.shape}")
            object.__setattr__(self, "displacement_px", d)

    @classmethod
    def identity(cls, geometry: SheetGeometry = CANONICAL) -> SheetMap:
        return cls(np.eye(3), None, geometry)

    @property
    def sheet_to_image_h(self) -> np.ndarray:
        return np.linalg.inv(self.image_to_sheet_h)

    def displacement_at(self, sheet_xy: np.ndarray) -> np.ndarray:
        """d(s) for (..., 2) sheet points; zero without a displacement field."""
        s = np.asarray(sheet_xy, dtype=np.float64)
        if self.displacement_px is None:
            return np.zeros_like(s)
        gh, gw = self.displacement_px.shape[:2]
        gx = s[..., 0] * (gw - 1) / (self.geometry.width_px - 1)
        gy = s[..., 1] * (gh - 1) / (self.geometry.height_px - 1)
        flat_x = gx.reshape(1, -1).astype(np.float32)
        flat_y = gy.reshape(1, -1).astype(np.float32)
        out = np.empty(s.shape, dtype=np.float64)
        for c in range(2):
            sampled = cv2.remap(self.displacement_px[..., c], flat_x, flat_y, cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)
            out[..., c] = sampled.reshape(s.shape[:-1])
        return out

    def image_to_sheet(self, image_xy: np.ndarray) -> np.ndarray:
        p = apply_homography(self.image_to_sheet_h, image_xy)
        return p + self.displacement_at(p)

    def sheet_to_image(self, sheet_xy: np.ndarray, iterations: int = 8) -> np.ndarray:
        """Inverse of :meth:`image_to_sheet`; the fixed point p = s - d(p) converges for smooth small d."""
        s = np.asarray(sheet_xy, dtype=np.float64)
        p = s.copy()
        if self.displacement_px is not None:
            for _ in range(iterations):
                p = s - self.displacement_at(p)
        return apply_homography(self.sheet_to_image_h, p)

    def image_to_sheet_maps(self, image_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """For every pixel of an image of size ``image_hw``, its sheet x and y (float32 maps for
        ``cv2.remap``): rendering a degraded image from a clean sheet samples the sheet at these."""
        h, w = image_hw
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        s = self.image_to_sheet(np.stack([xs, ys], axis=-1))
        return s[..., 0].astype(np.float32), s[..., 1].astype(np.float32)

    def sheet_to_image_maps(self) -> tuple[np.ndarray, np.ndarray]:
        """For every sheet pixel, its image x and y: ``cv2.remap(image, *maps)`` rectifies the image."""
        g = self.geometry
        xs, ys = np.meshgrid(np.arange(g.width_px, dtype=np.float64), np.arange(g.height_px, dtype=np.float64))
        u = self.sheet_to_image(np.stack([xs, ys], axis=-1))
        return u[..., 0].astype(np.float32), u[..., 1].astype(np.float32)

    def rectify(self, image: np.ndarray, border_value=(255, 255, 255)) -> np.ndarray:
        """Resample ``image`` onto the sheet through this map."""
        mx, my = self.sheet_to_image_maps()
        return cv2.remap(image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=border_value)

    def then_image_transform(self, old_to_new_image_h: np.ndarray) -> SheetMap:
        """The map of an image that is this one's image moved by a further homography (e.g. a crop,
        resize or camera view of it)."""
        h = self.image_to_sheet_h @ np.linalg.inv(np.asarray(old_to_new_image_h, dtype=np.float64))
        return SheetMap(h, self.displacement_px, self.geometry)

    def to_dict(self) -> dict:
        return {
            "image_to_sheet_h": self.image_to_sheet_h.tolist(),
            "displacement_px": None if self.displacement_px is None else self.displacement_px.tolist(),
            "sheet_hw": [self.geometry.height_px, self.geometry.width_px],
        }

    @classmethod
    def from_dict(cls, data: dict, geometry: SheetGeometry = CANONICAL) -> SheetMap:
        if list(data.get("sheet_hw", geometry.shape_hw)) != list(geometry.shape_hw):
            raise ValueError(f"sheet map was made for a {data['sheet_hw']} sheet, not {geometry.shape_hw}")
        d = data.get("displacement_px")
        return cls(np.array(data["image_to_sheet_h"]), None if d is None else np.array(d, np.float32), geometry)
