"""DICOM JSON made straight from the bytes pydicom read (raw_json) is byte for byte what pydicom's
own conversion gives (``to_json`` with the direct way turned off): over pydicom's whole test
corpus and its character set files, and over edge cases made element by element.  And a header
read by raw_header gives the JSON pydicom's reader gives, or is left to it."""

from __future__ import annotations

import functools
import json
import struct
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pydicom
import pydicom.data
import pytest
from pydicom import Dataset
from pydicom.data import get_testdata_files
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from appliance.web.dicomweb import raw_header, raw_json
from appliance.web.dicomweb.json import to_json

BULK = "/dicom-web/studies/1/series/2/instances/3/bulkdata/"


def both_ways(make: Callable[[], Dataset], monkeypatch: pytest.MonkeyPatch) -> tuple[bytes, bytes, int]:
    """The JSON of ``make()`` the direct way and pydicom's way (each from a fresh dataset, as
    pydicom's way converts the elements it reads), and how many elements went the direct way."""
    direct = 0
    encode = raw_json.attribute

    def counted(raw: RawDataElement, encodings: list[str]) -> dict | None:
        nonlocal direct
        answer = encode(raw, encodings)
        direct += answer is not None
        return answer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with monkeypatch.context() as patch:
            patch.setattr(raw_json, "attribute", counted)
            fast = json.dumps(to_json(make(), lambda p: BULK + p), separators=(",", ":")).encode()
        with monkeypatch.context() as patch:
            patch.setattr(raw_json, "attribute", lambda raw, encodings: None)
            slow = json.dumps(to_json(make(), lambda p: BULK + p), separators=(",", ":")).encode()
    return fast, slow, direct


def corpus() -> Iterator[str]:
    """pydicom's test files as installed (never downloading the others)."""
    root = Path(pydicom.data.__file__).parent
    yield from sorted(
        str(p) for folder in ("test_files", "charset_files") for p in (root / folder).rglob("*") if p.is_file()
    )


def readable(path: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pydicom.dcmread(path, stop_before_pixels=True, defer_size=1024, force=True)
        return True
    except (InvalidDicomError, OSError, ValueError, EOFError, struct.error, KeyError, NotImplementedError):
        return False


FILES = [p for p in corpus() if readable(p)]


def test_the_corpus_is_there() -> None:
    assert len(FILES) > 100
    assert any("chrH32" in p for p in FILES) and any("chrX2" in p for p in FILES)  # Japanese, Korean charsets


@pytest.mark.parametrize("path", FILES, ids=[Path(p).name for p in FILES])
def test_pydicom_corpus_file_encoded_as_pydicom_would(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def make() -> Dataset:
        return pydicom.dcmread(path, stop_before_pixels=True, defer_size=1024, force=True)

    fast, slow, _ = both_ways(make, monkeypatch)
    assert fast == slow


@pytest.mark.parametrize("path", FILES, ids=[Path(p).name for p in FILES])
def test_pydicom_corpus_file_read_as_pydicom_reads_it(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    header = raw_header.read(Path(path))
    if header is None:
        return  # left to pydicom's reader (what is read here is counted below)
    fast, _, _ = both_ways(lambda: header.dataset, monkeypatch)
    _, slow, _ = both_ways(lambda: pydicom.dcmread(path, stop_before_pixels=True, defer_size=1 << 20), monkeypatch)
    assert fast == slow
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, defer_size=1)
    assert header.syntax == ds.file_meta.TransferSyntaxUID
    stops = [keyword for keyword in raw_header.PIXEL_TAGS.values() if keyword in ds]
    assert header.pixels == ((stops[0], ds[stops[0]].VR) if stops else None)


def test_the_plain_files_are_read_here() -> None:
    read = [p for p in FILES if raw_header.read(Path(p)) is not None]
    assert len(read) > 60
    assert raw_header.read(Path(get_testdata_files("CT_small.dcm")[0])) is not None
    assert raw_header.read(Path(get_testdata_files("MR_small_implicit.dcm")[0])) is None  # pydicom's
    assert raw_header.read(Path(get_testdata_files("MR_small_bigendian.dcm")[0])) is None
    assert raw_header.read(Path(get_testdata_files("SC_rgb_jpeg.dcm")[0])) is None  # says explicit, is implicit


def test_most_of_a_ct_header_goes_the_direct_way(monkeypatch: pytest.MonkeyPatch) -> None:
    path = get_testdata_files("CT_small.dcm")[0]
    fast, slow, direct = both_ways(lambda: pydicom.dcmread(path, stop_before_pixels=True), monkeypatch)
    assert fast == slow
    assert direct >= 60


# -- edge cases, element by element ---------------------------------------------------------

LE, BE = True, False


def raw(tag: int, vr: str | None, value: bytes, little: bool = LE) -> RawDataElement:
    return RawDataElement(Tag(tag), vr, len(value), value, 0, vr is None, little)


def dataset(*elements: RawDataElement, charset: bytes | None = None) -> Dataset:
    ds = Dataset()
    if charset is not None:
        ds[0x00080005] = raw(0x00080005, "CS", charset)
    for element in elements:
        ds[element.tag] = element
    return ds


STRINGS = [
    # (VR, tag, raw value)
    ("DS", 0x00200032, b"-125.0\\0\\1e2 "),
    ("DS", 0x00200032, b" 1.5\\ 2 \\3 "),  # blanks around values
    ("DS", 0x00200032, b"1\\\\2 "),  # an empty value among them
    ("DS", 0x00180050, b"2.50"),
    ("DS", 0x00180050, b".5"),
    ("DS", 0x00180050, b"5."),
    ("DS", 0x00180050, b"+1E-3 "),
    ("DS", 0x00180050, b"00012"),
    ("DS", 0x00180050, b"nan "),
    ("DS", 0x00180050, b"abc "),
    ("DS", 0x00180050, b"  "),
    ("DS", 0x00180050, b""),
    ("IS", 0x00200013, b"04"),
    ("IS", 0x00200013, b"+5"),
    ("IS", 0x00200013, b"-0"),
    ("IS", 0x00200013, b"1.0 "),
    ("IS", 0x00200013, b"1.5 "),
    ("IS", 0x00200013, b" 7"),
    ("IS", 0x00200013, b"x1"),
    ("IS", 0x00281052, b"1\\2\\3 "),
    ("IS", 0x00200013, b""),
    ("PN", 0x00100010, b"Doe^John"),
    ("PN", 0x00100010, b"Doe^John=Ideo^Graphic=Pho^Netic"),
    ("PN", 0x00100010, b"=Ideo"),
    ("PN", 0x00100010, b"Doe==Pho"),
    ("PN", 0x00100010, b"Doe^John== "),
    ("PN", 0x00100010, b"==="),
    ("PN", 0x00100010, b"A=B=C=D"),
    ("PN", 0x00100010, b"A\\B=C "),
    ("PN", 0x00100010, b"A\\\\B"),
    ("PN", 0x00100010, b"Doe ^John "),
    ("PN", 0x00100010, b"Doe\x00"),
    ("PN", 0x00100010, b""),
    ("LO", 0x00100020, b" lead"),
    ("LO", 0x00100020, b"one\\two "),
    ("LO", 0x00100020, b"trail \\two"),
    ("LO", 0x00100020, b"tab\t"),
    ("SH", 0x00080050, b"  "),
    ("CS", 0x00080008, b"ORIGINAL\\PRIMARY\\AXIAL "),
    ("CS", 0x00080008, b"ORIGINAL\\\\AXIAL"),
    ("AE", 0x00020016, b" STORESCU "),
    ("AE", 0x00020016, b"A\\ B "),
    ("UI", 0x0020000D, b"1.2.3\x00"),
    ("UI", 0x0020000D, b"1.2.3\\1.2.4\x00"),
    ("UI", 0x0020000D, b"1.2\x003\x00"),
    ("DA", 0x00080020, b"20240101"),
    ("DA", 0x00080020, b"20240101 \\20240102"),
    ("TM", 0x00080030, b"101010.123 "),
    ("DT", 0x0008002A, b"20240101101010 "),
    ("AS", 0x00101010, b"042Y"),
    ("ST", 0x00081030, b" lead\\back slash \x00"),
    ("LT", 0x00204000, b"line\r\nline  "),
    ("UT", 0x00400280, b"text\\with\\backslashes "),
    ("UT", 0x00400280, b"  "),
    ("UR", 0x00081190, b"http://host/a b \t"),
    ("UC", 0x00080119, b"a\\b "),
    ("LO", 0x00100020, b"caf\xe9 "),  # not ASCII in the default character set
]


@pytest.mark.parametrize(("vr", "tag", "value"), STRINGS, ids=[f"{v}-{x!r}" for v, _, x in STRINGS])
def test_string_value_encoded_as_pydicom_would(
    vr: str, tag: int, value: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    for explicit in (vr, None):  # explicit VR, and implicit (the dictionary's)
        fast, slow, _ = both_ways(lambda: dataset(raw(tag, explicit, value)), monkeypatch)  # noqa: B023
        assert fast == slow, explicit


CHARSETS = [
    (b"ISO_IR 100", b"M\xfcller^J\xfcrgen"),  # Latin-1
    (b"ISO_IR 192", "Müller^Jürgen=山田^太郎".encode()),
    (b"ISO_IR 192", b"\xff\xfe broken UTF-8"),
    (b"ISO 2022 IR 149", b"\x1b$)C\xfb\xf3^\x1b$)C\xd1\xce\xd4\xd7"),  # Korean, escapes
    (b"\\ISO 2022 IR 87", b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B"),  # Japanese, escapes
    (b"ISO_IR 13", b"\xd4\xcf\xc0\xde^\xc0\xdb\xb3"),  # Japanese katakana, one byte
    (b"ISO_IR 144", b"\xbb\xee\xdc\xd5\xe0\xe2"),  # Cyrillic
    (b"GB18030", "王^小东".encode("gb18030")),
    (b"NO SUCH SET", b"caf\xe9"),
]


def with_an_item(element: RawDataElement, charset: bytes) -> Dataset:
    """``element`` in a dataset of ``charset`` and again in an item without its own (its parent's)."""
    ds = dataset(element, charset=charset)
    ds[0x00081115] = pydicom.DataElement(0x00081115, "SQ", Sequence([dataset(element)]))
    return ds


@pytest.mark.parametrize(("charset", "value"), CHARSETS, ids=[c.decode() for c, _ in CHARSETS])
def test_text_in_a_specific_character_set_as_pydicom_would(
    charset: bytes, value: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    for vr, tag in (("PN", 0x00100010), ("LO", 0x00081030), ("SH", 0x00080050), ("UT", 0x00400280), ("CS", 0x00080060)):
        padded = value + b" " * (len(value) % 2)
        make = functools.partial(with_an_item, raw(tag, vr, padded), charset)
        fast, slow, _ = both_ways(make, monkeypatch)
        assert fast == slow, vr


def numbers(code: str, values: list[float], little: bool) -> bytes:
    return struct.pack(f"{'<' if little else '>'}{len(values)}{code}", *values)


BINARY = [
    ("US", 0x00280010, "H", [512]),
    ("US", 0x00280010, "H", [0, 65535]),
    ("SS", 0x00189219, "h", [-3, 4]),
    ("UL", 0x00081161, "L", [4294967295, 1]),
    ("SL", 0x00186020, "l", [-2147483648]),
    ("FL", 0x00189327, "f", [0.1, -2.5, 1e30]),
    ("FD", 0x00189328, "d", [0.1, float("inf")]),
    ("SV", 0x00720082, "q", [-(2**63)]),
    ("UV", 0x00720083, "Q", [2**64 - 1]),
    ("US", 0x00280010, "H", []),
]


@pytest.mark.parametrize(("vr", "tag", "code", "values"), BINARY, ids=[f"{v}-{x}" for v, _, _, x in BINARY])
def test_binary_numbers_as_pydicom_would(
    vr: str, tag: int, code: str, values: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    for little in (LE, BE):
        for explicit in (vr, None):
            value = numbers(code, values, little)
            fast, slow, _ = both_ways(lambda: dataset(raw(tag, explicit, value, little)), monkeypatch)  # noqa: B023
            assert fast == slow, (little, explicit)
    odd = numbers(code, values, LE) + b"\x01" if values else b"\x01\x02\x03"
    fast, slow, _ = both_ways(lambda: dataset(raw(tag, vr, odd)), monkeypatch)
    assert fast == slow


def test_ambiguous_lut_private_and_at_elements_as_pydicom_would(monkeypatch: pytest.MonkeyPatch) -> None:
    def make(little: bool) -> Dataset:
        return dataset(
            raw(0x00091010, "LO", b"PRIVATE CREATOR "),
            raw(0x00091011, "OB", b"\x01\x02", little),  # small binary: inline
            raw(0x00091012, None, b"\x01\x02\x03\x04", little),  # private, implicit: pydicom's way
            raw(0x00091013, "UN", b"ABCD", little),
            raw(0x00280106, None, numbers("h", [-5], little), little),  # US or SS
            raw(0x00283002, "US", numbers("H", [0, 0, 16], little), little),  # a LUT descriptor
            raw(0x00283002 + 1, "SS", numbers("h", [-1, 0, 16], little), little),
            raw(0x00209165, "AT", numbers("H", [0x0018, 0x1063, 0x0020, 0x9057], little), little),
            raw(0x00209165 + 1, "AT", b"\x01\x02", little),  # too short
            raw(0x00281201, None, bytes(8), little),  # OW in the dictionary: implicit, small
            raw(0x00660023, "OF", numbers("f", [1.5, 2.5], little), little),
            raw(0x00660040, "OL", bytes(4096), little),  # large: a bulk data URI
            raw(0x00720000, "UL", b""),  # group length: left out
        )

    for little in (LE, BE):
        fast, slow, direct = both_ways(lambda: make(little), monkeypatch)  # noqa: B023
        assert fast == slow, little
        assert direct >= 4


def test_nested_sequences_as_pydicom_would(monkeypatch: pytest.MonkeyPatch) -> None:
    def make() -> Dataset:
        inner = dataset(raw(0x00080100, "SH", b"T-D3000 "), raw(0x00081160, "IS", b"1\\2 "),
                        raw(0x00091010, "LO", b"PRIVATE "), raw(0x00091011, "OB", bytes(2048)))  # fmt: skip
        middle = dataset(raw(0x00081150, "UI", b"1.2.840.10008.5.1.4.1.1.2\x00"))
        middle[0x00082218] = pydicom.DataElement(0x00082218, "SQ", Sequence([inner, Dataset()]))
        ds = dataset(raw(0x00100010, "PN", "Wang^XiaoDong=王^小东=".encode()), charset=b"ISO_IR 192")
        ds[0x00081140] = pydicom.DataElement(0x00081140, "SQ", Sequence([middle, middle]))
        ds[0x00081250] = pydicom.DataElement(0x00081250, "SQ", Sequence())
        return ds

    fast, slow, direct = both_ways(make, monkeypatch)
    assert fast == slow
    assert direct >= 8
    answer = json.loads(fast)
    assert answer["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Wang^XiaoDong", "Ideographic": "王^小东"}]}
    item = answer["00081140"]["Value"][1]["00082218"]["Value"][0]
    assert item["00091011"] == {"vr": "OB", "BulkDataURI": BULK + "00081140/2/00082218/1/00091011"}
    assert item["00081160"] == {"vr": "IS", "Value": [1, 2]}


def test_values_pydicom_is_told_to_make_otherwise_go_its_way(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pydicom.config, "datetime_conversion", True)
    assert not raw_json.usable()


@pytest.mark.filterwarnings("ignore::UserWarning:pydicom")  # the damage, as pydicom sees it
def test_a_cut_or_damaged_file_is_read_as_pydicom_reads_it_or_left_to_it(tmp_path: Path) -> None:
    source = Path(get_testdata_files("liver_1frame.dcm")[0])  # sequences, nested
    whole = source.read_bytes()
    target = tmp_path / "cut.dcm"
    left = compared = 0
    for cut in range(0, 6000, 29):
        damaged = bytearray(whole)
        damaged[cut : cut + 4] = b"\xff\xff\xff\xff"
        for version in (whole[:cut], bytes(damaged)):
            target.write_bytes(version)
            header = raw_header.read(target)  # None or a header: never an exception
            left += header is None
            if header is not None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    try:
                        ds = pydicom.dcmread(target, stop_before_pixels=True, defer_size=1 << 20)
                        expected = json.dumps(to_json(ds, lambda p: BULK + p))
                    except Exception:
                        continue  # pydicom cannot read it either
                assert json.dumps(to_json(header.dataset, lambda p: BULK + p)) == expected, cut
                compared += 1
    assert left > 50 and compared > 50
