"""The routing table: per image type, the pre-processing and rectification settings stage 0 / stage 1 use.

One place, as data (:data:`ROUTES`). A prediction under the classifier's confidence threshold is mostly torn
between types of one family that look alike and share a rectifier (colour scan / with mold, black-and-white
scan / with mold, plain / stained / damaged photo of a print: 81 of the 89 confusions on 360 fresh factory
pages, 2026-12-05), so :func:`route` pools the most probable types until their probabilities reach the
threshold: when they share a rectifier the page gets it with every setting any of them asks for (route
"0003+0011"); only types that need different rectifiers give the "general" entry: the settings that assume
least about the page (find the page, flatten the light, allow a curved sheet), which cost time and can only
lose a little on a clean page.

Settings (names only; the stages decide how each is carried out):

* ``rectifier``: "grid" (the page lies flat in the frame, nearly axis-aligned: scale and small rotation from
  the grid) or "keypoints" (the keypoint network's homography, with the grid refinement after it).
* ``find_page``: the page may cover part of the frame with background (table, laptop bezel) around it.
* ``dewarp``: the sheet may be curled, folded or crumpled: stage 0 corrects it from its grid locally (what the
  grid's smooth surface leaves at its nodes, then the finer and 1 mm passes); without it (a screen) the smooth
  surface alone (:meth:`stage0_rectify.infer.KeypointRectifier.rectify`; kp2's screens 13.51 -> 15.39 dB).
  The classifier is asked once, before stage 0 (:meth:`pipeline.chain.Pipeline.route_of`).
* ``illumination_flatten``: divide out uneven light (gradients, shadows, glare) before stage 1.
* ``descreen``: suppress the moire of a photographed screen (0006).
* ``binarised``: a black-and-white scan: no colour to tell grid from trace; the grid may be missing.
* ``paper_normalise``: normalise the paper's colour where stains, soaking or mold discolour it.
* ``despeckle``: remove isolated dark specks (mold colonies, dirt) that are not trace.
* ``stage1``: the stage-1 network that reads a sheet stage 0 did not place by its keypoints (:mod:`pipeline.chain`,
  where the bundle is there): "general" (``weights/stage1_segment``), "mold" (``weights/stage1_mold``, fine-tuned
  on scans with mold: black-and-white ones, 0012, only, the type it reads better; colour ones read alike by both)
  or "photo" (``weights/stage1_photo``, fine-tuned on photographed pages: a photo flat enough for its grid to
  place it). A sheet the keypoints placed is read by the photo network whatever the type.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from common.types import IMAGE_TYPES, SourcePrediction

GENERAL = "general"


@dataclass(frozen=True)
class RouteSettings:
    route: str  # the image type whose settings these are, or "general"
    rectifier: str
    find_page: bool
    dewarp: bool
    illumination_flatten: bool
    descreen: bool
    binarised: bool
    paper_normalise: bool
    despeckle: bool
    stage1: str = "general"

    @property
    def sheet_may_bend(self) -> bool:
        """Whether stage 0 may correct the sheet locally (curl, folds): all but a photo's route that says it lies
        flat (a screen). A scan's ``dewarp: False`` says nothing of a page stage 0 finds it must place as a photo
        (real phone photos named 0003 at 0.7-0.9 read 1.2 deg and 15 % off their pitch so)."""
        return self.dewarp or self.rectifier != "keypoints"

    @property
    def photographed_print(self) -> bool:
        """Whether the route is a phone photo of a paper print (the photo network's, not a flat screen's): its paper
        may curl where one affine grid still reads it surely (:meth:`KeypointRectifier.rectify`)."""
        return self.rectifier == "keypoints" and self.dewarp and self.stage1 == "photo"

    RECTIFIERS = ("grid", "keypoints")
    STAGE1_NETWORKS = ("general", "mold", "photo")

    def __post_init__(self) -> None:
        if self.route not in ROUTES and not all(t in IMAGE_TYPES for t in self.route.split("+")):
            raise ValueError(f"route must be an image type, image types joined by '+' or {GENERAL!r}, "
                             f"got {self.route!r}")
        if self.rectifier not in self.RECTIFIERS:
            raise ValueError(f"rectifier must be one of {self.RECTIFIERS}, got {self.rectifier!r}")
        if self.stage1 not in self.STAGE1_NETWORKS:
            raise ValueError(f"stage1 must be one of {self.STAGE1_NETWORKS}, got {self.stage1!r}")
        for f in fields(self):
            if f.name not in _NAMED and not isinstance(getattr(self, f.name), bool):
                raise ValueError(f"RouteSettings.{f.name} must be a bool, got {getattr(self, f.name)!r}")


_NAMED = ("route", "rectifier", "stage1")  # the settings that name a choice; the others are flags


_SCAN = {"rectifier": "grid", "find_page": False, "dewarp": False, "illumination_flatten": False, "descreen": False,
         "binarised": False, "paper_normalise": False, "despeckle": False}
_PHOTO = {"rectifier": "keypoints", "find_page": True, "dewarp": True, "illumination_flatten": True,
          "descreen": False, "binarised": False, "paper_normalise": False, "despeckle": False, "stage1": "photo"}

ROUTES: dict[str, dict] = {
    "0001": dict(_SCAN),  # a render: the sheet itself
    "0003": dict(_SCAN),  # colour scan: flat, small skew, clean paper
    "0004": {**_SCAN, "binarised": True},  # black-and-white scan
    "0005": dict(_PHOTO),  # phone photo of a print: perspective, curl, uneven light
    "0006": {**_PHOTO, "dewarp": False, "descreen": True},  # photo of a screen: flat glass, moire, glare
    "0009": {**_PHOTO, "paper_normalise": True},  # stained / soaked print: discoloured paper, bled ink
    "0010": {**_PHOTO, "paper_normalise": True, "despeckle": True},  # folds, crumples, tears, dirt
    "0011": {**_SCAN, "paper_normalise": True, "despeckle": True},  # colour scan with mold
    "0012": {**_SCAN, "binarised": True, "despeckle": True, "stage1": "mold"},  # black-and-white scan with mold
    GENERAL: {**_PHOTO, "paper_normalise": True, "stage1": "general"},  # unsure: assume the least about the page
}


def settings_for(route_name: str) -> RouteSettings:
    """The settings of one table entry (an image type or "general")."""
    if route_name not in ROUTES:
        raise KeyError(f"no route {route_name!r}; known: {', '.join(ROUTES)}")
    return RouteSettings(route=route_name, **ROUTES[route_name])


def route(prediction: SourcePrediction) -> RouteSettings:
    """The predicted type's settings; for a low-confidence prediction, those of the most probable types that
    together reach the threshold when they share a rectifier (each flag set where any of them sets it; their
    stage-1 network where they all name one, else the general one), else the general ones."""
    if not prediction.low_confidence:
        return settings_for(prediction.image_type)
    names, mass = [], 0.0
    for i in np.argsort(-prediction.probabilities, kind="stable"):
        names.append(IMAGE_TYPES[i])
        mass += float(prediction.probabilities[i])
        if mass >= prediction.threshold:
            break
    if len({ROUTES[t]["rectifier"] for t in names}) > 1:
        return settings_for(GENERAL)
    flags = {f.name: any(ROUTES[t][f.name] for t in names) for f in fields(RouteSettings) if f.name not in _NAMED}
    networks = {settings_for(t).stage1 for t in names}
    return RouteSettings(route="+".join(sorted(names)), rectifier=ROUTES[names[0]]["rectifier"],
                         stage1=networks.pop() if len(networks) == 1 else "general", **flags)


def stage0_options(settings: RouteSettings | None) -> dict:
    """What a route tells stage 0 (:meth:`KeypointRectifier.rectify`'s ``dewarp``, ``print_photo`` and ``photo``:
    the page may lie anywhere in the frame, ``find_page``); without a route (no classifier) every sheet may bend, no
    grid read surely is corrected and the calibration pulses may place a flat page."""
    return {"dewarp": settings is None or settings.sheet_may_bend,
            "print_photo": settings is not None and settings.photographed_print,
            "photo": settings is not None and settings.find_page}


def check_table() -> None:
    """Every image type and "general" has an entry naming every setting (raises otherwise)."""
    missing = [t for t in (*IMAGE_TYPES, GENERAL) if t not in ROUTES]
    if missing:
        raise ValueError(f"routing table lacks {missing}")
    for name in ROUTES:
        settings_for(name)
