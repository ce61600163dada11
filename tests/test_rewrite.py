"""Rewriting a stored file's patient attributes (a corrected identity): only the elements
changed differ, in the file's own encoding and character set; the old values are kept in the
Original Attributes Sequence; DCMTK reads the result."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian

from appliance.archive.upkeep.rewrite import CannotRewrite, rewritten
from support.dicomgen import make_dataset, write
from support.tools import dcmtk

CHANGED = {0x00080005, 0x00100010, 0x00100020, 0x04000561}


def rewrite(path: Path, values: dict[str, str], out: Path) -> Dataset:
    out.write_bytes(b"".join(rewritten(path, values)))
    dumped = subprocess.run([dcmtk("dcmdump"), "-q", str(out)], capture_output=True, timeout=60)
    assert dumped.returncode == 0 and not dumped.stderr, dumped.stderr  # DCMTK reads it, without a warning
    return dcmread(out)


def unchanged(before: Dataset, after: Dataset) -> None:
    for element in before:
        if element.tag not in CHANGED and element.tag.element != 0:
            assert after[element.tag].value == element.value, element.keyword


@pytest.mark.parametrize("syntax", [None, ImplicitVRLittleEndian, ExplicitVRBigEndian])
def test_only_the_named_attributes_change_in_any_encoding(tmp_path, syntax):
    source = write(make_dataset(patient_name="Mueler^Hans", patient_id="OLD"), tmp_path / "a.dcm")
    if syntax is not None:  # the same dataset in another transfer syntax, made by DCMTK
        converted = tmp_path / "b.dcm"
        flag = "+ti" if syntax == ImplicitVRLittleEndian else "+tb"
        assert subprocess.run([dcmtk("dcmconv"), flag, str(source), str(converted)], timeout=60).returncode == 0
        source = converted
    before = dcmread(source)
    after = rewrite(source, {"PatientName": "Mueller^Hans", "PatientID": "NEW"}, tmp_path / "out.dcm")
    assert after.file_meta.TransferSyntaxUID == before.file_meta.TransferSyntaxUID
    assert (str(after.PatientName), after.PatientID) == ("Mueller^Hans", "NEW")
    assert after.PixelData == before.PixelData
    unchanged(before, after)
    [item] = after.OriginalAttributesSequence
    [old] = item.ModifiedAttributesSequence
    assert (str(old.PatientName), old.PatientID) == ("Mueler^Hans", "OLD")


def test_an_ascii_file_is_declared_utf8_when_a_new_name_needs_it(tmp_path):
    source = write(make_dataset(patient_name="Muller^Hans"), tmp_path / "a.dcm")
    assert "SpecificCharacterSet" not in dcmread(source)
    after = rewrite(source, {"PatientName": "Müller^Hans"}, tmp_path / "out.dcm")
    assert after.SpecificCharacterSet == "ISO_IR 192" and str(after.PatientName) == "Müller^Hans"


def test_a_latin1_file_keeps_latin1_and_refuses_what_it_cannot_hold(tmp_path):
    source = write(make_dataset(patient_name="Müller^Hans", SpecificCharacterSet="ISO_IR 100"), tmp_path / "a.dcm")
    after = rewrite(source, {"PatientName": "Möller^Hans"}, tmp_path / "out.dcm")
    assert after.SpecificCharacterSet == "ISO_IR 100" and str(after.PatientName) == "Möller^Hans"
    assert "Möller".encode("latin-1") in (tmp_path / "out.dcm").read_bytes()
    with pytest.raises(CannotRewrite, match="ISO_IR 100"):
        b"".join(rewritten(source, {"PatientName": "Łukasz^Hans"}))


def test_a_second_correction_adds_a_second_item_and_stale_group_lengths_go(tmp_path):
    plain = write(make_dataset(patient_name="First^Name"), tmp_path / "plain.dcm")
    source = tmp_path / "a.dcm"  # with (retired) group lengths, which changing a group makes wrong
    assert subprocess.run([dcmtk("dcmconv"), "+g", str(plain), str(source)], timeout=60).returncode == 0
    assert 0x00100000 in dcmread(source)
    once = tmp_path / "once.dcm"
    rewrite(source, {"PatientName": "Second^Name"}, once)
    twice = rewrite(once, {"PatientName": "Third^Name"}, tmp_path / "twice.dcm")
    assert [str(i.ModifiedAttributesSequence[0].PatientName) for i in twice.OriginalAttributesSequence] == [
        "First^Name",
        "Second^Name",
    ]
    assert 0x00100000 not in twice and 0x00200000 in twice  # the untouched group keeps its length
