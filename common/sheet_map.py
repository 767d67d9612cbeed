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
from functools import cached_property

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

    @cached_property
    def _fine_displacement(self) -> np.ndarray:
        """The displacement grid resampled (exactly bilinearly) onto a nested grid of cells <= 2 sheet px.

        ``cv2.remap`` quantises sampling positions to 1/32 of a source cell; on the coarse grid that makes d a
        staircase (steps of ~cell/32 px along the sheet), which breaks the fixed-point inverse. On this nested
        grid the remap is the same bilinear function up to 1/16 px of sampling position (so d is off by at
        most |slope of d| / 16 px)."""
        d = self.displacement_px
        out = d
        for axis, size in ((1, self.geometry.width_px), (0, self.geometry.height_px)):
            n = d.shape[axis]
            k = max(1, int(np.ceil((size - 1) / (n - 1) / 2.0)))
            pos = np.arange((n - 1) * k + 1) / k
            i = np.minimum(pos.astype(np.intp), n - 2)
            f = (pos - i).astype(np.float32)
            f = f[None, :, None] if axis == 1 else f[:, None, None]
            lo, hi = np.take(out, i, axis=axis), np.take(out, i + 1, axis=axis)
            out = lo + (hi - lo) * f
        if max(out.shape[:2]) >= 32767:
            raise ValueError(f"displacement grid {d.shape} is too fine")
        return np.ascontiguousarray(out, dtype=np.float32)

    def displacement_maps(self, sheet_x: np.ndarray, sheet_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """d at sheet points given as two same-shape float32 arrays (e.g. per-pixel maps); fast path of
        :meth:`displacement_at`. Without a displacement field both outputs are zero."""
        sx = np.asarray(sheet_x, dtype=np.float32)
        sy = np.asarray(sheet_y, dtype=np.float32)
        if self.displacement_px is None:
            return np.zeros_like(sx), np.zeros_like(sy)
        fine = self._fine_displacement
        fh, fw = fine.shape[:2]
        mx = sx * np.float32((fw - 1) / (self.geometry.width_px - 1))
        my = sy * np.float32((fh - 1) / (self.geometry.height_px - 1))
        if mx.ndim != 2 or max(mx.shape) >= 32767:  # cv2.remap wants 2-D maps with sides < SHRT_MAX
            n = mx.size
            cols = max(1, min(n, 8192))
            rows = -(-n // cols)
            pad = rows * cols - n
            flat_x = np.pad(mx.reshape(-1), (0, pad)).reshape(rows, cols)
            flat_y = np.pad(my.reshape(-1), (0, pad)).reshape(rows, cols)
            out = cv2.remap(fine, flat_x, flat_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            out = out.reshape(-1, 2)[:n]
            return out[:, 0].reshape(sx.shape), out[:, 1].reshape(sx.shape)
        out = cv2.remap(fine, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return out[..., 0], out[..., 1]

    def displacement_at(self, sheet_xy: np.ndarray) -> np.ndarray:
        """d(s) for (..., 2) sheet points; zero without a displacement field."""
        s = np.asarray(sheet_xy, dtype=np.float64)
        if self.displacement_px is None:
            return np.zeros_like(s)
        dx, dy = self.displacement_maps(s[..., 0], s[..., 1])
        return np.stack([dx, dy], axis=-1).astype(np.float64)

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

    @staticmethod
    def _homography_maps(h: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """h applied to the grid of points (xs[j], ys[i]) (float32, separable sums keep it cheap)."""
        x = xs.astype(np.float64)
        y = ys.astype(np.float64)[:, None]
        out = []
        for r in range(3):
            row = (h[r, 1] * y + h[r, 2]).astype(np.float32)
            out.append(row + (h[r, 0] * x).astype(np.float32))
        return out[0] / out[2], out[1] / out[2]

    def image_to_sheet_maps(self, image_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """For every pixel of an image of size ``image_hw``, its sheet x and y (float32 maps for
        ``cv2.remap``): rendering a degraded image from a clean sheet samples the sheet at these.
        Same map as :meth:`image_to_sheet`, evaluated in float32."""
        h, w = image_hw
        px, py = self._homography_maps(self.image_to_sheet_h, np.arange(w), np.arange(h))
        if self.displacement_px is not None:
            dx, dy = self.displacement_maps(px, py)
            px += dx
            py += dy
        return px, py

    def sheet_to_image_maps(self, iterations: int = 8) -> tuple[np.ndarray, np.ndarray]:
        """For every sheet pixel, its image x and y: ``cv2.remap(image, *maps)`` rectifies the image.
        Same map as :meth:`sheet_to_image`, evaluated in float32."""
        g = self.geometry
        sx = np.broadcast_to(np.arange(g.width_px, dtype=np.float32), g.shape_hw)
        sy = np.broadcast_to(np.arange(g.height_px, dtype=np.float32)[:, None], g.shape_hw)
        px, py = sx, sy
        if self.displacement_px is not None:
            for _ in range(iterations):
                dx, dy = self.displacement_maps(px, py)
                px, py = sx - dx, sy - dy
        hi = self.sheet_to_image_h.astype(np.float32)
        den = hi[2, 0] * px + hi[2, 1] * py + hi[2, 2]
        return (hi[0, 0] * px + hi[0, 1] * py + hi[0, 2]) / den, (hi[1, 0] * px + hi[1, 1] * py + hi[1, 2]) / den

    def rectify(self, image: np.ndarray, border_value=(255, 255, 255)) -> np.ndarray:
        """Resample ``image`` onto the sheet through this map."""
        if self.displacement_px is None:
            # a homography alone: OpenCV evaluates it block by block, a fifth of the time of building the two
            # full-sheet maps in numpy (the same sampling up to a 1/32 px rounding step on a few pixels)
            return cv2.warpPerspective(image, self.sheet_to_image_h, (self.geometry.width_px, self.geometry.height_px),
                                       flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                       borderMode=cv2.BORDER_CONSTANT, borderValue=border_value)
        mx, my = self.sheet_to_image_maps()
        return cv2.remap(image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=border_value)

    def then_image_transform(self, old_to_new_image_h: np.ndarray) -> SheetMap:
        """The map of an image that is this one's image moved by a further homography (e.g. a crop,
        resize or camera view of it)."""
        h = self.image_to_sheet_h @ np.linalg.inv(np.asarray(old_to_new_image_h, dtype=np.float64))
        return SheetMap(h, self.displacement_px, self.geometry)

    def turned_half(self) -> SheetMap:
        """The map onto the same sheet turned by half a turn (sheet px (x, y) -> (W - 1 - x, H - 1 - y)): the
        homography followed by the turn, the displacement grid turned and negated (its nodes span the sheet
        corner to corner, so the turn maps node (i, j) onto node (gh - 1 - i, gw - 1 - j))."""
        g = self.geometry
        turn = np.array([[-1.0, 0.0, g.width_px - 1.0], [0.0, -1.0, g.height_px - 1.0], [0.0, 0.0, 1.0]])
        d = None if self.displacement_px is None else -self.displacement_px[::-1, ::-1]
        return SheetMap(turn @ self.image_to_sheet_h, d, g)

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
