"""``application/dicom+xml`` (PS3.19 Native DICOM Model) against a real `lightbox serve`: QIDO-RS
results and WADO-RS metadata asked for in XML, read back by this file's own Native DICOM Model
reader and compared with the JSON answer for the same resource; Accept negotiation and 406."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import requests
from pydicom.uid import generate_uid

from support.dicomgen import make_dataset, write
from support.web import ADMIN, ADMIN_PASSWORD, base_url

NS = "{http://dicom.nema.org/PS3.19/models/NativeDICOM}"
XML = 'multipart/related; type="application/dicom+xml"'
STUDY, SERIES = generate_uid(), generate_uid()
NUMBERS = {"IS", "DS", "US", "UL", "SS", "SL", "SV", "UV", "FL", "FD"}
COMPONENTS = ("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix")


@pytest.fixture(scope="module")
def session(server, admin, tmp_path_factory) -> requests.Session:
    """Two instances with names, markup and a control character in their text, a sequence,
    a private attribute and pixel data, stored by storescu."""
    folder = tmp_path_factory.mktemp("xml")
    files: list[Path] = []
    for n in (1, 2):
        ds = make_dataset(study_uid=STUDY, series_uid=SERIES, instance_number=n, rows=64, columns=64, seed=n,
                          patient_name="Müller^Jürgen^^Dr.", SpecificCharacterSet="ISO_IR 192",
                          StudyDescription='Knee & <ankle> "both"', ImageType=["ORIGINAL", "PRIMARY"],
                          SeriesDescription="odd\x01text", ReferringPhysicianName="House^Gregory=ハウス^グレゴリー")  # fmt: skip
        item = make_dataset()  # any dataset will do as an item: take its UIDs
        ds.ReferencedImageSequence = [type(ds)()]
        ds.ReferencedImageSequence[0].ReferencedSOPClassUID = item.SOPClassUID
        ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID = item.SOPInstanceUID
        ds.private_block(0x0029, "LIGHTBOX TEST", create=True).add_new(0x01, "LO", "private value")
        files.append(write(ds, folder / f"{n}.dcm"))
    result = server.storescu(*files)
    assert result.returncode == 0, result.stdout + result.stderr
    basic = requests.Session()
    basic.auth, basic.trust_env = (ADMIN, ADMIN_PASSWORD), False
    return basic


def get(server, session: requests.Session, path: str, accept: str) -> requests.Response:
    return session.get(base_url(server) + "/dicom-web" + path, headers={"Accept": accept}, timeout=30)


def xml_parts(answer: requests.Response) -> list[ET.Element]:
    """The Native DICOM Model documents of a multipart/related answer, parsed."""
    assert answer.status_code == 200, answer.text
    content_type = answer.headers["Content-Type"]
    assert content_type.startswith('multipart/related; type="application/dicom+xml"'), content_type
    boundary = content_type.split("boundary=")[1].strip('"').encode()
    documents = []
    for piece in answer.content.split(b"--" + boundary)[1:-1]:
        head, _, body = piece.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        assert head == b"Content-Type: application/dicom+xml"
        assert body.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
        documents.append(ET.fromstring(body.removesuffix(b"\r\n")))
    return documents


def native_to_json(dataset: ET.Element) -> dict[str, Any]:
    """A Native DICOM Model dataset read as the DICOM JSON model (this test's own reader):
    checks the structure PS3.19 A.1 gives while reading it."""
    out: dict[str, Any] = {}
    for attribute in dataset:
        assert attribute.tag == NS + "DicomAttribute", attribute.tag
        tag, vr = attribute.get("tag"), attribute.get("vr")
        assert tag and len(tag) == 8 and vr and len(vr) == 2
        if int(tag[:4], 16) % 2 == 0:
            from pydicom.datadict import keyword_for_tag

            assert attribute.get("keyword") == (keyword_for_tag(int(tag, 16)) or None)
        encoded: dict[str, Any] = {"vr": vr}
        values: dict[int, Any] = {}
        for child in attribute:
            name = child.tag.removeprefix(NS)
            if name == "BulkData":
                encoded["BulkDataURI"] = child.get("uri")
            elif name == "InlineBinary":
                encoded["InlineBinary"] = child.text
            elif name == "Item":
                assert vr == "SQ"
                values[int(child.get("number", ""))] = native_to_json(child)
            elif name == "PersonName":
                assert vr == "PN"
                groups = {}
                for group in child:
                    assert group.tag.removeprefix(NS) in ("Alphabetic", "Ideographic", "Phonetic")
                    parts = {c.tag.removeprefix(NS): c.text or "" for c in group}
                    assert set(parts) <= set(COMPONENTS)
                    groups[group.tag.removeprefix(NS)] = "^".join(parts.get(c, "") for c in COMPONENTS).rstrip("^")
                values[int(child.get("number", ""))] = groups
            else:
                assert name == "Value", name
                text = child.text or ""
                values[int(child.get("number", ""))] = float(text) if vr in NUMBERS else text
        if values:
            encoded["Value"] = [values.get(n) for n in range(1, max(values) + 1)]
        out[tag] = encoded
    return out


def comparable(model: dict[str, Any]) -> dict[str, Any]:
    """The JSON answer with numbers as floats and PN groups without trailing empty components,
    as the reader above gives them back."""
    out = {}
    for tag, attribute in model.items():
        attribute = dict(attribute)
        if attribute["vr"] == "SQ":
            attribute["Value"] = [comparable(item) for item in attribute.get("Value", [])] or None
        elif attribute["vr"] == "PN":
            attribute["Value"] = [{g: n.rstrip("^") for g, n in v.items()} for v in attribute.get("Value", [])] or None
        elif attribute["vr"] in NUMBERS and "Value" in attribute:
            attribute["Value"] = [float(v) if v is not None else None for v in attribute["Value"]]
        elif "Value" in attribute:
            attribute["Value"] = [v.replace("\x01", "\ufffd") if isinstance(v, str) else v for v in attribute["Value"]]
        out[tag] = {k: v for k, v in attribute.items() if v is not None}
    return out


@pytest.mark.parametrize("path", ["/studies", f"/studies/{STUDY}/series", f"/studies/{STUDY}/series/{SERIES}/instances",
                                  "/instances?includefield=all"])  # fmt: skip
def test_qido_answers_one_native_document_per_result_as_json_says(server, session, path):
    as_json = get(server, session, path, "application/dicom+json").json()
    documents = xml_parts(get(server, session, path, XML))
    assert len(documents) == len(as_json) >= 1
    for document, result in zip(documents, as_json, strict=True):
        assert document.tag == NS + "NativeDicomModel"
        assert document.get("{http://www.w3.org/XML/1998/namespace}space") == "preserve"
        assert native_to_json(document) == comparable(result)


def test_names_markup_and_control_characters_in_xml(server, session):
    [study] = xml_parts(get(server, session, "/studies?includefield=StudyDescription", XML))
    name = study.find(f"{NS}DicomAttribute[@tag='00100010']/{NS}PersonName[@number='1']/{NS}Alphabetic")
    assert name is not None
    assert [(c.tag.removeprefix(NS), c.text) for c in name] == [
        ("FamilyName", "Müller"), ("GivenName", "Jürgen"), ("NamePrefix", "Dr.")]  # fmt: skip
    doctor = study.find(f"{NS}DicomAttribute[@tag='00080090']/{NS}PersonName")
    assert doctor is not None and doctor.findtext(f"{NS}Ideographic/{NS}GivenName") == "グレゴリー"
    assert study.findtext(f"{NS}DicomAttribute[@keyword='StudyDescription']/{NS}Value") == 'Knee & <ankle> "both"'
    [series] = xml_parts(get(server, session, f"/studies/{STUDY}/series?includefield=SeriesDescription", XML))
    assert series.findtext(f"{NS}DicomAttribute[@tag='0008103E']/{NS}Value") == "odd\ufffdtext"  # not XML 1.0


def test_metadata_in_xml_is_the_json_metadata(server, session):
    for path in (f"/studies/{STUDY}/metadata", f"/studies/{STUDY}/series/{SERIES}/metadata"):
        as_json = get(server, session, path, "application/dicom+json").json()
        documents = xml_parts(get(server, session, path, XML))
        assert len(documents) == len(as_json) == 2
        for document, instance in zip(documents, as_json, strict=True):
            assert native_to_json(document) == comparable(instance)
    document = xml_parts(get(server, session, f"/studies/{STUDY}/series/{SERIES}/metadata", XML))[0]
    pixels = document.find(f"{NS}DicomAttribute[@tag='7FE00010']/{NS}BulkData")
    assert pixels is not None and pixels.get("uri", "").endswith("/bulkdata/7FE00010")
    sequence = document.find(f"{NS}DicomAttribute[@keyword='ReferencedImageSequence']/{NS}Item[@number='1']")
    assert sequence is not None and len(sequence) == 2
    private = document.find(f"{NS}DicomAttribute[@tag='00291001']")
    assert private is not None and private.get("privateCreator") == "LIGHTBOX TEST"
    assert private.findtext(f"{NS}Value") == "private value"
    answer = session.get(base_url(server) + pixels.get("uri", ""), timeout=30)  # the BulkData uri works
    assert answer.status_code == 200 and len(answer.content) > 64 * 64 * 2


@pytest.mark.parametrize("accept, expected", [
    ("application/dicom+xml", "xml"),  # the part type alone is accepted
    ("multipart/related; type=application/dicom+xml", "xml"),
    ("application/dicom+json;q=0.5, multipart/related; type=\"application/dicom+xml\"", "xml"),  # by quality
    ("application/dicom+xml;q=0.5, application/dicom+json", "json"),
    ("*/*", "json"),  # JSON first among equals
    ("text/html", 406),
    ("application/dicom+json;q=0, application/dicom+xml;q=0", 406),
])  # fmt: skip
def test_qido_and_metadata_negotiate_json_or_xml(server, session, accept, expected):
    for path in ("/studies", f"/studies/{STUDY}/series/{SERIES}/metadata"):
        answer = get(server, session, path, accept)
        if expected == 406:
            assert answer.status_code == 406 and "dicom+xml" in answer.json()["error"]
        elif expected == "xml":
            assert len(xml_parts(answer)) >= 1
        else:
            assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("application/dicom+json")
            assert isinstance(answer.json(), list)
