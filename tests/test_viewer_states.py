"""The viewer's presentation states beyond test_annotations.py, in the system Chromium against
`lightbox serve`, every image and state sent by DCMTK storescu: annotations of a multi-frame image
kept with their frame (read back with pydicom, reopened on that frame only), a zoomed displayed
area saved and reopened, a colour image saved as a Color Softcopy Presentation State, a GSPS made
by another system (pydicom) drawn, and the scrolling of an enhanced multi-frame CT (a position
per frame) linked with a classic CT series of the same frame of reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
import test_annotations
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from test_annotations import GSPS, V, Viewer

from support.dicomgen import make_dataset, write
from support.scu import rows

pytestmark = pytest.mark.slow  # Chromium

context = test_annotations.context  # the fixture: a browser context logged in as a viewer

CSPS = "1.2.840.10008.5.1.4.1.1.11.2"
ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"
PATIENT = {"patient_id": "VET-16", "patient_name": "Bella^Cat"}


def item(**values: Any) -> Dataset:
    ds = Dataset()
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


@pytest.fixture(scope="module")
def images(server: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 5-frame image (dark), a dark grayscale image, an RGB image, a GSPS made with pydicom
    on its own image, and a classic CT (5 slices, z 0-40 mm) beside an enhanced CT of the same
    frame of reference whose 5 frames run the other way (z 40-0 mm)."""
    folder = tmp_path_factory.mktemp("states")
    study = generate_uid()
    files: dict[str, Path] = {}
    multi = make_dataset(study_uid=study, rows=64, columns=64, NumberOfFrames=5, **PATIENT)
    frames = np.repeat(np.arange(5, dtype=np.uint16) * 10, 64 * 64).reshape(5, 64, 64)
    frames[:, 63, 63] = 4000  # each frame dark but a corner: the annotations' yellow stands out
    multi.PixelData = frames.tobytes()
    files["multi"] = write(multi, folder / "multi.dcm")
    gray = make_dataset(study_uid=study, rows=160, columns=200, **PATIENT)
    gray.PixelData = np.zeros((160, 200), np.uint16).tobytes()
    files["gray"] = write(gray, folder / "gray.dcm")
    colour = make_dataset(study_uid=study, rows=60, columns=80, SamplesPerPixel=3, PhotometricInterpretation="RGB",
                          PlanarConfiguration=0, BitsAllocated=8, BitsStored=8, HighBit=7, **PATIENT)  # fmt: skip
    colour.PixelData = np.full((60, 80, 3), (0, 0, 120), np.uint8).tobytes()
    files["colour"] = write(colour, folder / "colour.dcm")
    theirs = make_dataset(study_uid=study, rows=160, columns=200, **PATIENT)
    theirs.PixelData = np.zeros((160, 200), np.uint16).tobytes()
    files["theirs"] = write(theirs, folder / "theirs.dcm")
    files["their_state"] = write(their_state(theirs), folder / "their-state.dcm")

    reference, orientation, classic = generate_uid(), [1, 0, 0, 0, 1, 0], generate_uid()
    for k in range(5):
        ct = make_dataset(study_uid=study, series_uid=classic,
                          rows=32, columns=32, modality="CT", instance_number=k + 1, FrameOfReferenceUID=reference,
                          ImagePositionPatient=[0, 0, 10 * k], ImageOrientationPatient=orientation,
                          PixelSpacing=[1, 1], **PATIENT)  # fmt: skip
        files[f"classic{k}"] = write(ct, folder / f"classic{k}.dcm")
    enhanced = make_dataset(study_uid=study, rows=32, columns=32, modality="CT", NumberOfFrames=5,
                            FrameOfReferenceUID=reference, **PATIENT)  # fmt: skip
    enhanced.SOPClassUID = ENHANCED_CT
    enhanced.SharedFunctionalGroupsSequence = [
        item(PlaneOrientationSequence=[item(ImageOrientationPatient=orientation)],
             PixelMeasuresSequence=[item(PixelSpacing=[1, 1], SliceThickness=10)])
    ]  # fmt: skip
    enhanced.PerFrameFunctionalGroupsSequence = [
        item(PlanePositionSequence=[item(ImagePositionPatient=[0, 0, 40 - 10 * k])]) for k in range(5)
    ]
    enhanced.PixelData = np.zeros((5, 32, 32), np.uint16).tobytes()
    files["enhanced"] = write(enhanced, folder / "enhanced.dcm")
    result = server.storescu(*files.values())
    assert result.stderr.count("Store Response (Success)") == len(files), result.stderr
    uids = {name: str(pydicom.dcmread(path, stop_before_pixels=True).SeriesInstanceUID) for name, path in files.items()}
    return {**uids, "study": study, "classic": classic}


def their_state(image: Dataset) -> Dataset:
    """A GSPS as another system makes it: a layer, a POLYLINE across row 80 and a TEXT object."""
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = GSPS, generate_uid()
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
                    "StudyTime", "AccessionNumber", "StudyID"):  # fmt: skip
        setattr(ds, keyword, image.get(keyword))
    ds.ReferringPhysicianName = ""
    ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber, ds.InstanceNumber = "PR", generate_uid(), 77, 1
    ds.ContentLabel, ds.ContentDescription, ds.ContentCreatorName = "OTHER", "Made elsewhere", "Other^System"
    ds.PresentationCreationDate, ds.PresentationCreationTime = "20261201", "101010"
    ref = item(ReferencedSOPClassUID=image.SOPClassUID, ReferencedSOPInstanceUID=image.SOPInstanceUID)
    ds.ReferencedSeriesSequence = [item(SeriesInstanceUID=image.SeriesInstanceUID, ReferencedImageSequence=[ref])]
    ds.DisplayedAreaSelectionSequence = [
        item(DisplayedAreaTopLeftHandCorner=[1, 1], DisplayedAreaBottomRightHandCorner=[200, 160],
             PresentationSizeMode="SCALE TO FIT", PresentationPixelAspectRatio=[1, 1])
    ]  # fmt: skip
    ds.PresentationLUTShape = "IDENTITY"
    ds.GraphicLayerSequence = [item(GraphicLayer="FINDINGS", GraphicLayerOrder=1)]
    ds.GraphicAnnotationSequence = [
        item(GraphicLayer="FINDINGS", ReferencedImageSequence=[ref],
             GraphicObjectSequence=[item(GraphicAnnotationUnits="PIXEL", GraphicDimensions=2, NumberOfGraphicPoints=2,
                                         GraphicData=[20.0, 80.0, 180.0, 80.0], GraphicType="POLYLINE", GraphicFilled="N")],
             TextObjectSequence=[item(UnformattedTextValue="Fracture", AnchorPointAnnotationUnits="PIXEL",
                                      AnchorPoint=[100.0, 40.0], AnchorPointVisibility="N")])
    ]  # fmt: skip
    return ds


def stored(server: Any, sop: str) -> pydicom.Dataset:
    ((key,),) = rows(server.data, "SELECT file_key FROM instance WHERE sop_uid = ?", sop)
    return pydicom.dcmread(server.data / "storage" / key)


def yellow_at(v: Viewer, x: float, y: float) -> bool:
    """An annotation's yellow (#ffd400, blended where a 1.5 px line straddles two rows) on the
    canvas around image pixel (x, y)."""
    cx, cy = v.page.evaluate(f"{V}.imageToCanvas({x}, {y}).map(v => Math.round(v * devicePixelRatio))")
    data = v.page.evaluate(
        f"Array.from(document.querySelector('.ws-vp canvas').getContext('2d').getImageData({cx - 1}, {cy - 1}, 3, 3).data)"
    )
    return any(r > 150 and g > 120 and b < 60 for r, g, b in (data[i : i + 3] for i in range(0, len(data), 4)))


def save(v: Viewer) -> str:
    v.page.click(".ws-vp .lbv-save")
    v.until("!!document.querySelector('.ws-vp').dataset.savedState")
    return str(v.page.evaluate("document.querySelector('.ws-vp').dataset.savedState"))


def test_annotations_of_a_multiframe_image_keep_their_frame(server: Any, context: Any, images: dict[str, Any]) -> None:
    v = Viewer(context, server, images["study"], images["multi"])
    v.page.evaluate(f"{V}.show(2)")
    v.until("document.querySelector('.ws-vp').dataset.frame", "3")
    v.tool("measure")
    v.stroke((10, 20), (50, 20))
    sop = save(v)
    v.close()
    (annotation,) = stored(server, sop).GraphicAnnotationSequence
    (ref,) = annotation.ReferencedImageSequence
    assert annotation.GraphicLayer == "LENGTH" and ref.ReferencedFrameNumber == 3

    again = Viewer(context, server, images["study"], images["multi"])
    again.until(f"{V}.notes.items.length", 1)
    assert again.page.evaluate(f"{V}.notes.items[0].frame") == 3
    again.until("document.querySelector('.ws-vp').dataset.frame", "1")
    assert again.page.evaluate(f"{V}.notes.shown().length") == 0 and not yellow_at(again, 30, 20)
    again.page.evaluate(f"{V}.show(2)")
    again.until("document.querySelector('.ws-vp').dataset.frame", "3")
    assert again.page.evaluate(f"{V}.notes.shown().length") == 1
    again.until(f"(() => {{ {V}.draw(); return true; }})()")
    assert yellow_at(again, 30, 20)
    again.close()


def test_zoom_colour_and_another_systems_state(server: Any, context: Any, images: dict[str, Any]) -> None:
    # A zoomed view: the displayed area saved is the part on screen; reopened, the zoom returns.
    v = Viewer(context, server, images["study"], images["gray"])
    v.page.evaluate(f"{V}.zoomAt(3, ...{V}.imageToCanvas(100, 80))")
    scale = v.state()["scale"]
    sop = save(v)
    v.close()
    (area,) = stored(server, sop).DisplayedAreaSelectionSequence
    (x0, y0), (x1, y1) = area.DisplayedAreaTopLeftHandCorner, area.DisplayedAreaBottomRightHandCorner
    assert area.PresentationSizeMode == "SCALE TO FIT" and 1 < x0 < 100 < x1 < 200 and x1 - x0 < 100, (x0, y0, x1, y1)
    again = Viewer(context, server, images["study"], images["gray"])
    again.until(f"{V}.states.applied", sop)
    assert not again.page.evaluate(f"{V}.view.fit") and again.state()["scale"] == pytest.approx(scale, rel=0.05)
    again.close()

    # A colour image: a Color Softcopy Presentation State with an ICC profile and no window.
    v = Viewer(context, server, images["study"], images["colour"])
    v.tool("measure")
    v.stroke((10, 30), (70, 30))
    sop = save(v)
    v.close()
    ds = stored(server, sop)
    assert ds.SOPClassUID == CSPS and len(ds.ICCProfile) > 100 and "SoftcopyVOILUTSequence" not in ds
    assert ds.GraphicAnnotationSequence[0].GraphicLayer == "LENGTH"
    again = Viewer(context, server, images["study"], images["colour"])
    again.until(f"{V}.notes.items.length", 1)
    assert again.items()[0][0] == "length" and yellow_at(again, 40, 30)
    again.close()

    # Another system's GSPS: its polyline and text drawn as they are.
    v = Viewer(context, server, images["study"], images["theirs"])
    v.until(f"{V}.notes.items.length", 1)
    kind, layer, texts = v.page.evaluate(
        f"[{V}.notes.items[0].kind, {V}.notes.items[0].layer, {V}.notes.items[0].texts.map(t => t.text)]"
    )
    assert (kind, layer, texts) == ("foreign", "FINDINGS", ["Fracture"])
    assert yellow_at(v, 60, 80) and yellow_at(v, 150, 80) and not yellow_at(v, 60, 120)
    v.close()


def test_enhanced_ct_frames_link_by_position(server: Any, context: Any, images: dict[str, Any]) -> None:
    page = context.new_page()
    page.goto(f"http://127.0.0.1:{server.http_port}/studies/{images['study']}/view?layout=2"
              f"&series={images['classic']}&series={images['enhanced']}")  # fmt: skip
    frame = "document.querySelector('.ws-vp[data-index=\"{}\"]').dataset.frame"
    helper = Viewer.__new__(Viewer)
    helper.page = page
    helper.until(frame.format(1), "1")
    page.click(".ws-vp[data-index='0'] canvas")
    page.keyboard.press("End")  # the classic series at z 40: the enhanced CT's first frame
    helper.until(frame.format(0), "5")
    page.keyboard.press("Home")  # z 0: its last frame
    helper.until(frame.format(1), "5")
    page.keyboard.press("ArrowDown")  # z 10: its fourth
    helper.until(frame.format(1), "4")
    page.click(".ws-vp[data-index='1'] canvas")
    page.keyboard.press("Home")  # the enhanced CT's first frame, z 40: the classic's fifth slice
    helper.until(frame.format(0), "5")
    page.close()
