"""The hand-written meta header encoder writes exactly what pydicom's writer writes."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info

from appliance.archive.intake.header import Origin, encode_meta, read_header, stored_meta


@pytest.mark.parametrize(
    "origin",
    [
        Origin("dicom", "US_ROOM_1", "LIGHTBOX", "192.0.2.7", 104),
        Origin("dicom", "ODD", "", "", 0),  # odd lengths are padded
        Origin("import"),
    ],
)
@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_bigendian.dcm", "JPEG2000.dcm"])
def test_encode_meta_matches_pydicom(name, origin):
    header = read_header(Path(get_testdata_file(name)))
    meta = stored_meta(header, origin)
    reference = FileMetaDataset()
    for keyword, value in meta.items():
        setattr(reference, keyword, value)
    buffer = DicomBytesIO()
    buffer.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(buffer, reference, enforce_standard=True)
    assert encode_meta(meta) == buffer.getvalue()
