"""appliance.deidentify on files pydicom writes: each action of PS3.15 Table E.1-1 as the
profile says, in nested sequences too; the pixel data byte for byte in every encoding (native,
encapsulated, implicit, big endian) and nothing after it; the same plan, the same new UIDs and
date shift; documents and reports left out."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pydicom import Dataset, dcmread, dcmwrite
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    EncapsulatedPDFStorage,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    generate_uid,
)

from appliance.deidentify import NotDeidentifiable, Plan, deidentified
from support.dicomgen import make_dataset, write

PLAN = Plan(b"0123456789abcdef")


def cleaned(path: Path, plan: Plan = PLAN) -> Dataset:
    _, pieces = deidentified(path, plan)
    return dcmread(io.BytesIO(b"".join(pieces)))


def rich(tmp_path: Path) -> Path:
    ds = make_dataset(patient_name="Nested^Nora", patient_id="N-1", StudyDate="20240229",
                      AcquisitionDateTime="20240229101500.5+0100", InstitutionName="Hill Clinic",
                      NamesOfIntendedRecipientsOfResults="Dr^Who", OtherPatientIDs="X-9")  # fmt: skip
    observer = Dataset()
    observer.VerifyingObserverName = "Dr^Verifier"
    observer.VerifyingOrganization = "Hill Clinic"
    ds.VerifyingObserverSequence = Sequence([observer])
    ref = Dataset()
    ref.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    ref.ReferencedSOPClassUID = ds.SOPClassUID
    ds.ReferencedImageSequence = Sequence([ref])
    ds.add_new(0x00080000, "UL", 100)  # a retired group length
    ds.add_new(0x60000010, "US", 16)  # an overlay
    ds.add_new(0x60003000, "OW", b"\x00" * 32)
    ds.add_new(0x00290010, "LO", "PRIVATE")
    ds.add_new(0x00291001, "LO", "Nested^Nora")
    return write(ds, tmp_path / "rich.dcm")


def test_each_action_of_the_profile(tmp_path: Path) -> None:
    path = rich(tmp_path)
    original = dcmread(path)
    ds = cleaned(path)
    assert ds.PatientName == "" and ds.PatientID == "" and ds.PatientBirthDate == ""  # Z
    assert "InstitutionName" not in ds and "OtherPatientIDs" not in ds  # X
    assert ds.NamesOfIntendedRecipientsOfResults == ""  # a name the table does not list: emptied
    observer = ds.VerifyingObserverSequence[0]
    assert observer.VerifyingObserverName == "ANONYMOUS" and "VerifyingOrganization" not in observer  # D, X inside
    assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID == ds.SOPInstanceUID != original.SOPInstanceUID
    assert ds.SOPInstanceUID == PLAN.uid(original.SOPInstanceUID)  # U, from the plan
    assert ds.StudyDate == PLAN.shift("20240229") != "20240229"
    assert ds.AcquisitionDateTime == PLAN.shift("20240229") + "101500.5+0100"  # the date part only
    assert ds.StudyTime == original.StudyTime  # times kept
    assert not any(e.tag.is_private or e.tag.element == 0 or e.tag.group == 0x6000 for e in ds)
    assert ds.PatientIdentityRemoved == "YES" and ds.DeidentificationMethod
    assert ds.SOPClassUID == original.SOPClassUID and ds.PixelData == original.PixelData
    assert ds.BurnedInAnnotation == "YES"  # a secondary capture (make_dataset's class)
    other = cleaned(path, Plan(b"another secret.."))
    assert other.SOPInstanceUID != ds.SOPInstanceUID and other.StudyDate != ds.StudyDate


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRBigEndian, JPEGBaseline8Bit])
def test_pixel_data_is_copied_and_nothing_after_it(tmp_path: Path, syntax: str) -> None:
    ds = make_dataset(modality="CT", patient_name="Tail^Tom")
    if syntax == JPEGBaseline8Bit:
        ds.PixelData = encapsulate([b"\xff\xd8" + bytes(range(200)) + b"\xff\xd9", b"\xff\xd8second\xff\xd9"])
        ds["PixelData"].VR = "OB"
        ds.NumberOfFrames = 2
    ds.add_new(0x7FE10010, "LO", "ACME")
    ds.add_new(0x7FE11001, "OB", b"Tail^Tom")
    path = write(ds, tmp_path / "tail.dcm")
    original = dcmread(path)
    original.file_meta.TransferSyntaxUID = syntax
    dcmwrite(path, original, implicit_vr=syntax == ImplicitVRLittleEndian,
             little_endian=syntax != ExplicitVRBigEndian, force_encoding=True)  # fmt: skip
    _, pieces = deidentified(path, PLAN)
    data = b"".join(pieces)
    assert b"Tail" not in data
    out = dcmread(io.BytesIO(data))
    assert out.file_meta.TransferSyntaxUID == syntax and out.PixelData == dcmread(path).PixelData
    assert 0x7FE11001 not in out


def test_documents_are_left_out(tmp_path: Path) -> None:
    ds = make_dataset(SOPClassUID=EncapsulatedPDFStorage)
    with pytest.raises(NotDeidentifiable, match="encapsulated document"):
        deidentified(write(ds, tmp_path / "pdf.dcm"), Plan(generate_uid().encode()))


def test_a_video_keeps_its_stream_and_is_flagged(tmp_path: Path) -> None:
    from pydicom.uid import MPEG4HP41

    from support.mediagen import make_stream, video_dicom

    stream = make_stream(tmp_path / "clip.mp4", "h264", "raw", frames=25)
    path = video_dicom(stream, tmp_path / "video.dcm", MPEG4HP41, frames=25, fragments=7, patient_name="Scope^Sam")
    made, pieces = deidentified(path, PLAN)
    out = dcmread(io.BytesIO(b"".join(pieces)))
    assert made.burned_in and out.BurnedInAnnotation == "YES" and out.PatientName == ""
    assert out.PixelData == dcmread(path).PixelData
