"""Orthanc's DICOMweb plugin (orthanc-dicomweb) as a client of Lightbox: Orthanc knows Lightbox's
/dicom-web/ as a DICOMweb server (HTTP Basic, a viewer account), searches it through its plugin
(`/dicom-web/servers/lightbox/qido` and `/get`) and retrieves a study (`.../retrieve`); the study
that arrives in Orthanc has the UIDs and pixel bytes of the files storescu sent to Lightbox:
uncompressed single- and multi-frame, JPEG 2000 and a JPEG multi-frame as stored."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from support.dicomgen import write
from support.imagegen import corpus_file, gradient_image
from support.netns import private_network
from support.peers import ORTHANC_DICOMWEB, Orthanc
from support.tools import require
from support.web import VIEWER, VIEWER_PASSWORD, add_user, base_url, first_admin

pytestmark = pytest.mark.slow  # Orthanc

PATIENT = {"PatientID": "DWCLIENT-1", "PatientName": "Client^Orthanc"}
# name -> (pydicom test file or None for a generated one, storescu's option proposing its syntax)
SENT = {
    "ct": ("CT_small.dcm", ()),  # explicit VR little endian
    "j2k": ("MR_small_jp2klossless.dcm", ("-xv",)),  # JPEG 2000 lossless, kept compressed
    "ybr": ("examples_ybr_color.dcm", ("-xy",)),  # 30 JPEG baseline frames
    "frames": (None, ()),  # 10 native frames
}


def one_study(folder: Path) -> dict[str, pydicom.Dataset]:
    """The files of SENT rewritten into one study (a series each, one patient), as storescu sends them."""
    study = generate_uid()
    made = {}
    for name, (source, _) in SENT.items():
        ds = pydicom.dcmread(corpus_file(source)) if source else gradient_image(frames=10)
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, generate_uid(), generate_uid()
        for keyword, value in PATIENT.items():
            setattr(ds, keyword, value)
        if source:
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            for tag in [e.tag for e in ds if e.tag.element == 0 or e.tag == 0xFFFCFFFC]:
                del ds[tag]  # group lengths and trailing padding, which storescu drops
            if ds.file_meta.TransferSyntaxUID.is_encapsulated:
                ds["PixelData"].VR = "OB"  # pydicom's files say OW, which DCMTK refuses to send
            ds.save_as(folder / source)
        else:
            write(ds, folder / "frames.dcm")
        made[name] = pydicom.dcmread(folder / (source or "frames.dcm"))
    return made


def test_orthanc_dicomweb_client_retrieves_a_study_whole(tmp_path, lightbox_factory):
    plugin = require(ORTHANC_DICOMWEB)
    folder = tmp_path / "sent"
    folder.mkdir()
    sent = one_study(folder)
    study = sent["ct"].StudyInstanceUID
    with private_network():
        lightbox = lightbox_factory(dicom_workers=0)
        add_user(first_admin(lightbox), VIEWER, VIEWER_PASSWORD)
        for source, option in SENT.values():
            done = lightbox.storescu(folder / (source or "frames.dcm"), extra=option)
            assert done.returncode == 0 and "(Success)" in done.stderr, done.stderr
        servers = {"lightbox": {"Url": base_url(lightbox) + "/dicom-web/", "Username": VIEWER,
                                "Password": VIEWER_PASSWORD}}  # fmt: skip
        orthanc = Orthanc(tmp_path / "orthanc", {}, Plugins=[str(plugin)],
                          DicomWeb={"Enable": True, "Root": "/dicom-web/", "Servers": servers})  # fmt: skip
        try:
            found = orthanc.rest("POST", "/dicom-web/servers/lightbox/qido",
                                 {"Uri": "/studies", "Arguments": {"PatientID": PATIENT["PatientID"]}})  # fmt: skip
            # The plugin's /qido simplifies each tag to {"Name", "vr", "Value"}: the first value, if a string.
            assert [(s["0020000D"]["Value"], s["00100020"]["Value"]) for s in found] == [(study, PATIENT["PatientID"])]
            # /get relays Lightbox's own DICOM JSON.
            studies = orthanc.rest(
                "POST", "/dicom-web/servers/lightbox/get", {"Uri": "/studies", "Arguments": {"StudyInstanceUID": study}}
            )
            assert [s["00201208"]["Value"] for s in studies] == [[len(SENT)]]  # NumberOfStudyRelatedInstances
            series = orthanc.rest("POST", "/dicom-web/servers/lightbox/get", {"Uri": f"/studies/{study}/series"})
            assert sorted(s["0020000E"]["Value"][0] for s in series) == sorted(
                d.SeriesInstanceUID for d in sent.values()
            )

            orthanc.rest("POST", "/dicom-web/servers/lightbox/retrieve", {"Resources": [{"Study": study}]})
            received = orthanc.save_instances(tmp_path / "received")
            got = {d.SOPInstanceUID: d for d in map(pydicom.dcmread, received)}
        finally:
            orthanc.stop()
    assert sorted(got) == sorted(d.SOPInstanceUID for d in sent.values())
    for name, ds in sent.items():
        arrived = got[ds.SOPInstanceUID]
        assert (arrived.StudyInstanceUID, arrived.SeriesInstanceUID) == (study, ds.SeriesInstanceUID), name
        assert arrived.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID, name  # as stored
        assert arrived.PixelData == ds.PixelData, name
        assert arrived.get("NumberOfFrames", 1) == ds.get("NumberOfFrames", 1), name
