"""The pieces DICOMweb's parts share: the DICOM JSON model (PS3.18 F.2) of a dataset and of
the index's values, read back by pydicom; Accept negotiation with quality values."""

from __future__ import annotations

import base64

from pydicom import Dataset
from pydicom.sequence import Sequence

from appliance.web.dicomweb.accept import choose, parse
from appliance.web.dicomweb.json import attribute, to_json


def sample() -> Dataset:
    ds = Dataset()
    ds.PatientName = "Yamada^Tarou=山田^太郎=やまだ^たろう"
    ds.PatientID = ""
    ds.SeriesNumber = "04"
    ds.SliceThickness = "2.50"
    ds.ImagePositionPatient = ["-125.0", "0", "1e2"]
    ds.Rows = 512
    ds.FrameIncrementPointer = 0x00181063
    ds.add_new(0x00091010, "OB", b"\x01\x02")  # small binary: inline
    ds.add_new(0x7FE00010, "OW", bytes(4096))  # large: a bulk data URI when one can be made
    item = Dataset()
    item.CodeValue = "T-D3000"
    ds.AnatomicRegionSequence = Sequence([item])
    return ds


def test_a_dataset_in_the_dicom_json_model() -> None:
    answer = to_json(sample(), bulk_uri=lambda tag: f"/dicom-web/bulk/{tag}")
    assert answer["00100010"] == {"vr": "PN", "Value": [
        {"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎", "Phonetic": "やまだ^たろう"}]}  # fmt: skip
    assert answer["00100020"] == {"vr": "LO"}  # empty: no Value (F.2.5)
    assert answer["00200011"] == {"vr": "IS", "Value": [4]}  # IS and DS as numbers (F.2.3)
    assert answer["00180050"] == {"vr": "DS", "Value": [2.5]}
    assert answer["00200032"]["Value"] == [-125.0, 0, 100.0]
    assert answer["00280010"] == {"vr": "US", "Value": [512]}
    assert answer["00280009"] == {"vr": "AT", "Value": ["00181063"]}  # AT as hex (F.2.3)
    assert answer["00091010"] == {"vr": "OB", "InlineBinary": base64.b64encode(b"\x01\x02").decode()}
    assert answer["7FE00010"] == {"vr": "OW", "BulkDataURI": "/dicom-web/bulk/7FE00010"}
    assert answer["00082218"]["Value"][0]["00080100"] == {"vr": "SH", "Value": ["T-D3000"]}
    back = Dataset.from_json(to_json(sample()))  # without bulk URIs, everything inline
    assert back.PixelData == bytes(4096) and back.PatientName == sample().PatientName


def test_index_values_in_the_dicom_json_model() -> None:
    assert attribute("PN", "Doe^Jane\\Roe^Richard") == {
        "vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}, {"Alphabetic": "Roe^Richard"}]}  # fmt: skip
    assert attribute("CS", "CT\\MR") == {"vr": "CS", "Value": ["CT", "MR"]}
    assert attribute("IS", "04") == {"vr": "IS", "Value": [4]} and attribute("IS", 7) == {"vr": "IS", "Value": [7]}
    assert attribute("DS", "1.5\\2") == {"vr": "DS", "Value": [1.5, 2]}
    assert attribute("LO", "") == {"vr": "LO"} and attribute("SQ", []) == {"vr": "SQ"}
    assert attribute("SQ", [{"ScheduledProcedureStepID": "SPS1"}]) == {
        "vr": "SQ", "Value": [{"00400009": {"vr": "SH", "Value": ["SPS1"]}}]}  # fmt: skip
    assert attribute("LO", "a\\\\b") == {"vr": "LO", "Value": ["a", None, "b"]}  # an empty value in a list


def test_accept_negotiation_with_quality_values() -> None:
    offered = ["application/dicom+json", "application/json"]
    assert choose(None, offered) == "application/dicom+json"
    assert choose("", offered) == "application/dicom+json"
    assert choose("application/json", offered) == "application/json"
    assert choose("application/json;q=0.9, application/dicom+json;q=0.5", offered) == "application/json"
    assert choose("application/*;q=0.2, application/dicom+json;q=0", offered) == "application/json"
    assert choose("*/*;q=0, application/dicom+json", offered) == "application/dicom+json"
    assert choose("application/dicom+xml, text/html", offered) is None
    assert choose("application/dicom+json;q=oops", offered) is None
    ranges = parse('multipart/related; type="application/octet-stream"; transfer-syntax=*, image/jpeg;q=0.5')
    assert [(r.type, r.params, r.q) for r in ranges] == [
        ("multipart/related", {"type": "application/octet-stream", "transfer-syntax": "*"}, 1.0),
        ("image/jpeg", {}, 0.5),
    ]
    assert parse('multipart/related; type="a, b"')[0].params == {"type": "a, b"}  # a quoted comma stays
