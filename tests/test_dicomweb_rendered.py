"""``rendered`` parameters of PS3.18 8.3.5.1 against a real `lightbox serve`: viewport with and
without a source region (flips included), window with its three functions, JPEG quality, and
the parameters Lightbox refuses (annotation, iccprofile other than no) or bounds."""

from __future__ import annotations

import io

import numpy as np
import pytest
import requests
from PIL import Image

from support.dicomgen import make_dataset, write
from support.web import ADMIN, ADMIN_PASSWORD, base_url

ROWS, COLUMNS = 64, 80


@pytest.fixture(scope="module")
def url(server, admin, tmp_path_factory) -> str:
    """A 64 x 80 frame: dark left half (100), bright right half (4000), a bright top-left dot."""
    values = np.full((ROWS, COLUMNS), 100, np.uint16)
    values[:, COLUMNS // 2 :] = 4000
    values[:4, :4] = 4000
    ds = make_dataset(rows=ROWS, columns=COLUMNS, WindowCenter=2048, WindowWidth=4096)
    ds.PixelData = values.tobytes()
    result = server.storescu(write(ds, tmp_path_factory.mktemp("rendered") / "a.dcm"))
    assert result.returncode == 0, result.stdout + result.stderr
    return (f"{base_url(server)}/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}/rendered")  # fmt: skip


@pytest.fixture(scope="module")
def session() -> requests.Session:
    basic = requests.Session()
    basic.auth, basic.trust_env = (ADMIN, ADMIN_PASSWORD), False
    return basic


def picture(session: requests.Session, url: str, accept: str = "image/png", **params: str) -> np.ndarray:
    answer = session.get(url, params=params, headers={"Accept": accept}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == accept
    return np.asarray(Image.open(io.BytesIO(answer.content)).convert("L"))


def refused(session: requests.Session, url: str, **params: str) -> tuple[int, str]:
    answer = session.get(url, params=params, headers={"Accept": "image/png"}, timeout=30)
    return answer.status_code, answer.json()["error"]


def test_viewport_fits_the_frame_and_its_region(session, url):
    whole = picture(session, url)
    assert whole.shape == (ROWS, COLUMNS) and whole[10, 10] < 20 and whole[10, 70] > 230
    assert picture(session, url, viewport="40,40").shape == (32, 40)  # fitted, aspect kept
    right = picture(session, url, viewport=f"{COLUMNS // 2},{ROWS},{COLUMNS // 2},0,{COLUMNS // 2},{ROWS}")
    assert right.shape == (ROWS, COLUMNS // 2) and right.min() > 230  # the bright half alone
    corner = picture(session, url, viewport="8,8,0,0,8,8")
    assert corner.shape == (8, 8) and corner[:4, :4].min() > 230 and corner[4:, 4:].max() < 20
    assert picture(session, url, viewport="8,8,,,8,8").tolist() == corner.tolist()  # sx, sy default to 0
    # A negative source width or height flips the region.
    assert np.array_equal(picture(session, url, viewport=f"{COLUMNS},{ROWS},0,0,-{COLUMNS},{ROWS}"), whole[:, ::-1])
    assert np.array_equal(picture(session, url, viewport=f"{COLUMNS},{ROWS},0,0,{COLUMNS},-{ROWS}"), whole[::-1])
    # A region larger than the frame is cut at its edges.
    assert np.array_equal(picture(session, url, viewport=f"{COLUMNS},{ROWS},0,0,65536,65536"), whole)


def test_window_functions(session, url):
    linear = picture(session, url, window="2050,100,linear")
    exact = picture(session, url, window="2050,100,linear-exact")
    sigmoid = picture(session, url, window="2050,100,sigmoid")
    assert linear[10, 10] == 0 and linear[10, 70] == 255  # 100 and 4000 are outside the window
    assert exact[10, 10] == 0 and exact[10, 70] == 255
    narrow = picture(session, url, window="100,10000,sigmoid")  # the sigmoid's soft ends
    assert 0 < narrow[10, 10] < narrow[10, 70] < 255 and sigmoid.shape == linear.shape
    assert not np.array_equal(narrow, picture(session, url, window="100,10000,linear"))


def test_jpeg_quality(session, url):
    sizes = {}
    for quality in ("5", "100"):
        answer = session.get(url, params={"quality": quality, "viewport": "80,64"}, headers={"Accept": "image/jpeg"})
        assert answer.status_code == 200 and answer.content[:2] == b"\xff\xd8"
        sizes[quality] = len(answer.content)
    assert sizes["5"] < sizes["100"]


@pytest.mark.parametrize("params, status, reason", [
    ({"annotation": "patient"}, 400, "annotation"),
    ({"iccprofile": "srgb"}, 400, "iccprofile"),
    ({"viewport": "5000,5000"}, 400, "viewport"),  # bounded (DESIGN rule 9)
    ({"viewport": "64,64,0,0,0,10"}, 400, "non-zero"),
    ({"viewport": "64,64,-1,0,10,10"}, 400, "sx"),
    ({"viewport": "64"}, 400, "vw,vh"),
    ({"viewport": "10,10,1000,1000,10,10"}, 422, "outside"),
    ({"window": "40,0"}, 400, "width"),
    ({"window": "40,400,cubic"}, 400, "linear-exact"),
    ({"window": "nan,400"}, 400, "window"),
    ({"quality": "0"}, 400, "quality"),
])  # fmt: skip
def test_refused_parameters_say_why(session, url, params, status, reason):
    code, error = refused(session, url, **params)
    assert code == status and reason in error, error


def test_iccprofile_no_is_accepted(session, url):
    assert picture(session, url, iccprofile="no").shape == (ROWS, COLUMNS)
