"""Palette Color Lookup Tables (PS3.3 C.7.6.3.1.5-6, C.7.9) as one table of 8-bit RGB.

The depth of each table is judged as DCMTK's DiLookupTable judges it with ``--check-lut-depth``
(dcmj2pnm ``+Mc``): 16-bit entries whose high byte is zero or a copy of the low byte are 8-bit
values even when the descriptor says 16 bits, which many ultrasound machines write (taken at
their word, such tables show an almost black picture, as plain dcmj2pnm does); truly 16-bit
entries under a descriptor of 8 are 16-bit.  Entries packed one per byte are 8-bit whatever the
descriptor says.  The tables are then brought to 8 bits by a shift, as DCMTK does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut

from appliance.imaging.grayscale import UNSIGNED, every_value
from appliance.imaging.source import ImagingError

COLOURS = ("Red", "Green", "Blue")
MIN_BITS, MAX_BITS = 8, 16  # DCMTK's MIN_TABLE_ENTRY_SIZE and MAX_TABLE_ENTRY_SIZE
BIG_ENDIAN = "1.2.840.10008.1.2.2"


@dataclass(frozen=True)
class Palette:
    first: int  # the stored value mapped to the first entry
    table: np.ndarray  # (entries, 3) uint8

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """Stored indices -> (rows, columns, 3) uint8.  Values below the first mapped value
        take the first colour, values past the last entry the last (PS3.3 C.7.6.3.1.5)."""
        if frame.dtype in UNSIGNED:  # one table over every value of the dtype, then one lookup
            return self._lookup(every_value(frame.dtype))[frame.view(UNSIGNED[frame.dtype])]
        return self._lookup(frame)

    def _lookup(self, values: np.ndarray) -> np.ndarray:
        return self.table[np.clip(values.astype(np.int64) - self.first, 0, len(self.table) - 1)]


def read_palette(ds: Dataset) -> Palette:
    """The file's red, green and blue tables as one 8-bit RGB table."""
    descriptors = [ds.get(f"{c}PaletteColorLookupTableDescriptor") for c in COLOURS]
    if any(d is None or len(d) != 3 for d in descriptors):
        raise ImagingError("bad palette: missing or incomplete Palette Color Lookup Table Descriptor")
    entries, first = int(descriptors[0][0]) or 65536, int(descriptors[0][1])
    if first > 32767 and int(ds.get("PixelRepresentation") or 0) == 1:  # US read of an SS value
        first -= 65536
    if "RedPaletteColorLookupTableData" in ds:
        tables = [_stored_table(ds, colour, entries) for colour in COLOURS]
    else:
        tables = _segmented(ds, entries, first)
    judged = [_judge(values, int(d[2]), packed) for (values, packed), d in zip(tables, descriptors, strict=True)]
    depth = max(bits for _, bits in judged)  # DCMTK: the deepest table sets the depth of all three
    length = min(len(values) for values, _ in judged)
    if length == 0:
        raise ImagingError("bad palette: empty Palette Color Lookup Table Data")
    rgb = np.stack([values[:length] for values, _ in judged], axis=1) >> (depth - 8)
    return Palette(first, rgb.astype(np.uint8))


def _stored_table(ds: Dataset, colour: str, entries: int) -> tuple[np.ndarray, bool]:
    """One table's entries (uint16) and whether they were packed one per byte."""
    value = ds.get(f"{colour}PaletteColorLookupTableData")
    if value is None:
        raise ImagingError(f"bad palette: no {colour} Palette Color Lookup Table Data")
    if not isinstance(value, (bytes, bytearray)):  # VR US: already numbers
        return np.atleast_1d(np.asarray(value, dtype=np.uint16)), False
    if ds.file_meta.get("TransferSyntaxUID") == BIG_ENDIAN:  # OW is byte-swapped per word there
        value = np.frombuffer(value[: len(value) // 2 * 2], ">u2").astype("<u2").tobytes()
    words = len(value) // 2
    if words != entries and words == (entries + 1) // 2:  # DCMTK: 8 bits allocated per entry
        return np.frombuffer(value, np.uint8)[:entries].astype(np.uint16), True
    return np.frombuffer(value[: words * 2], "<u2")[:65536], False


def _segmented(ds: Dataset, entries: int, first: int) -> list[tuple[np.ndarray, bool]]:
    """Segmented tables (C.7.9.2), expanded by pydicom over every mapped value (DCMTK has
    no segmented palettes)."""
    if "SegmentedRedPaletteColorLookupTableData" not in ds:
        raise ImagingError("bad palette: no Palette Color Lookup Table Data")
    try:
        expanded = apply_color_lut(np.arange(first, first + entries), ds)
    except (ValueError, AttributeError, KeyError, IndexError, TypeError) as exc:
        raise ImagingError(f"bad palette: {exc}") from exc
    return [(expanded[:, i].astype(np.uint16), False) for i in range(3)]


def _judge(values: np.ndarray, declared: int, packed: bool) -> tuple[np.ndarray, int]:
    """The table masked to its real depth, and that depth (DiLookupTable::checkTable and
    checkBits in ELM_CheckValue mode)."""
    if packed:
        bits = MIN_BITS
    else:
        high = values >> 8
        looks_8bit = bool(np.all((high == 0) | (high == (values & 0xFF))))
        if declared < MIN_BITS or declared > MAX_BITS:
            top = int(values.max()) if values.size else 0
            bits = min(max(top.bit_length(), MIN_BITS), MAX_BITS) if top else min(max(declared, MIN_BITS), MAX_BITS)
        elif looks_8bit and declared == MAX_BITS:
            bits = MIN_BITS
        elif not looks_8bit and declared == MIN_BITS:
            bits = MAX_BITS
        else:
            bits = declared
    return values & ((1 << bits) - 1), bits
