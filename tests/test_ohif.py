"""`lightbox ohif install` and /ohif/ without a browser: a small tarball shaped like @ohif/app's
(checked by SHA-512, unpacked beside and switched in by one rename, relocated under /ohif/), and
a real `lightbox serve` answering /ohif/: login first, the app-config, deep links, cache headers,
the CSP, the page that says how to install it and the study page's "Open in OHIF" link.
(OHIF itself, in Chromium: test_ohif_browser.py.)"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from urllib.parse import quote

import pytest

from appliance import ohif
from appliance.web.ohif import app_config
from support.web import ADMIN, ADMIN_PASSWORD, Client, base_url, send_study

INDEX = (
    '<!doctype html><html><head><script>window.PUBLIC_URL="/"</script><link rel="manifest" href="/manifest.json">'
    '<script src="/app-config.js"></script><script defer src="/app.bundle.0f6159c501addfe9.js"></script>'
    '<link href="/app.bundle.css" rel="stylesheet"></head><body><div id="root"></div></body></html>'
)
BUNDLE = '(() => { __webpack_require__.p = "/"; })(); console.log("chunks from", __webpack_require__.p);'


def make_tarball(path: Path, extra: dict[str, bytes] | None = None, index: str = INDEX) -> tuple[Path, str]:
    """A .tgz laid out as npm packs @ohif/app, and its npm integrity string."""
    members = {
        "package/package.json": b'{"name": "@ohif/app"}',
        "package/dist/index.html": index.encode(),
        "package/dist/app.bundle.0f6159c501addfe9.js": BUNDLE.encode(),
        "package/dist/app.bundle.css": b"@font-face{src:url(/a34f9d1faa5f3315.woff2)}",
        "package/dist/a34f9d1faa5f3315.woff2": b"wOF2",
        "package/dist/manifest.json": b'{"start_url": "/", "icons": [{"src": "/assets/icon.png"}]}',
        "package/dist/assets/icon.png": b"\x89PNG",
        **(extra or {}),
    }
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("package/dist/escape")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    digest = base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()
    return path, f"sha512-{digest}"


def test_install_unpacks_only_dist_relocated_under_the_prefix(tmp_path):
    tarball, integrity = make_tarball(tmp_path / "app.tgz", {"package/dist/../../evil.txt": b"x"})
    data = tmp_path / "data"
    umask = os.umask(0o077)  # as every `lightbox` command runs
    try:
        folder = ohif.install(data, tarball, integrity)
    finally:
        os.umask(umask)
    assert ohif.installed(data) and ohif.dist_dir(data).resolve() == folder
    assert ohif.installed_version(data) == ohif.VERSION
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) == [
        "a34f9d1faa5f3315.woff2",
        "app.bundle.0f6159c501addfe9.js",
        "app.bundle.css",
        "assets",
        "assets/icon.png",
        "index.html",
        "manifest.json",
    ]  # fmt: skip  (no package.json, no link, nothing outside)
    assert not (tmp_path / "evil.txt").exists() and not any(p.name == "evil.txt" for p in tmp_path.rglob("*"))
    index = (folder / "index.html").read_text()
    assert 'window.PUBLIC_URL="/ohif/"' in index
    assert re.findall(r'(?:src|href)="([^"]*)"', index) == [
        "/ohif/manifest.json", "/ohif/app-config.js", "/ohif/app.bundle.0f6159c501addfe9.js", "/ohif/app.bundle.css",
    ]  # fmt: skip
    assert '__webpack_require__.p = "/ohif/";' in (folder / "app.bundle.0f6159c501addfe9.js").read_text()
    assert "url(/ohif/a34f9d1faa5f3315.woff2)" in (folder / "app.bundle.css").read_text()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["start_url"] == "/ohif/" and manifest["icons"][0]["src"] == "/ohif/assets/icon.png"
    # the service's user reads what root installed (every command runs with umask 077)
    assert (folder / "assets" / "icon.png").stat().st_mode & 0o777 == 0o644
    assert {p.stat().st_mode & 0o777 for p in (folder, folder / "assets")} == {0o755}


def test_a_tarball_with_another_digest_is_refused_and_the_installed_copy_stays(tmp_path):
    data = tmp_path / "data"
    good, integrity = make_tarball(tmp_path / "good.tgz")
    first = ohif.install(data, good, integrity)
    bad, _ = make_tarball(tmp_path / "bad.tgz", {"package/dist/extra.js": b"alert(1)"})
    with pytest.raises(ohif.OhifError, match="integrity mismatch"):
        ohif.install(data, bad, integrity)
    assert ohif.dist_dir(data).resolve() == first and (first / "index.html").is_file()
    assert sorted(p.name for p in data.iterdir()) == ["ohif", first.name]  # nothing half-made left


def test_the_pinned_integrity_refuses_any_other_tarball(tmp_path):
    """The command's default: the SHA-512 of @ohif/app 3.13.2 as the npm registry lists it."""
    tarball, _ = make_tarball(tmp_path / "app.tgz")
    with pytest.raises(ohif.OhifError, match="integrity mismatch"):
        ohif.install(tmp_path / "data", tarball)
    assert not ohif.installed(tmp_path / "data")


def test_an_install_replaces_the_copy_in_one_rename_and_removes_the_old(tmp_path):
    data = tmp_path / "data"
    tarball, integrity = make_tarball(tmp_path / "app.tgz")
    first = ohif.install(data, tarball, integrity)
    (data / ".ohif-3.13.2-killed").mkdir()  # an install killed half-way
    second = ohif.install(data, tarball, integrity)
    assert second != first and not first.exists()
    assert ohif.dist_dir(data).is_symlink() and ohif.dist_dir(data).resolve() == second
    assert sorted(p.name for p in data.iterdir()) == ["ohif", second.name]


def test_a_tarball_that_is_not_the_ohif_build_is_refused(tmp_path):
    tarball, integrity = make_tarball(tmp_path / "app.tgz", index="<html>no paths</html>")
    with pytest.raises(ohif.OhifError, match="not the OHIF build"):
        ohif.install(tmp_path / "data", tarball, integrity)
    assert [p.name for p in (tmp_path / "data").iterdir()] == []


def test_the_command_refuses_a_wrong_tarball_with_exit_1(tmp_path):
    tarball, _ = make_tarball(tmp_path / "app.tgz")
    command = [sys.executable, "-m", "appliance", "ohif", "install", "--data", str(tmp_path / "data"), "--from"]
    result = subprocess.run([*command, str(tarball)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "integrity mismatch" in result.stderr, result.stderr
    assert not ohif.installed(tmp_path / "data")


def test_app_config_points_ohif_at_this_origins_dicomweb():
    text = app_config()
    config = json.loads(re.search(r"window\.config = (\{.*?\});\n", text, re.S).group(1))
    assert config["routerBasename"] == "/ohif"
    (source,) = config["dataSources"]
    assert config["defaultDataSourceName"] == source["sourceName"]
    assert source["namespace"] == "@ohif/extension-default.dataSourcesModule.dicomweb"
    settings = source["configuration"]
    assert settings["imageRendering"] == "wadors" and settings["supportsFuzzyMatching"] is True
    assert settings["omitQuotationForMultipartRequest"] is True and settings["enableStudyLazyLoad"] is True
    assert settings["bulkDataURI"]["enabled"] is True
    assert 'const root = window.location.origin + "/dicom-web";' in text
    assert "{qidoRoot: root, wadoRoot: root, wadoUriRoot: root}" in text


@pytest.fixture
def installed(server, tmp_path):
    """OHIF (the small tarball) installed in the module's server's data folder."""
    tarball, integrity = make_tarball(tmp_path / "app.tgz")
    ohif.install(server.data, tarball, integrity)
    return server


def test_without_ohif_the_page_says_how_to_install_it_and_the_study_page_has_no_link(server, admin, tmp_path):
    ohif.dist_dir(server.data).unlink(missing_ok=True)
    answer = admin.get("/ohif/viewer?StudyInstanceUIDs=1.2.3")
    assert answer.status_code == 404 and "lightbox ohif install" in answer.text
    study = send_study(server, tmp_path / "study", 1)
    page = admin.get(f"/studies/{study}")
    assert page.status_code == 200 and "Open in OHIF" not in page.text


def test_ohif_needs_a_login_like_every_page(installed):
    anonymous = Client(base_url(installed))
    for path in ("/ohif", "/ohif/", "/ohif/viewer?StudyInstanceUIDs=1.2.3&x=%2F", "/ohif/app-config.js"):
        answer = anonymous.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["Location"] == "/login?next=" + quote(path), answer.headers["Location"]
    # ... and the login takes the user back there, the study's UID included
    login = anonymous.get(anonymous.get("/ohif/viewer?StudyInstanceUIDs=1.2.3").headers["Location"])
    assert 'name="next" value="/ohif/viewer?StudyInstanceUIDs=1.2.3"' in login.text
    back = anonymous.post("/login", data={"name": ADMIN, "password": ADMIN_PASSWORD,
                                          "next": "/ohif/viewer?StudyInstanceUIDs=1.2.3"})  # fmt: skip
    assert back.status_code == 303 and back.headers["Location"] == "/ohif/viewer?StudyInstanceUIDs=1.2.3"


def test_deep_links_fall_back_to_index_html_and_missing_files_are_404(installed, admin):
    index = admin.get("/ohif/")
    assert index.status_code == 200 and 'window.PUBLIC_URL="/ohif/"' in index.text
    assert index.headers["Cache-Control"] == "no-cache"
    for path in ("/ohif/viewer?StudyInstanceUIDs=1.2.3", "/ohif/viewer/dicomweb", "/ohif/segmentation"):
        answer = admin.get(path)
        assert answer.status_code == 200 and answer.text == index.text, path
        assert answer.headers["Content-Type"].startswith("text/html")
    assert admin.get("/ohif/no-such.bundle.js").status_code == 404
    beside = next(p.name for p in installed.data.iterdir() if p.is_file())  # the index, say
    assert admin.get(f"/ohif/%2e%2e/{beside}").status_code == 404  # nothing outside the copy
    assert admin.get("/ohif").text == index.text


def test_hashed_assets_are_cached_long_and_ohif_alone_gets_its_csp(installed, admin):
    bundle = admin.get("/ohif/app.bundle.0f6159c501addfe9.js")
    assert bundle.status_code == 200 and bundle.headers["Content-Type"].startswith("text/javascript")
    assert bundle.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    assert admin.get("/ohif/a34f9d1faa5f3315.woff2").headers["Cache-Control"].endswith("immutable")
    assert admin.get("/ohif/assets/icon.png").headers["Cache-Control"] == "no-cache"
    config = admin.get("/ohif/app-config.js")
    assert config.status_code == 200 and config.text == app_config()
    assert config.headers["Content-Type"].startswith("text/javascript")
    csp = bundle.headers["Content-Security-Policy"]
    assert "'wasm-unsafe-eval'" in csp and "worker-src 'self' blob:" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe" not in admin.get("/").headers["Content-Security-Policy"]  # the rest keeps the strict one


def test_the_study_page_links_to_ohif_when_installed(installed, admin, tmp_path):
    study = send_study(installed, tmp_path / "study", 1)
    page = admin.get(f"/studies/{study}")
    assert f'href="/ohif/viewer?StudyInstanceUIDs={study}"' in page.text and "Open in OHIF" in page.text
