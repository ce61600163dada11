"""A Grayscale or Color Softcopy Presentation State dataset (PS3.3 A.33.1, A.33.2).

Made from a checked ``Description`` and what the referenced images say about themselves
(``Source``): identity (patient and study attributes copied from the first image), size,
photometric interpretation and Modality LUT.  Grayscale images get a GSPS with the images'
Modality LUT (a presentation state's replaces the image's: without it a CT window would
apply to stored values), VOI and Presentation LUT; colour images a Color Softcopy
Presentation State, which has no grayscale pipeline and carries an ICC profile (sRGB).
"""

from __future__ import annotations

import copy
import functools
import uuid
from dataclasses import dataclass
from datetime import datetime

from PIL import ImageCms
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from appliance import __version__
from appliance.made.identity import IDENTITY, copy_identity, text_charset
from appliance.presentation.description import (
    Annotation,
    Area,
    Description,
    DescriptionError,
    Graphic,
    ImageRef,
    Text,
)

GRAYSCALE = "1.2.840.10008.5.1.4.1.1.11.1"
COLOR = "1.2.840.10008.5.1.4.1.1.11.2"
PRESENTATION_STATES = "1.2.840.10008.5.1.4.1.1.11."  # every presentation state storage class
SERIES_NUMBER = 9000
SERIES_DESCRIPTION = "Presentation states"
_SERIES_NAMESPACE = uuid.UUID("5f7d3b5e-6a43-4a8e-9c53-0d1c1c0f8a11")  # Lightbox's, for presentation state series
_GRAYSCALE_PHOTOMETRIC = ("MONOCHROME1", "MONOCHROME2")
SOURCE_TAGS = [*IDENTITY, "SpecificCharacterSet", "Modality", "PhotometricInterpretation", "RescaleSlope",
               "RescaleIntercept", "RescaleType", "ModalityLUTSequence"]  # fmt: skip


@dataclass(frozen=True)
class Image:
    """A referenced image as the archive knows it."""

    sop_uid: str
    sop_class: str
    frames: int
    rows: int
    columns: int


@dataclass(frozen=True)
class Source:
    series_uid: str
    images: list[Image]  # every image the state references, in the series' order
    first: Dataset  # the first image's header: SOURCE_TAGS
    modality_luts: set[tuple[float, float, str]]  # (slope, intercept, type) of each image; (1, 0, "") for none


def series_uid_for(study_uid: str) -> str:
    """The series Lightbox puts every presentation state of a study in (one per study: the study
    page shows one row of them, not one per save)."""
    return "2.25." + str(uuid.uuid5(_SERIES_NAMESPACE, study_uid).int)


def make(description: Description, source: Source, creator: str, instance_number: int, now: datetime) -> Dataset:
    first = source.first
    photometric = str(first.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    color = photometric not in _GRAYSCALE_PHOTOMETRIC
    ds = Dataset()
    ds.SOPClassUID = COLOR if color else GRAYSCALE
    ds.SOPInstanceUID = "2.25." + str(uuid.uuid4().int)
    ds.InstanceCreationDate = ds.PresentationCreationDate = now.strftime("%Y%m%d")
    # With microseconds: two saves in one second are still listed in order.
    ds.InstanceCreationTime = ds.PresentationCreationTime = now.strftime("%H%M%S.%f")
    copy_identity(first, ds)
    ds.Modality = "PR"
    ds.SeriesInstanceUID = series_uid_for(str(first.StudyInstanceUID))
    ds.SeriesNumber = SERIES_NUMBER
    ds.SeriesDescription = SERIES_DESCRIPTION
    ds.Manufacturer = "Lightbox"
    ds.SoftwareVersions = __version__
    ds.InstanceNumber = instance_number
    ds.ContentLabel = description.label
    ds.ContentDescription = description.description
    ds.ContentCreatorName = creator.replace("\\", "/")
    refs = _references(description, source)
    ds.ReferencedSeriesSequence = [
        _item(SeriesInstanceUID=source.series_uid, ReferencedImageSequence=list(refs.values()))
    ]
    if color:
        if description.voi:
            raise DescriptionError("voi: colour images have no window (a Color Softcopy Presentation State)")
        ds.ICCProfile = srgb_profile()
        ds.ColorSpace = "SRGB"
    else:
        _grayscale(ds, description, source, refs, photometric)
    ds.DisplayedAreaSelectionSequence = _displayed_areas(description.displayed_areas, source, refs)
    if description.rotation or description.flip:
        ds.ImageRotation = description.rotation
        ds.ImageHorizontalFlip = "Y" if description.flip else "N"
    if description.layers:
        ds.GraphicLayerSequence = [
            _item(GraphicLayer=layer.name, GraphicLayerOrder=layer.order,
                  **({"GraphicLayerDescription": layer.description} if layer.description else {}))
            for layer in description.layers
        ]  # fmt: skip
    if description.annotations:
        frames = {image.sop_uid: image.frames for image in source.images}
        ds.GraphicAnnotationSequence = [_annotation(a, refs, frames) for a in description.annotations]
    ds.SpecificCharacterSet = text_charset(ds)
    return ds


@functools.cache
def srgb_profile() -> bytes:
    """An sRGB ICC profile (littleCMS's, through Pillow): colour images that say none are sRGB."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _grayscale(
    ds: Dataset, description: Description, source: Source, refs: dict[str, Dataset], photometric: str
) -> None:
    if len(source.modality_luts) > 1:
        raise DescriptionError("images: their rescale slopes or intercepts differ; save a state per image")
    slope, intercept, kind = next(iter(source.modality_luts))
    if "ModalityLUTSequence" in source.first:
        ds.ModalityLUTSequence = copy.deepcopy(source.first.ModalityLUTSequence)
    elif (slope, intercept) != (1.0, 0.0):
        ds.RescaleSlope, ds.RescaleIntercept = _ds(slope), _ds(intercept)
        ds.RescaleType = kind or ("HU" if str(source.first.get("Modality", "")) == "CT" else "US")
    if description.voi:
        ds.SoftcopyVOILUTSequence = [
            _item(WindowCenter=_ds(w.center), WindowWidth=_ds(w.width), **_images(w.images, refs)) for w in description.voi
        ]  # fmt: skip
    ds.PresentationLUTShape = "INVERSE" if photometric == "MONOCHROME1" else "IDENTITY"


def _references(description: Description, source: Source) -> dict[str, Dataset]:
    """Referenced Image Sequence items by SOP Instance UID, in the series' order."""
    wanted: dict[str, ImageRef] = {ref.sop_uid: ref for ref in description.images}
    refs: dict[str, Dataset] = {}
    for image in source.images:
        ref = wanted.get(image.sop_uid)
        if wanted and ref is None:
            continue
        item = _item(ReferencedSOPClassUID=image.sop_class, ReferencedSOPInstanceUID=image.sop_uid)
        if ref is not None and ref.frames:
            if max(ref.frames) > image.frames:
                raise DescriptionError(f"images: {image.sop_uid} has {image.frames} frame(s)")
            if image.frames > 1:  # a single-frame image is referenced without frame numbers (PS3.3 C.11.11)
                item.ReferencedFrameNumber = list(ref.frames)
        refs[image.sop_uid] = item
    return refs


def _images(uids: tuple[str, ...], refs: dict[str, Dataset]) -> dict[str, list[Dataset]]:
    """The Referenced Image Sequence of an item that applies to some images only ({} for all)."""
    unknown = [uid for uid in uids if uid not in refs]
    if unknown:
        raise DescriptionError(f"images: {unknown[0]} is not one of the referenced images")
    return {"ReferencedImageSequence": [copy.deepcopy(refs[uid]) for uid in uids]} if uids else {}


def _displayed_areas(areas: tuple[Area, ...], source: Source, refs: dict[str, Dataset]) -> list[Dataset]:
    """The items asked for, then the whole image for every referenced image none covers (the
    module is mandatory: each image needs one), one item per image size."""
    items = [_area(area, _images(area.images, refs)) for area in areas]
    covered = set(refs) if any(not area.images for area in areas) else {u for area in areas for u in area.images}
    by_size: dict[tuple[int, int], list[str]] = {}
    for image in source.images:
        if image.sop_uid in refs and image.sop_uid not in covered:
            by_size.setdefault((image.columns, image.rows), []).append(image.sop_uid)
    for (columns, rows), uids in by_size.items():
        everything = not covered and len(by_size) == 1
        items.append(_area(Area((1, 1), (columns, rows)), {} if everything else _images(tuple(uids), refs)))
    return items


def _area(area: Area, images: dict[str, list[Dataset]]) -> Dataset:
    item = _item(**images, DisplayedAreaTopLeftHandCorner=list(area.top_left),
                 DisplayedAreaBottomRightHandCorner=list(area.bottom_right), PresentationSizeMode=area.size_mode)  # fmt: skip
    if area.pixel_spacing is not None:
        item.PresentationPixelSpacing = [_ds(v) for v in area.pixel_spacing]
    else:  # one of the two is required
        item.PresentationPixelAspectRatio = list(area.aspect_ratio)
    if area.size_mode == "MAGNIFY":
        item.PresentationPixelMagnificationRatio = area.magnification
    return item


def _annotation(annotation: Annotation, refs: dict[str, Dataset], frames: dict[str, int]) -> Dataset:
    item = _item(**_images(annotation.images, refs), GraphicLayer=annotation.layer)
    if annotation.frames:  # drawn on some frames of a multi-frame image (PS3.3 C.10.5.1.1)
        for ref in item.ReferencedImageSequence:
            uid = str(ref.ReferencedSOPInstanceUID)
            if max(annotation.frames) > frames[uid]:
                raise DescriptionError(f"annotations: {uid} has {frames[uid]} frame(s)")
            shown = ref.get("ReferencedFrameNumber")
            shown = {int(f) for f in (shown if isinstance(shown, MultiValue | list) else [shown] if shown else [])}
            if shown and not set(annotation.frames) <= shown:
                raise DescriptionError(f"annotations: frames of {uid} the state does not reference")
            if frames[uid] > 1:
                ref.ReferencedFrameNumber = list(annotation.frames)
    if annotation.texts:
        item.TextObjectSequence = [_text(text) for text in annotation.texts]
    if annotation.graphics:
        item.GraphicObjectSequence = [
            _item(GraphicAnnotationUnits=g.units, GraphicDimensions=2, NumberOfGraphicPoints=len(g.points),
                  GraphicData=[v for point in g.points for v in point], GraphicType=g.type,
                  **({"GraphicFilled": "Y" if g.filled else "N"} if _closed(g) else {}))
            for g in annotation.graphics
        ]  # fmt: skip
    return item


def _closed(graphic: Graphic) -> bool:
    """Graphic Filled is for closed shapes only: circles, ellipses, polylines back at their start."""
    return graphic.type in ("CIRCLE", "ELLIPSE") or (
        graphic.type != "POINT" and graphic.points[0] == graphic.points[-1]
    )


def _text(text: Text) -> Dataset:
    item = _item(UnformattedTextValue=text.text)
    if text.box is not None:
        item.BoundingBoxAnnotationUnits = text.units
        item.BoundingBoxTopLeftHandCorner = list(text.box[0])
        item.BoundingBoxBottomRightHandCorner = list(text.box[1])
        item.BoundingBoxTextHorizontalJustification = "LEFT"
    if text.anchor is not None:
        item.AnchorPointAnnotationUnits = text.units
        item.AnchorPoint = list(text.anchor)
        item.AnchorPointVisibility = "Y" if text.anchor_visible else "N"
    return item


def _item(**values: object) -> Dataset:
    item = Dataset()
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def _ds(value: float) -> str:
    """A Decimal String of at most 16 characters."""
    text = f"{value:.10g}"
    return text if len(text) <= 16 else f"{value:.6e}"
