"""Real videos, documents and reports for tests: streams made by ffmpeg, a PDF made by Pillow
and wrapped by DCMTK's pdf2dcm, DCMTK's own test report; wrapped as DICOM the way PS3.5
8.2.5-8.2.11 says (the whole bitstream in the Pixel Data after an empty Basic Offset Table)."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pydicom
import pydicom.data
from PIL import Image, ImageDraw
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import itemize_fragment
from pydicom.uid import generate_uid

from support.dicomgen import make_dataset
from support.tools import require

FFMPEG = "/usr/bin/ffmpeg"
FFPROBE = "/usr/bin/ffprobe"
VIDEO_PHOTOGRAPHIC = "1.2.840.10008.5.1.4.1.1.77.1.4.1"
VIDEO_ENDOSCOPIC = "1.2.840.10008.5.1.4.1.1.77.1.1.1"
MPEG2_MPML = "1.2.840.10008.1.2.4.100"
H264_HP41 = "1.2.840.10008.1.2.4.102"
H264_HP41_FRAGMENTABLE = "1.2.840.10008.1.2.4.102.1"
HEVC_MP51 = "1.2.840.10008.1.2.4.107"
CODECS = {"h264": ["-c:v", "libx264", "-pix_fmt", "yuv420p"], "mpeg2": ["-c:v", "mpeg2video", "-q:v", "4"],
          "hevc": ["-c:v", "libx265", "-pix_fmt", "yuv420p", "-x265-params", "log-level=error"]}  # fmt: skip
RAW_FORMATS = {"h264": "h264", "mpeg2": "mpeg2video", "hevc": "hevc"}
SR_FILE = Path(pydicom.data.__file__).parent / "test_files" / "test-SR.dcm"  # DCMTK's own SR test document


def make_stream(path: Path, codec: str, container: str, frames: int = 50, fps: int = 25, bframes: bool = True,
                audio: bool = False) -> Path:  # fmt: skip
    """A testsrc clip of ``frames`` frames: ``container`` "ts" (MPEG-TS), "mp4" or "raw" (elementary)."""
    require(FFMPEG)
    length = f"duration={frames / fps}"
    args = [FFMPEG, "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size=320x240:rate={fps}:{length}"]
    if audio:  # AC-3: allowed in MPEG-TS by PS3.5 8.2.12, played by no browser from an MP4
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:{length}", "-c:a", "ac3"]
    args += [*CODECS[codec], *([] if bframes else ["-bf", "0"])]
    args += ["-f", {"ts": "mpegts", "mp4": "mp4"}.get(container, RAW_FORMATS[codec]), str(path)]
    subprocess.run(args, check=True, timeout=120)
    return path


def video_dicom(stream: Path, out: Path, syntax: str, frames: int = 50, fps: int = 25, fragments: int = 1,
                sop_class: str = VIDEO_PHOTOGRAPHIC, **values: object) -> Path:  # fmt: skip
    """``stream`` as the Pixel Data of a video instance: an empty Basic Offset Table, then the
    stream in ``fragments`` pieces (1 unless the syntax is a fragmentable one)."""
    data = stream.read_bytes()
    ds = make_dataset(modality="ES" if sop_class == VIDEO_ENDOSCOPIC else "XC", rows=240, columns=320, **values)
    ds.SOPClassUID = sop_class
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "YBR_PARTIAL_420", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.NumberOfFrames, ds.FrameTime, ds.FrameIncrementPointer = frames, 1000.0 / fps, 0x00181063
    ds.CineRate, ds.RecommendedDisplayFrameRate = fps, fps
    ds.ImageType, ds.LossyImageCompression = ["ORIGINAL", "PRIMARY"], "01"
    ds.AcquisitionContextSequence = []
    step = -(-len(data) // fragments)
    pieces = [data[i : i + step] for i in range(0, len(data), step)]
    pieces = [piece + b"\x00" * (len(piece) % 2) for piece in pieces]  # items are even (PS3.5 A.4)
    ds.PixelData = itemize_fragment(b"") + b"".join(itemize_fragment(p) for p in pieces)  # empty BOT, then the stream
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    meta.TransferSyntaxUID = syntax
    ds.file_meta = meta
    out.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(out, enforce_file_format=True)
    return out


def odd_pdf(path: Path) -> bytes:
    """A real one-page PDF (Pillow's), made odd in length so that DICOM must pad it."""
    picture = Image.new("RGB", (300, 120), "white")
    ImageDraw.Draw(picture).text((12, 50), "Lightbox discharge letter", fill="black")
    buffer = io.BytesIO()
    picture.save(buffer, "PDF")
    data = buffer.getvalue()
    data += b"\n" if len(data) % 2 == 0 else b""
    path.write_bytes(data)
    return data


def pdf_dicom(pdf: Path, out: Path, study_from: Path | None = None, title: str = "Discharge letter") -> Path:
    """DCMTK's pdf2dcm: the PDF in a new series (of the study of ``study_from`` if given)."""
    study = ["+st", str(study_from)] if study_from else ["+pn", "Doe^Jane", "+pi", "PID-1"]
    subprocess.run([str(require("/usr/bin/pdf2dcm")), *study, "+t", title, str(pdf), str(out)], check=True, timeout=60)
    return out


def sr_dicom(out: Path, study_uid: str, patient_id: str = "PID-1", patient_name: str = "Doe^Jane",
             text: str | None = None) -> Path:  # fmt: skip
    """DCMTK's test report, moved into a study; ``text`` replaces its first TEXT value."""
    ds = pydicom.dcmread(SR_FILE)
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study_uid, generate_uid(), generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientID, ds.PatientName = patient_id, patient_name
    if text is not None:
        ds.ContentSequence[1].ContentSequence[0].TextValue = text
    out.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(out, enforce_file_format=True)
    return out


def probe(path: Path | str, *extra: str) -> dict:
    """ffprobe's view of a file or URL: streams with decoded frame counts."""
    import json

    result = subprocess.run([FFPROBE, "-v", "error", "-count_frames", "-show_streams", "-show_format", "-print_format",
                             "json", *extra, str(path)], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def frame_hashes(path: Path | str, *input_options: str) -> list[str]:
    """MD5 of every decoded frame: equal lists mean the same pictures, so the same bitstream."""
    result = subprocess.run([FFMPEG, "-nostdin", "-v", "error", *input_options, "-i", str(path), "-map", "0:v:0",
                             "-f", "framemd5", "-"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [line.rsplit(",", 1)[1].strip() for line in result.stdout.splitlines() if line and not line.startswith("#")]


def minimal_pdf(path: Path, pages: int = 1, title: str = "Referral letter", scans: bytes = b"") -> bytes:
    """A hand-written PDF of ``pages`` pages of text, with ``title`` in its Info dictionary
    (cross-reference offsets computed, so poppler and browsers read it without repair).  With
    ``scans`` (a baseline JPEG of an A4 page), each page also shows its own copy of it, as a
    scanned letter's pages are each a picture."""
    stride = 3 if scans else 2  # objects per page: the page, its contents, its scan
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % (5 + stride * i) for i in range(pages))
               + b"] /Count %d >>" % pages,
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
               b"<< /Title (" + title.encode("latin-1") + b") /Producer (Lightbox tests) >>"]  # fmt: skip
    for i in range(pages):
        page = 5 + stride * i
        text = b"BT /F1 18 Tf 72 720 Td (Lightbox test page %d of %d) Tj ET" % (i + 1, pages)
        scan = b""
        if scans:
            text = b"q 612 0 0 792 0 0 cm /Scan Do Q " + text
            scan = b" /XObject << /Scan %d 0 R >>" % (page + 2)
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >>%s"
                       b" >> /Contents %d 0 R >>" % (scan, page + 1))  # fmt: skip
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(text), text))
        if scans:
            with Image.open(io.BytesIO(scans)) as picture:
                width, height = picture.size
            objects.append(b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB"
                           b" /BitsPerComponent 8 /Filter /DCTDecode /Length %d >>\nstream\n%s\nendstream"
                           % (width, height, len(scans), scans))  # fmt: skip
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 4 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(bytes(out))
    return bytes(out)


def picture(path: Path, size: tuple[int, int] = (320, 240), **save: object) -> Path:
    """A colourful test picture in the format of ``path``'s extension (Pillow's ``save`` options)."""
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    for x in range(0, size[0], 16):
        draw.rectangle((x, 0, x + 15, size[1]), fill=((x * 7) % 256, (x * 3) % 256, 255 - x % 256))
    draw.ellipse((size[0] // 4, size[1] // 4, size[0] * 3 // 4, size[1] * 3 // 4), fill=(250, 240, 10))
    image.save(path, **save)
    return path


def bmp_bomb(path: Path, side: int = 60000) -> Path:
    """A BMP of a few bytes whose header declares side x side pixels (24-bit)."""
    header = b"BM" + (54 + 16).to_bytes(4, "little") + b"\x00" * 4 + (54).to_bytes(4, "little")
    info = (40).to_bytes(4, "little") + side.to_bytes(4, "little") + side.to_bytes(4, "little")
    info += (1).to_bytes(2, "little") + (24).to_bytes(2, "little") + b"\x00" * 24
    path.write_bytes(header + info + b"\x00" * 16)
    return path


def make_avi(path: Path, frames: int = 50, fps: int = 25, size: str = "320x240") -> Path:
    """An AVI with MPEG-4 part 2 video (as endoscopy capture cards write): it must be re-encoded."""
    subprocess.run([str(require(FFMPEG)), "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc=size={size}:rate={fps}:duration={frames / fps}", "-c:v", "mpeg4", "-q:v", "3",
                    "-f", "avi", str(path)], check=True, timeout=300)  # fmt: skip
    return path


def h264_annexb(path: Path | str, *input_options: str) -> bytes:
    """The first video track's H.264 bitstream as an Annex B elementary stream, copied (not decoded)."""
    result = subprocess.run([FFMPEG, "-nostdin", "-v", "error", *input_options, "-i", str(path), "-map", "0:v:0",
                             "-c:v", "copy", "-bsf:v", "h264_mp4toannexb", "-f", "h264", "-"], capture_output=True,
                            timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout
