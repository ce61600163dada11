"""What every attached instance says: the study's identity, a new series of its own, when and
by whom it was made.  One series per attached file: each file is one document or picture that
the study page lists under its own description (its name or title), and a web upload is one
request per file, so no state has to be kept between requests to group them."""

from __future__ import annotations

from datetime import datetime

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from appliance.archive import Archive
from appliance.made.identity import copy_identity, of_study, text_charset

MANUFACTURER = "Lightbox"
DESCRIPTION_CHARS = 64  # Series Description is LO


def new_instance(archive: Archive, study_uid: str, sop_class: str, modality: str, description: str) -> Dataset:
    """An instance of ``study_uid`` in a new series: identity, series, equipment and SOP common
    attributes (LookupError for a study with no readable instance).  The caller adds the rest
    and then calls ``finish``."""
    ds = Dataset()
    copy_identity(of_study(archive, study_uid), ds)
    now = datetime.now()
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, generate_uid()
    ds.Modality, ds.SeriesInstanceUID = modality, generate_uid()
    detail = archive.study_detail(study_uid)
    ds.SeriesNumber = len(detail.series) + 1 if detail else 1
    ds.SeriesDescription = description[:DESCRIPTION_CHARS]
    ds.SeriesDate = ds.ContentDate = ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.SeriesTime = ds.ContentTime = ds.InstanceCreationTime = now.strftime("%H%M%S")
    ds.InstanceNumber = 1
    ds.Manufacturer = MANUFACTURER
    return ds


def finish(ds: Dataset) -> Dataset:
    """The character set that the now complete dataset's text needs."""
    ds.SpecificCharacterSet = text_charset(ds)
    return ds


def title_of(filename: str, fallback: str) -> str:
    """A file's name without its folder and extension, as a title ("Referral letter.pdf")."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    stem = name.rsplit(".", 1)[0] if "." in name else name
    clean = "".join(c if c.isprintable() else " " for c in stem).strip()
    return clean[:DESCRIPTION_CHARS] or fallback
