"""A torch ``Dataset`` of pages rendered on the fly: nothing touches the disk during training."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch.utils.data import Dataset

from common.types import IMAGE_TYPES, SUPPORTED_FS_HZ
from synth.factory import SynthPage, make_page
from synth.render import Arrangements
from synth.signals import Record


class SynthPageDataset(Dataset):
    """Item ``i`` is page ``i``: record ``i % len(records)`` in a style, fs and image type keyed by
    (seed, i), so a dataset is reproducible and ``length`` can exceed the number of records.

    ``transform`` turns the :class:`~synth.factory.SynthPage` into what a stage trains on (tensors);
    without one the page itself is returned (use ``collate_fn=list`` in a DataLoader then).
    """

    def __init__(self, records: Sequence[Record], image_types: Sequence[str] = IMAGE_TYPES, seed: int = 0,
                 length: int | None = None, layouts: Sequence[str] | None = None,
                 fs_choices: Sequence[int] = SUPPORTED_FS_HZ, transform: Callable[[SynthPage], object] | None = None,
                 eik_look: float = 0.0, arrangements: Arrangements | None = None):
        if not records:
            raise ValueError("SynthPageDataset needs at least one record")
        self.records = list(records)
        self.image_types = list(image_types)
        self.seed = seed
        self.length = len(self.records) if length is None else int(length)
        self.layouts = layouts
        self.fs_choices = fs_choices
        self.transform = transform
        self.eik_look = eik_look
        self.arrangements = arrangements

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        if not 0 <= index < self.length:
            raise IndexError(f"page {index} outside 0..{self.length - 1}")
        image_type = self.image_types[index % len(self.image_types)]
        record = self.records[index % len(self.records)]
        page = make_page(record, index, self.seed, [image_type], self.layouts, self.fs_choices,
                         eik_look=self.eik_look, arrangements=self.arrangements)
        return page if self.transform is None else self.transform(page)
