"""Float Pixel Data (7FE0,0008) and Double Float Pixel Data (7FE0,0009) over WADO-RS: Parametric
Map-like instances made with pydicom and sent by storescu; their metadata names the pixel data
by BulkDataURI, and the bulk data and frames URIs give the values back as octet-stream."""

from __future__ import annotations

import numpy as np
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from support.dicomgen import write
from support.web import ADMIN, ADMIN_PASSWORD, base_url

PARAMETRIC_MAP = "1.2.840.10008.5.1.4.1.1.30"
FRAMES, ROWS, COLUMNS = 3, 6, 5
KINDS = {"float": ("FloatPixelData", "7FE00008", "OF", np.float32), "double": ("DoubleFloatPixelData", "7FE00009",
                                                                             "OD", np.float64)}  # fmt: skip


def parametric_map(keyword: str, dtype: type) -> tuple[Dataset, np.ndarray]:
    values = (np.arange(FRAMES * ROWS * COLUMNS, dtype=dtype).reshape(FRAMES, ROWS, COLUMNS) - 7.25) / 3
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = PARAMETRIC_MAP, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality = "FLOAT-1", "Map^Para", "RWV"
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns, ds.NumberOfFrames = ROWS, COLUMNS, FRAMES
    ds.BitsAllocated = np.dtype(dtype).itemsize * 8
    setattr(ds, keyword, values.astype("<" + np.dtype(dtype).str[1:]).tobytes())
    return ds, values


@pytest.fixture(scope="module")
def stored(server, admin, tmp_path_factory) -> dict[str, tuple[Dataset, np.ndarray]]:
    folder = tmp_path_factory.mktemp("float")
    made = {name: parametric_map(keyword, dtype) for name, (keyword, _tag, _vr, dtype) in KINDS.items()}
    # storescu proposes a Parametric Map only with -R (the contexts its files need)
    result = server.storescu(*(write(ds, folder / f"{name}.dcm") for name, (ds, _) in made.items()), extra=("-R",))
    assert result.returncode == 0 and result.stderr.count("(Success)") == 2, result.stdout + result.stderr
    return made


@pytest.fixture(scope="module")
def client(server, admin) -> DICOMwebClient:
    session = requests.Session()
    session.auth, session.trust_env = (ADMIN, ADMIN_PASSWORD), False
    return DICOMwebClient(url=base_url(server) + "/dicom-web", session=session)


def uids(ds: Dataset) -> tuple[str, str, str]:
    return ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID


@pytest.mark.parametrize("name", list(KINDS))
def test_float_pixel_data_is_bulk_data_in_metadata_and_comes_back(server, client, stored, name):
    ds, values = stored[name]
    keyword, tag, vr, dtype = KINDS[name]
    metadata = client.retrieve_instance_metadata(*uids(ds))
    assert metadata[tag]["vr"] == vr and "7FE00010" not in metadata
    uri = metadata[tag]["BulkDataURI"]
    assert uri == "/dicom-web/studies/{}/series/{}/instances/{}/bulkdata/{}".format(*uids(ds), tag)
    # The bulk data: one octet-stream part per frame, little endian values as stored.
    frames = client.retrieve_bulkdata(base_url(server) + uri, media_types=("application/octet-stream",))
    assert len(frames) == FRAMES
    back = np.frombuffer(b"".join(frames), "<" + np.dtype(dtype).str[1:]).reshape(FRAMES, ROWS, COLUMNS)
    assert np.array_equal(back, values)
    # The frames URI, any frames in any order.
    [third, first] = client.retrieve_instance_frames(*uids(ds), frame_numbers=[3, 1],
                                                     media_types=("application/octet-stream",))  # fmt: skip
    assert (third, first) == (values[2].tobytes(), values[0].tobytes())
    # The other pixel data tags are not there.
    for other in {"7FE00010", "7FE00008", "7FE00009"} - {tag}:
        answer = client._session.get(base_url(server) + uri.replace(tag, other), timeout=30)
        assert answer.status_code == 404 and other in answer.json()["error"]
