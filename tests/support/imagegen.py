"""Images the imaging tests need: pydicom's test files, palette tables rewritten, overlay
planes, grayscale gradients."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pydicom.data
from pydicom.dataset import Dataset

from support.dicomgen import make_dataset

TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"


def corpus_file(name: str) -> Path:
    return TEST_FILES / name


def palette_variant(tmp: Path, tables: str, declared_bits: int) -> Path:
    """examples_palette.dcm (16-bit entries v << 8) with its tables rewritten: ``low`` 8-bit
    values in 16-bit words, ``copied`` 8-bit values in both bytes (v * 257), ``packed`` one
    8-bit entry per byte, ``true16`` 16-bit values whose low byte is noise; under a descriptor
    of ``declared_bits``."""
    ds = pydicom.dcmread(corpus_file("examples_palette.dcm"))
    for colour in ("Red", "Green", "Blue"):
        values = np.frombuffer(ds[f"{colour}PaletteColorLookupTableData"].value, "<u2") >> 8
        stored = {"low": values, "copied": values * 257, "true16": values << 8 | (255 - values)}.get(tables)
        data = values.astype(np.uint8).tobytes() if tables == "packed" else stored.astype("<u2").tobytes()
        ds[f"{colour}PaletteColorLookupTableData"].value = data
        ds[f"{colour}PaletteColorLookupTableDescriptor"].value = [256, 0, declared_bits]
    path = tmp / f"palette-{tables}-{declared_bits}.dcm"
    ds.save_as(path)
    return path


def add_overlay(ds: Dataset, group: int, frames: list[np.ndarray], origin: tuple[int, int], kind: str = "G",
                frame_origin: int | None = None, label: str = "") -> None:  # fmt: skip
    """Overlay Plane (and, with ``frame_origin``, Multi-frame Overlay) attributes in ``group``,
    the data packed one bit per pixel, least significant bit first."""
    rows, columns = frames[0].shape
    ds.add_new((group, 0x0010), "US", rows)
    ds.add_new((group, 0x0011), "US", columns)
    ds.add_new((group, 0x0040), "CS", kind)
    ds.add_new((group, 0x0050), "SS", list(origin))
    ds.add_new((group, 0x0100), "US", 1)
    ds.add_new((group, 0x0102), "US", 0)
    if label:
        ds.add_new((group, 0x1500), "LO", label)
    if frame_origin is not None:
        ds.add_new((group, 0x0015), "IS", len(frames))
        ds.add_new((group, 0x0051), "US", frame_origin)
    data = np.packbits(np.stack(frames).ravel(), bitorder="little").tobytes()
    ds.add_new((group, 0x3000), "OW", data + b"\0" * (len(data) % 2))


def gradient_image(rows: int = 64, columns: int = 80, frames: int = 1) -> Dataset:
    values = np.linspace(0, 4095, rows * columns).reshape(rows, columns).astype(np.uint16)
    extra = {"NumberOfFrames": frames} if frames > 1 else {}
    ds = make_dataset(rows=rows, columns=columns, WindowCenter=2048, WindowWidth=4096, **extra)
    ds.PixelData = np.stack([values // (i + 1) for i in range(frames)]).tobytes()
    return ds
