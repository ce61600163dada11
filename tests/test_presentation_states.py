"""Presentation states over HTTP against `lightbox serve`: saved from JSON as a Grayscale (or
Color) Softcopy Presentation State through ingest, read back with pydicom attribute by
attribute and checked by DCMTK's dcmpschk; a state made by DCMTK's dcmpsmk (sent by storescu)
listed and read back as JSON; bad bodies refused with a reason; the study counts the state."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import ImageCms
from pydicom import dcmread

from support.dicomgen import make_dataset, make_study, write
from support.qr import findscu
from support.scu import rows
from support.tools import dcmtk
from support.web import VIEWER, Client


@pytest.fixture(scope="module")
def server_settings() -> dict[str, object]:
    return {"query_retrieve_from": "any"}  # findscu without a node of its own


@pytest.fixture(scope="module")
def study(server, tmp_path_factory) -> dict[str, object]:
    """A CT series of three 16×16 slices (rescaled to HU, a window), an RGB image of the same
    study in another series, and a GSPS made by dcmpsmk from the first two slices."""
    folder = tmp_path_factory.mktemp("gsps")
    ct = make_study(folder / "ct", 3, modality="CT", patient_name="Rex^Dog", patient_id="VET-7",
                    RescaleSlope=1, RescaleIntercept=-1024, RescaleType="HU", WindowCenter=40, WindowWidth=400,
                    PatientSpeciesDescription="Canine", ResponsiblePerson="Owner^Olga", StudyDescription="Stifle")  # fmt: skip
    first = dcmread(ct[0], stop_before_pixels=True)
    rgb = make_dataset(study_uid=first.StudyInstanceUID, patient_name="Rex^Dog", patient_id="VET-7", rows=8, columns=8,
                       SamplesPerPixel=3, PhotometricInterpretation="RGB", BitsAllocated=8, BitsStored=8, HighBit=7,
                       PlanarConfiguration=0, modality="XC", StudyDescription="Stifle")  # fmt: skip
    rgb.PixelData = np.full((8, 8, 3), 200, np.uint8).tobytes()
    rgb_file = write(rgb, folder / "rgb.dcm")
    made_by_dcmtk = folder / "dcmpsmk.dcm"
    subprocess.run([dcmtk("dcmpsmk"), str(ct[0]), str(ct[1]), str(made_by_dcmtk)], check=True, timeout=60)
    result = server.storescu(*ct, rgb_file, made_by_dcmtk)
    assert result.returncode == 0 and result.stderr.count("Received Store Response (Success)") == 5, result.stderr
    sop = lambda path: str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)  # noqa: E731
    return {"study": str(first.StudyInstanceUID), "series": str(first.SeriesInstanceUID),
            "slices": [sop(p) for p in ct], "rgb_series": str(rgb.SeriesInstanceUID), "rgb": str(rgb.SOPInstanceUID),
            "dcmpsmk": sop(made_by_dcmtk)}  # fmt: skip


def measurements(slices: list[str]) -> dict[str, object]:
    """What the viewer sends for a length, an angle, an ellipse ROI, a circle, a point and two
    texts on the first two slices, zoomed on the first, rotated and flipped."""
    return {
        "label": "Stifle TPLO",
        "description": "Tibial plateau angle, Ünit test",
        "images": [{"sop_uid": slices[0]}, {"sop_uid": slices[1], "frames": [1]}],
        "voi": [{"center": 300, "width": 1500}],
        "displayed_areas": [{"top_left": [3, 2], "bottom_right": [12, 11], "size_mode": "MAGNIFY",
                             "magnification": 2.5, "images": [slices[0]]}],  # fmt: skip
        "rotation": 90,
        "flip": True,
        "layers": [{"name": "MEASUREMENTS", "order": 1, "description": "lengths and angles"},
                   {"name": "TEXT", "order": 2}],  # fmt: skip
        "annotations": [
            {"layer": "MEASUREMENTS", "images": [slices[0]], "graphics": [
                {"type": "POLYLINE", "points": [[1.5, 2.25], [10, 12]]},
                {"type": "POLYLINE", "points": [[2, 14], [8, 8], [14, 12]]},
                {"type": "ELLIPSE", "points": [[2, 8], [14, 8], [8, 5], [8, 11]], "filled": False},
                {"type": "CIRCLE", "points": [[8, 8], [10, 8]], "filled": True},
                {"type": "POINT", "points": [[3, 3]]},
            ]},
            {"layer": "TEXT", "texts": [
                {"text": "TPA 24.5°", "anchor": [8, 8], "anchor_visible": True},
                {"text": "L 12.3 mm", "box": [[1, 1], [9, 3]]},
            ]},
        ],
    }  # fmt: skip


def post(client: Client, series: str, body: object, csrf: bool = True, **kwargs: object):
    headers = {"X-CSRF-Token": client.csrf()} if csrf else {}
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    kwargs.setdefault("headers", {"Content-Type": "application/json", **headers})
    return client.request("POST", f"/api/series/{series}/presentation-states", data=data, **kwargs)


def stored(server, sop_uid: str) -> Path:
    ((key,),) = rows(server.data, "SELECT file_key FROM instance WHERE sop_uid = ?", sop_uid)
    return server.data / "storage" / key


def dcmpschk(path: Path) -> str:
    result = subprocess.run([dcmtk("dcmpschk"), str(path)], capture_output=True, text=True, timeout=60)
    out = result.stdout + result.stderr
    assert result.returncode == 0 and "Test passed." in out and "Test failed" not in out and "E:" not in out, out
    return out


@pytest.fixture(scope="module")
def saved(server, viewer, study) -> str:
    """The measurements saved by a viewer account."""
    answer = post(viewer, study["series"], measurements(study["slices"]))
    assert answer.status_code == 200, answer.text
    return answer.json()["sop_uid"]


def test_saved_state_is_a_gsps_attribute_by_attribute(server, study, saved):
    path = stored(server, saved)
    dcmpschk(path)
    ds = pydicom.dcmread(path)
    slices = study["slices"]
    assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.11.1"
    assert ds.SOPInstanceUID == saved and ds.SOPInstanceUID.startswith("2.25.")
    assert ds.Modality == "PR" and ds.SeriesInstanceUID not in (study["series"], study["rgb_series"])
    # Identity copied from the images, the study kept
    assert ds.StudyInstanceUID == study["study"]
    assert (str(ds.PatientName), ds.PatientID, ds.PatientBirthDate, ds.PatientSex) == (
        "Rex^Dog",
        "VET-7",
        "19800101",
        "F",
    )
    assert (ds.PatientSpeciesDescription, str(ds.ResponsiblePerson)) == ("Canine", "Owner^Olga")
    assert (ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.StudyID, ds.StudyDescription) == (
        "20261123", "101500", "ACC1", "1", "Stifle")  # fmt: skip
    # Presentation State Identification
    assert ds.ContentLabel == "STIFLE TPLO" and ds.ContentDescription == "Tibial plateau angle, Ünit test"
    assert str(ds.ContentCreatorName) == VIEWER
    assert len(ds.PresentationCreationDate) == 8 and len(ds.PresentationCreationTime) >= 6
    # Presentation State Relationship: the two slices (frame 1 of a single-frame image: no frame numbers)
    (series,) = ds.ReferencedSeriesSequence
    assert series.SeriesInstanceUID == study["series"]
    refs = series.ReferencedImageSequence
    assert [r.ReferencedSOPInstanceUID for r in refs] == slices[:2]
    assert {r.ReferencedSOPClassUID for r in refs} == {"1.2.840.10008.5.1.4.1.1.7"}
    assert "ReferencedFrameNumber" not in refs[0] and "ReferencedFrameNumber" not in refs[1]  # single-frame images
    # The grayscale pipeline: the images' rescale (a CT window is in HU), the window, identity
    assert (float(ds.RescaleSlope), float(ds.RescaleIntercept), ds.RescaleType) == (1.0, -1024.0, "HU")
    (voi,) = ds.SoftcopyVOILUTSequence
    assert (float(voi.WindowCenter), float(voi.WindowWidth)) == (300.0, 1500.0) and "ReferencedImageSequence" not in voi
    assert ds.PresentationLUTShape == "IDENTITY"
    # Displayed Area: the zoom on slice 1; slice 2 gets its whole image
    zoom, whole = ds.DisplayedAreaSelectionSequence
    assert [r.ReferencedSOPInstanceUID for r in zoom.ReferencedImageSequence] == [slices[0]]
    assert (list(zoom.DisplayedAreaTopLeftHandCorner), list(zoom.DisplayedAreaBottomRightHandCorner)) == (
        [3, 2],
        [12, 11],
    )
    assert (zoom.PresentationSizeMode, float(zoom.PresentationPixelMagnificationRatio)) == ("MAGNIFY", 2.5)
    assert list(zoom.PresentationPixelAspectRatio) == [1, 1]
    assert [r.ReferencedSOPInstanceUID for r in whole.ReferencedImageSequence] == [slices[1]]
    assert (list(whole.DisplayedAreaTopLeftHandCorner), list(whole.DisplayedAreaBottomRightHandCorner)) == (
        [1, 1],
        [16, 16],
    )
    assert whole.PresentationSizeMode == "SCALE TO FIT"
    # Spatial Transformation
    assert (ds.ImageRotation, ds.ImageHorizontalFlip) == (90, "Y")
    # Graphic Layer and Graphic Annotation
    assert [(layer.GraphicLayer, layer.GraphicLayerOrder) for layer in ds.GraphicLayerSequence] == [
        ("MEASUREMENTS", 1),
        ("TEXT", 2),
    ]
    assert ds.GraphicLayerSequence[0].GraphicLayerDescription == "lengths and angles"
    shapes, texts = ds.GraphicAnnotationSequence
    assert shapes.GraphicLayer == "MEASUREMENTS" and "TextObjectSequence" not in shapes
    assert [r.ReferencedSOPInstanceUID for r in shapes.ReferencedImageSequence] == [slices[0]]
    objects = shapes.GraphicObjectSequence
    assert [o.GraphicType for o in objects] == ["POLYLINE", "POLYLINE", "ELLIPSE", "CIRCLE", "POINT"]
    assert {o.GraphicAnnotationUnits for o in objects} == {"PIXEL"} and {o.GraphicDimensions for o in objects} == {2}
    assert [o.NumberOfGraphicPoints for o in objects] == [2, 3, 4, 2, 1]
    assert [float(v) for v in objects[0].GraphicData] == [1.5, 2.25, 10, 12]
    assert [float(v) for v in objects[2].GraphicData] == [2, 8, 14, 8, 8, 5, 8, 11]
    assert (objects[2].GraphicFilled, objects[3].GraphicFilled) == ("N", "Y")
    assert "GraphicFilled" not in objects[0] and "GraphicFilled" not in objects[4]  # open lines and points
    assert (
        texts.GraphicLayer == "TEXT" and "ReferencedImageSequence" not in texts and "GraphicObjectSequence" not in texts
    )
    anchored, boxed = texts.TextObjectSequence
    assert (anchored.UnformattedTextValue, list(anchored.AnchorPoint), anchored.AnchorPointVisibility) == (
        "TPA 24.5°", [8.0, 8.0], "Y")  # fmt: skip
    assert anchored.AnchorPointAnnotationUnits == "PIXEL" and "BoundingBoxTopLeftHandCorner" not in anchored
    assert (boxed.UnformattedTextValue, list(boxed.BoundingBoxTopLeftHandCorner), list(boxed.BoundingBoxBottomRightHandCorner)) == (
        "L 12.3 mm", [1.0, 1.0], [9.0, 3.0])  # fmt: skip
    assert boxed.BoundingBoxAnnotationUnits == "PIXEL" and "AnchorPoint" not in boxed
    assert ds.Manufacturer == "Lightbox" and ds.SpecificCharacterSet == "ISO_IR 100"  # all Latin-1


def test_saved_state_reopens_in_the_shape_it_was_sent(viewer, study, saved):
    answer = viewer.get(f"/api/presentation-states/{saved}")
    assert answer.status_code == 200, answer.text
    got = answer.json()
    sent = measurements(study["slices"])
    assert (got["sop_uid"], got["label"], got["description"], got["creator"]) == (
        saved, "STIFLE TPLO", sent["description"], VIEWER)  # fmt: skip
    assert (got["study_uid"], got["color"], got["presentation_lut_shape"]) == (study["study"], False, "IDENTITY")
    assert [(i["series_uid"], i["sop_uid"], i["frames"]) for i in got["images"]] == [
        (study["series"], study["slices"][0], []), (study["series"], study["slices"][1], [])]  # fmt: skip
    assert got["voi"] == [{"center": 300.0, "width": 1500.0, "images": []}]
    assert got["displayed_areas"][0] == {"top_left": [3, 2], "bottom_right": [12, 11], "size_mode": "MAGNIFY",
                                         "magnification": 2.5, "pixel_spacing": None, "aspect_ratio": [1, 1],
                                         "images": [study["slices"][0]]}  # fmt: skip
    assert (got["rotation"], got["flip"]) == (90, True)
    assert got["layers"] == [{"name": "MEASUREMENTS", "order": 1, "description": "lengths and angles"},
                             {"name": "TEXT", "order": 2, "description": ""}]  # fmt: skip
    for back, original in zip(got["annotations"], sent["annotations"], strict=True):
        assert back["layer"] == original["layer"] and back["images"] == original.get("images", [])
        assert [(g["type"], g["points"]) for g in back["graphics"]] == [
            (g["type"], [[float(v) for v in p] for p in g["points"]]) for g in original.get("graphics", [])]  # fmt: skip
        assert [(t["text"], t["anchor"], t["box"]) for t in back["texts"]] == [
            (t["text"], t.get("anchor"), t.get("box")) for t in original.get("texts", [])]  # fmt: skip
    assert got["truncated"] is False
    again = post(viewer, study["series"], got)  # reopened and saved again, read-only keys and all
    assert again.status_code == 200, again.text
    assert viewer.get(f"/api/presentation-states/{again.json()['sop_uid']}").json()["annotations"] == got["annotations"]


def test_state_made_by_dcmpsmk_is_listed_and_read(admin, study, saved):
    listed = admin.get(f"/api/series/{study['series']}/presentation-states")
    assert listed.status_code == 200, listed.text
    states = listed.json()["presentation_states"]
    ours = [s for s in states if s["creator"] == VIEWER]
    theirs = [s for s in states if s["sop_uid"] == study["dcmpsmk"]]
    assert ours and ours[-1]["sop_uid"] == saved and theirs  # ours: the first save, and its reopened copy
    assert states[-1]["sop_uid"] == study["dcmpsmk"]  # made first: the oldest, listed last
    assert [(s["creation_date"], s["creation_time"]) for s in states] == sorted(
        ((s["creation_date"], s["creation_time"]) for s in states), reverse=True)  # fmt: skip
    assert ours[-1]["label"] == "STIFLE TPLO" and theirs[0]["label"] == "UNNAMED"
    got = admin.get(f"/api/presentation-states/{study['dcmpsmk']}").json()
    slices = study["slices"]
    assert [i["sop_uid"] for i in got["images"]] == slices[:2]
    assert got["voi"] == [{"center": 40.0, "width": 400.0, "images": [slices[0]]}]  # dcmpsmk: the first image's
    assert [(a["top_left"], a["bottom_right"], a["size_mode"], a["images"]) for a in got["displayed_areas"]] == [
        ([1, 1], [16, 16], "SCALE TO FIT", [slices[0]]), ([1, 1], [16, 16], "SCALE TO FIT", [slices[1]])]  # fmt: skip
    assert (got["rotation"], got["flip"], got["presentation_lut_shape"], got["color"]) == (0, False, "IDENTITY", False)
    assert got["annotations"] == [] and got["study_uid"] == study["study"]
    assert admin.get(f"/api/series/{study['rgb_series']}/presentation-states").json() == {"presentation_states": []}


def test_color_images_get_a_color_softcopy_presentation_state(server, admin, study):
    body = {"label": "colour", "description": "Fußnote", "layers": [{"name": "A", "order": 1}],
            "annotations": [{"layer": "A", "graphics": [{"type": "POLYLINE", "points": [[0, 0], [8, 8]]}]}]}  # fmt: skip
    answer = post(admin, study["rgb_series"], body)
    assert answer.status_code == 200, answer.text
    path = stored(server, answer.json()["sop_uid"])
    dcmpschk(path)
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.11.2" and ds.ColorSpace == "SRGB"
    assert (ds.SpecificCharacterSet, ds.ContentDescription) == ("ISO_IR 100", "Fußnote")
    profile = ImageCms.ImageCmsProfile(io.BytesIO(ds.ICCProfile))  # read by littleCMS, through Pillow
    assert ds.ICCProfile[36:40] == b"acsp" and "sRGB" in ImageCms.getProfileDescription(profile)
    assert profile.profile.xcolor_space.strip() == "RGB"
    assert not {"SoftcopyVOILUTSequence", "PresentationLUTShape", "RescaleSlope"} & set(ds.dir())
    assert str(ds.ContentCreatorName) == "admin"
    assert admin.get(f"/api/presentation-states/{ds.SOPInstanceUID}").json()["color"] is True
    refused = post(admin, study["rgb_series"], {"voi": [{"center": 1, "width": 2}]})
    assert refused.status_code == 400 and "colour" in refused.json()["error"]


def test_text_beyond_latin1_is_utf8(server, admin, study):
    """Not checked by dcmpschk: DCMTK 3.6.7's checker reads UTF-8's continuation bytes as C1 controls."""
    body = {"description": "Ελληνικά", "layers": [{"name": "A", "order": 1}],
            "annotations": [{"layer": "A", "texts": [{"text": "肝 12 mm", "anchor": [2, 2]}]}]}  # fmt: skip
    answer = post(admin, study["series"], body)
    assert answer.status_code == 200, answer.text
    ds = pydicom.dcmread(stored(server, answer.json()["sop_uid"]))
    assert (ds.SpecificCharacterSet, ds.ContentDescription) == ("ISO_IR 192", "Ελληνικά")
    assert ds.GraphicAnnotationSequence[0].TextObjectSequence[0].UnformattedTextValue == "肝 12 mm"
    assert str(ds.PatientName) == "Rex^Dog"
    got = admin.get(f"/api/presentation-states/{ds.SOPInstanceUID}").json()
    assert (got["description"], got["annotations"][0]["texts"][0]["text"]) == ("Ελληνικά", "肝 12 mm")


too_many_points = {"layers": [{"name": "A", "order": 1}],
                   "annotations": [{"layer": "A", "graphics": [{"type": "POLYLINE", "points": [[1, 1]] * 1000}] * 17}]}  # fmt: skip


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[" * 100_000, "not JSON"),  # nesting deeper than Python's stack
        ([1, 2], "must be a JSON object"),
        ({"label": "ok", "colour": "red"}, "unknown key 'colour'"),
        ({"label": 7}, "label: 1 to 16 letters"),
        ({"label": "much too long a label"}, "label: 1 to 16 letters"),
        ({"description": "two\nlines"}, "description: holds characters"),
        ({"voi": [{"center": "40", "width": 400}]}, "voi[0].center: must be a finite number"),
        (b'{"voi": [{"center": NaN, "width": 400}]}', "voi[0].center: must be a finite number"),
        ({"voi": [{"center": 40, "width": 1e300}]}, "voi[0].width: out of range"),
        ({"rotation": 45}, "rotation: must be 0, 90, 180 or 270"),
        ({"flip": "yes"}, "flip: must be true or false"),
        ({"images": [{"sop_uid": "1.2.3.4"}]}, "1.2.3.4 is no image of this series"),
        ({"images": [{"sop_uid": "'; DROP TABLE"}]}, "images[0].sop_uid: must be a UID"),
        ({"layers": [{"name": "A", "order": 1}], "annotations": [{"layer": "B", "texts": [{"text": "x", "anchor": [1, 1]}]}]},
         "no layer named 'B'"),
        ({"layers": [{"name": "A", "order": 1}], "annotations": [{"layer": "A", "graphics": [{"type": "CIRCLE", "points": [[1, 1]]}]}]},
         "a CIRCLE has 2 points"),
        ({"layers": [{"name": "A", "order": 1}], "annotations": [{"layer": "A", "graphics": [{"type": "SPLINE", "points": [[1, 1]]}]}]},
         "graphics[0].type: one of"),
        ({"layers": [{"name": "A", "order": 1}], "annotations": [{"layer": "A", "texts": [{"text": "x" * 1025, "anchor": [1, 1]}]}]},
         "text: at most 1024 characters"),
        ({"layers": [{"name": "A", "order": 1}], "annotations": [{"layer": "A", "texts": [{"text": "floating"}]}]},
         "an anchor, a box or both"),
        (too_many_points, "more than 16384 points in all"),
        ({"layers": [{"name": str(n), "order": n} for n in range(33)]}, "layers: at most 32 items"),
    ],
)  # fmt: skip
def test_bad_descriptions_are_refused_with_a_reason(server, admin, study, body, reason):
    answer = post(admin, study["series"], body)
    assert answer.status_code == 400, answer.text
    assert reason in answer.json()["error"]
    assert "presentation_state_refused" in server.log()


def test_frames_of_a_multiframe_image(server, admin, study, tmp_path):
    cine = make_dataset(study_uid=study["study"], patient_name="Rex^Dog", patient_id="VET-7", NumberOfFrames=3)
    cine.PixelData = np.zeros((3, 16, 16), np.uint16).tobytes()
    assert server.storescu(write(cine, tmp_path / "cine.dcm")).returncode == 0
    series, sop = str(cine.SeriesInstanceUID), str(cine.SOPInstanceUID)
    answer = post(admin, series, {"images": [{"sop_uid": sop, "frames": [2, 3]}]})
    assert answer.status_code == 200, answer.text
    path = stored(server, answer.json()["sop_uid"])
    dcmpschk(path)
    (ref,) = pydicom.dcmread(path).ReferencedSeriesSequence[0].ReferencedImageSequence
    assert (ref.ReferencedSOPInstanceUID, list(ref.ReferencedFrameNumber)) == (sop, [2, 3])
    assert admin.get(f"/api/presentation-states/{answer.json()['sop_uid']}").json()["images"][0]["frames"] == [2, 3]
    beyond = post(admin, series, {"images": [{"sop_uid": sop, "frames": [4]}]})
    assert beyond.status_code == 400 and "has 3 frame(s)" in beyond.json()["error"]

    # An annotation drawn on one frame: its own Referenced Image Sequence names that frame.
    line = {"type": "POLYLINE", "points": [[1, 1], [9, 9]]}
    on = lambda frames, refs=None: {  # noqa: E731
        "images": refs or [{"sop_uid": sop}], "layers": [{"name": "LENGTH", "order": 1}],
        "annotations": [{"layer": "LENGTH", "images": [sop], "frames": frames, "graphics": [line]}],
    }  # fmt: skip
    answer = post(admin, series, on([3]))
    assert answer.status_code == 200, answer.text
    path = stored(server, answer.json()["sop_uid"])
    dcmpschk(path)
    ds = pydicom.dcmread(path)
    assert "ReferencedFrameNumber" not in ds.ReferencedSeriesSequence[0].ReferencedImageSequence[0]  # all frames
    (ref,) = ds.GraphicAnnotationSequence[0].ReferencedImageSequence
    assert (ref.ReferencedSOPInstanceUID, ref.ReferencedFrameNumber) == (sop, 3)
    assert admin.get(f"/api/presentation-states/{answer.json()['sop_uid']}").json()["annotations"][0]["frames"] == [3]
    for body, reason in [(on([4]), "has 3 frame(s)"), (on([1], [{"sop_uid": sop, "frames": [2, 3]}]), "does not reference"),
                         ({**on([1]), "annotations": [{"layer": "LENGTH", "frames": [1], "graphics": [line]}]}, "name them")]:  # fmt: skip
        refused = post(admin, series, body)
        assert refused.status_code == 400 and reason in refused.json()["error"], refused.text


def test_frames_unknown_series_and_content_type(admin, study):
    too_far = post(admin, study["series"], {"images": [{"sop_uid": study["slices"][0], "frames": [2]}]})
    assert too_far.status_code == 400 and "has 1 frame(s)" in too_far.json()["error"]
    unknown = post(admin, "1.2.3.999", {})
    assert unknown.status_code == 404 and unknown.json() == {"error": "no such series"}
    assert admin.get("/api/series/1.2.3.999/presentation-states").status_code == 404
    assert admin.get(f"/api/presentation-states/{study['slices'][0]}").status_code == 404  # an image, not a state
    form = admin.request("POST", f"/api/series/{study['series']}/presentation-states", data={"label": "x"},
                         headers={"X-CSRF-Token": admin.csrf()})  # fmt: skip
    assert form.status_code == 400 and "application/json" in form.json()["error"]
    huge = post(admin, study["series"], b"{" + b" " * (2 << 20) + b"}")
    assert huge.status_code == 413


def test_who_may_save_and_read(admin, viewer, study, saved):
    anonymous = Client(admin.base)
    assert post(anonymous, study["series"], {}, csrf=False).status_code == 401
    assert anonymous.get(f"/api/series/{study['series']}/presentation-states").status_code == 401
    assert anonymous.get(f"/api/presentation-states/{saved}").status_code == 401
    assert post(viewer, study["series"], {}, csrf=False).status_code == 403  # a session needs its CSRF token
    evil = {"Content-Type": "application/json", "X-CSRF-Token": viewer.csrf(), "Origin": "http://evil.example"}
    assert post(viewer, study["series"], {}, headers=evil).status_code == 403
    assert viewer.get(f"/api/series/{study['series']}/presentation-states").status_code == 200
    events = admin.get("/api/audit", params={"user": VIEWER}).json()["events"]
    created = [e for e in events if e["detail"] == "presentation state STIFLE TPLO saved"]
    assert created and created[-1]["study_uid"] == study["study"] and created[-1]["action"] == "C"


def test_the_study_counts_the_state_in_a_series_of_its_own(server, admin, study, saved, tmp_path):
    detail = admin.get(f"/api/studies/{study['study']}").json()
    ps_series = pydicom.dcmread(stored(server, saved), stop_before_pixels=True).SeriesInstanceUID
    (shown,) = [s for s in detail["series"] if s["series_uid"] == ps_series]
    assert (shown["modality"], shown["kind"]) == ("PR", "other")
    states = rows(server.data, "SELECT COUNT(*) FROM instance i JOIN series s ON i.series_id = s.id "
                               "WHERE s.series_uid = ?", ps_series)[0][0]  # fmt: skip
    assert states >= 2  # every state Lightbox saves for this study: one series
    (found,) = findscu(server, tmp_path, "-S", "QueryRetrieveLevel=SERIES", f"StudyInstanceUID={study['study']}",
                       f"SeriesInstanceUID={ps_series}", "Modality", "NumberOfSeriesRelatedInstances")  # fmt: skip
    assert (found.Modality, int(found.NumberOfSeriesRelatedInstances)) == ("PR", states)
