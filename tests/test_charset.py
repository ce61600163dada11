"""Text from DICOM headers: declared character sets, and the lies devices tell about them.

Datasets are written to disk with raw byte values and read back with the archive's own
``read_header``, so every element reaches ``charset``/``attributes`` raw, as in ingest.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_charset_files
from pydicom.dataelem import DataElement, RawDataElement

from appliance.archive.intake.attributes import extract
from appliance.archive.intake.charset import declared_charsets, effective_encodings, normalise_name, text
from appliance.archive.intake.header import read_header
from support.dicomgen import make_dataset, write

CHARSET_FILES = sorted(Path(p) for p in get_charset_files("chr*.dcm"))
WITH_PATIENT_NAME = [p for p in CHARSET_FILES if "PatientName" in pydicom.dcmread(p, force=True)]


def test_pydicom_charset_files_are_present() -> None:
    names = {p.name for p in WITH_PATIENT_NAME}
    for expected in ("chrH31.dcm", "chrX1.dcm", "chrX2.dcm", "chrFren.dcm", "chrGerm.dcm", "chrKoreanMulti.dcm"):
        assert expected in names


@pytest.mark.parametrize("path", WITH_PATIENT_NAME, ids=lambda p: p.name)
def test_extract_decodes_patient_name_like_pydicom(path: Path) -> None:
    reference = str(pydicom.dcmread(path, force=True).PatientName)
    header = read_header(path)
    assert isinstance(header.dataset.get_item("PatientName"), RawDataElement)
    fields = extract(header.dataset)
    assert fields.patient["name"] == reference
    assert fields.patient["name_norm"] == normalise_name(reference)
    assert fields.study["charset"] == "\\".join(declared_charsets(header.dataset))


def test_known_values_of_iso_2022_and_unicode_files() -> None:
    by_name = {p.name: p for p in CHARSET_FILES}

    def name(file: str) -> str:
        return extract(read_header(by_name[file]).dataset).patient["name"]

    assert name("chrH31.dcm") == "Yamada^Tarou=山田^太郎=やまだ^たろう"  # ISO 2022 IR 87 with escapes
    assert name("chrX1.dcm") == "Wang^XiaoDong=王^小東"  # ISO_IR 192 (UTF-8)
    assert name("chrX2.dcm") == "Wang^XiaoDong=王^小东"  # GB18030: bytes 0x80-0x9F are not cp1252 here
    assert name("chrFren.dcm") == "Buc^Jérôme"  # ISO_IR 100
    assert name("chrGerm.dcm") == "Äneas^Rüdiger"
    assert name("chrKoreanMulti.dcm") == "김희중"  # ISO 2022 IR 149
    assert extract(read_header(by_name["chrFren.dcm"]).dataset).patient["name_norm"] == "buc^jerome"


def raw_dataset(tmp_path: Path, charset: str | list[str] | None, **raw_values: bytes) -> pydicom.Dataset:
    """Write a dataset whose text elements hold exactly ``raw_values`` bytes; read it back raw."""
    ds = make_dataset()
    del ds.PatientName
    if charset is not None:
        ds.SpecificCharacterSet = charset
    for keyword, raw in raw_values.items():
        elem = DataElement(keyword, pydicom.datadict.dictionary_VR(keyword), raw)
        ds[elem.tag] = elem
    path = write(ds, tmp_path / f"raw-{len(list(tmp_path.iterdir()))}.dcm")
    on_disk = path.read_bytes()
    for raw in raw_values.values():
        assert raw in on_disk, "the bytes must be written unchanged"
    dataset = read_header(path).dataset
    for keyword in raw_values:
        assert isinstance(dataset.get_item(keyword), RawDataElement)
    return dataset


def name_of(ds: pydicom.Dataset) -> str:
    return extract(ds).patient["name"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"M\x9cller^Hans", "Mœller^Hans"),  # 0x9C: œ in Windows-1252, a C1 control in Latin-1
        (b"\x80", "€"),
        (b"Fran\x8dois", None),  # 0x8D is undefined even in Windows-1252: replaced, not a crash
        (b"Dvo\x9a\xe1k^Anton\xedn", "Dvošák^Antonín"),  # 0x9A: š
    ],
)
def test_iso_ir_100_with_windows_1252_bytes_decodes_as_cp1252(tmp_path: Path, raw: bytes, expected: str | None) -> None:
    ds = raw_dataset(tmp_path, "ISO_IR 100", PatientName=raw)
    name = name_of(ds)
    if expected is None:
        assert name.startswith("Fran") and name.endswith("ois") and "\x8d" not in name
    else:
        assert name == expected
        assert name != raw.decode("latin-1")


def test_iso_ir_100_without_c1_bytes_stays_latin1(tmp_path: Path) -> None:
    ds = raw_dataset(tmp_path, "ISO_IR 100", PatientName=b"M\xfcller^Jos\xe9", ReferringPhysicianName=b"\xc6gidius")
    fields = extract(ds)
    assert fields.patient["name"] == "Müller^José"
    assert fields.study["referring_physician"] == "Ægidius"


def test_lie_is_judged_per_element(tmp_path: Path) -> None:
    """One element with a Windows-1252 byte does not change how the others are read."""
    ds = raw_dataset(tmp_path, "ISO_IR 100", PatientName=b"M\x9cller", InstitutionName=b"H\xf4pital \xb5")
    fields = extract(ds)
    assert fields.patient["name"] == "Mœller"
    assert fields.study["institution"] == "Hôpital µ"


def test_no_charset_with_utf8_bytes_decodes_as_utf8(tmp_path: Path) -> None:
    ds = raw_dataset(tmp_path, None, PatientName="Müller^José".encode(), StudyDescription="Thorax ✓".encode())
    assert "SpecificCharacterSet" not in ds
    fields = extract(ds)
    assert fields.patient["name"] == "Müller^José"
    assert fields.study["description"] == "Thorax ✓"
    assert fields.study["charset"] == ""


def test_no_charset_with_latin_bytes_decodes_as_windows_1252(tmp_path: Path) -> None:
    ds = raw_dataset(tmp_path, None, PatientName=b"M\xfcller^Jos\xe9", InstitutionName=b"Caf\xe9 \x80")
    fields = extract(ds)
    assert fields.patient["name"] == "Müller^José"
    assert fields.study["institution"] == "Café €"


def test_explicit_ascii_charset_with_utf8_bytes(tmp_path: Path) -> None:
    ds = raw_dataset(tmp_path, "ISO_IR 6", PatientName="Øster^Åse".encode())
    assert name_of(ds) == "Øster^Åse"


def test_no_charset_plain_ascii(tmp_path: Path) -> None:
    ds = raw_dataset(tmp_path, None, PatientName=b"Doe^John^^^")
    assert name_of(ds) == "Doe^John^^^"
    assert extract(ds).patient["name_norm"] == "doe^john"


def test_declared_utf8_is_trusted(tmp_path: Path) -> None:
    ds = raw_dataset(tmp_path, "ISO_IR 192", PatientName="Ærø^Zoë".encode())
    assert name_of(ds) == "Ærø^Zoë"


def test_override_wins_over_the_declared_charset(tmp_path: Path) -> None:
    """A device known to send UTF-8 under an ISO_IR 100 label: the admin's override applies."""
    ds = raw_dataset(tmp_path, "ISO_IR 100", PatientName="Müller".encode())
    assert extract(ds).patient["name"] == "MÃ¼ller"  # as declared: mojibake
    assert extract(ds, charset_override="ISO_IR 192").patient["name"] == "Müller"


def test_multi_valued_charset_is_declared_in_order(tmp_path: Path) -> None:
    ds = raw_dataset(tmp_path, ["", "ISO 2022 IR 87"], PatientName=b"Yamada^Tarou")
    assert declared_charsets(ds) == ["", "ISO 2022 IR 87"]
    assert extract(ds).study["charset"] == "\\ISO 2022 IR 87"
    assert name_of(ds) == "Yamada^Tarou"


def test_effective_encodings_rules() -> None:
    assert effective_encodings(b"Doe", []) == ["ISO_IR 6"]
    assert effective_encodings("Müller".encode(), []) == ["ISO_IR 192"]
    assert effective_encodings(b"M\xfcller", []) == ["cp1252"]
    assert effective_encodings(b"M\x9cller", ["ISO_IR 100"]) == ["cp1252"]
    assert effective_encodings(b"M\xfcller", ["ISO_IR 100"]) == ["ISO_IR 100"]
    # Bytes 0x80-0x9F are ordinary in multi-byte sets: never taken for the Windows-1252 lie.
    assert effective_encodings(b"\xcd\xf5", ["GB18030"]) == ["GB18030"]
    assert effective_encodings(b"\x1b$B\x3b\x33", ["", "ISO 2022 IR 87"]) == ["", "ISO 2022 IR 87"]
    assert effective_encodings(b"anything", ["ISO_IR 100"], override="ISO_IR 192") == ["ISO_IR 192"]


def test_text_of_absent_element_is_empty(tmp_path: Path) -> None:
    ds = raw_dataset(tmp_path, "ISO_IR 100", PatientName=b"Doe")
    assert text(ds, "StudyDescription") == ""
    assert extract(ds).series["description"] == ""


def test_undecodable_bytes_under_a_multibyte_charset_do_not_raise(tmp_path: Path) -> None:
    ds = raw_dataset(tmp_path, "ISO_IR 192", PatientName=b"Bad\xff\xfe^Name")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning may escape either
        name = name_of(ds)
    assert name.startswith("Bad") and name.endswith("^Name")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Müller^José", "MULLER^JOSE"),
        ("Müller^José", "muller^jose^^"),
        ("Doe^John^^^", "DOE^JOHN"),
        ("  Doe ^ John ", "doe^john"),
        ("Straße^Zoë", "STRASSE^ZOE"),
        ("Buc^Jérôme", "BUC^JEROME"),
        ("Ｍｕｌｌｅｒ", "MULLER"),  # full-width forms folded by NFKD
        ("Yamada^Tarou=山田^太郎", "YAMADA^TAROU=山田^太郎="),
    ],
)
def test_normalise_name_folds_case_accents_and_trailing_separators(a: str, b: str) -> None:
    assert normalise_name(a) == normalise_name(b)


def test_normalise_name_values() -> None:
    assert normalise_name("Müller^José") == "muller^jose"
    assert normalise_name("Doe^John^^^") == "doe^john"
    assert normalise_name("Doe^John^^^=") == "doe^john"
    assert normalise_name("") == ""
    assert normalise_name("Doe^^Middle") == "doe^^middle"  # inner empty components keep their place


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Müller^José", "Miller^José"),
        ("Doe^John", "Doe^Joan"),
        ("Doe^John", "John^Doe"),
        ("やまだ^たろう", "やまた^たろう"),  # kana voicing marks are not accents
    ],
)
def test_normalise_name_keeps_different_names_apart(a: str, b: str) -> None:
    assert normalise_name(a) != normalise_name(b)


def test_extract_normalises_patient_and_referring_names(tmp_path: Path) -> None:
    ds = raw_dataset(
        tmp_path, "ISO_IR 100", PatientName=b"M\xfcller^Jos\xe9^^", ReferringPhysicianName=b"\xc9mile^Zola"
    )
    fields = extract(ds)
    assert fields.patient["name"] == "Müller^José^^"
    assert fields.patient["name_norm"] == "muller^jose"
    assert fields.study["referring_physician_norm"] == "emile^zola"
