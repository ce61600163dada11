"""C-FIND response identifiers, encoded by Lightbox, decoded by pydicom (an independent reader)."""

from __future__ import annotations

from io import BytesIO

import pytest
from pydicom.filereader import read_dataset

from appliance.dicom.encoding import FindResponseEncoder, spec


@pytest.mark.parametrize("explicit", [True, False], ids=["explicit", "implicit"])
def test_find_response_decodes_in_pydicom(explicit):
    fixed = [(0x00080052, "CS", "IMAGE"), (0x00080054, "AE", "LIGHTBOX")]
    asked = [spec("PatientName"), spec("StudyDescription"), spec("RequestAttributesSequence"), (0x00091010, "UN")]
    returned = ["PatientName", "PatientID", "Rows", "InstanceNumber", "SOPInstanceUID", "RequestAttributesSequence"]
    encoder = FindResponseEncoder(
        fixed, asked, returned, {"RequestAttributesSequence": ["RequestedProcedureID"]}, explicit
    )
    match = {
        "PatientName": "Müller^Jürgen",
        "PatientID": "P1",
        "Rows": 512,
        "InstanceNumber": 7,
        "SOPInstanceUID": "1.2.3",
        "RequestAttributesSequence": [{"RequestedProcedureID": "RP-17"}, {}],
    }
    ds = read_dataset(BytesIO(encoder.encode(match)), not explicit, True)
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert str(ds.PatientName) == "Müller^Jürgen" and ds.PatientID == "P1"
    assert ds.Rows == 512 and ds.InstanceNumber == 7 and ds.SOPInstanceUID == "1.2.3"
    assert ds.QueryRetrieveLevel == "IMAGE" and ds.RetrieveAETitle == "LIGHTBOX"
    assert ds.StudyDescription == "" and ds[0x00091010].value in (b"", None)
    items = ds.RequestAttributesSequence
    assert [item.get("RequestedProcedureID") for item in items] == ["RP-17", ""]
    tags = [int(element.tag) for element in ds]
    assert tags == sorted(tags)


def test_ascii_answers_carry_no_character_set():
    encoder = FindResponseEncoder([(0x00080052, "CS", "STUDY")], [], ["PatientName"], {}, True)
    ds = read_dataset(BytesIO(encoder.encode({"PatientName": "Doe^Jane"})), False, True)
    assert "SpecificCharacterSet" not in ds and str(ds.PatientName) == "Doe^Jane"
