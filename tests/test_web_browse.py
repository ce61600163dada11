"""The study browser, study page and downloads over HTTP: search, filters, sorting, paging, the
change-log poll, and ZIP downloads opened with pydicom."""

from __future__ import annotations

import io
import zipfile
from datetime import date, timedelta

import pytest
from pydicom import dcmread
from pydicom.fileset import FileSet

from support.dicomgen import make_study
from support.web import Client, send_study

TODAY = date.today()
DAY = lambda days_ago: (TODAY - timedelta(days=days_ago)).strftime("%Y%m%d")  # noqa: E731
STUDIES = (  # patient name, patient ID, accession, study date, modality, extra attributes
    ("Müller^Jürgen", "P-100", "ACC-100", DAY(0), "IO", {}),
    ("MULLER^ANNA", "P-101", "ACC-101", DAY(3), "US", {}),
    ("Østergård^Søren", "P-102", "ACC-102", DAY(20), "DX", {}),
    ("Rex", "VET-7", "ACC-103", DAY(1), "CR",
     {"PatientSpeciesDescription": "Canine", "PatientBreedDescription": "Beagle", "ResponsiblePerson": "Smith^John"}),
    ("Doe^Jane", "P-104", "ACC-104", "20200115", "PX", {}),
    ("Doe^John", "P-105", "X-9_%", "20200116", "OT", {}),
)  # fmt: skip


@pytest.fixture(scope="module")
def server_settings() -> dict[str, object]:
    return {"dicom_workers": 0}


@pytest.fixture(scope="module")
def corpus(server, tmp_path_factory) -> dict[str, str]:
    """patient ID -> study UID; loaded with `lightbox import`, the way a CD would be."""
    folder = tmp_path_factory.mktemp("corpus")
    uids = {}
    for n, (name, pid, accession, day, modality, extra) in enumerate(STUDIES):
        files = make_study(folder / pid, 2 if n else 3, patient_name=name, patient_id=pid, AccessionNumber=accession,
                           StudyDate=day, modality=modality, StudyDescription=f"Study of {pid}", **extra)  # fmt: skip
        uids[pid] = str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    result = server.cli("import", str(folder))
    assert result.returncode == 0, result.stdout + result.stderr
    return uids


def ids(answer) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [s["patient_id"] for s in answer.json()["studies"]]


def test_list_is_newest_first_with_the_columns(admin, corpus):
    answer = admin.get("/api/studies")
    assert ids(answer) == ["P-100", "VET-7", "P-101", "P-102", "P-105", "P-104"]
    first = answer.json()["studies"][0]
    assert (first["patient_name"], first["birth_date"], first["sex"], first["modalities"]) == (
        "Müller^Jürgen",
        "19800101",
        "F",
        ["IO"],
    )
    assert (first["num_series"], first["num_instances"], first["accession"]) == (1, 3, "ACC-100")
    vet = answer.json()["studies"][1]
    assert (vet["species"], vet["breed"], vet["owner"]) == ("Canine", "Beagle", "Smith^John")
    page = admin.get("/").text
    assert "Canine · Beagle · owner Smith, John" in page and "Müller, Jürgen" in page
    assert "^" not in page  # names read "Family, Given": never DICOM's carets
    assert '<td class="count" data-label="Images">3 images</td>' in page and ">2 images<" in page


def test_search_folds_case_and_accents_and_matches_ids(admin, corpus):
    assert sorted(ids(admin.get("/api/studies", params={"q": "muller"}))) == ["P-100", "P-101"]
    assert ids(admin.get("/api/studies", params={"q": "MÜLL jürg"})) == ["P-100"]
    assert ids(admin.get("/api/studies", params={"q": "ØSTERGARD"})) == ["P-102"]  # Ø is a letter, å an a with a ring
    assert ids(admin.get("/api/studies", params={"q": "vet-"})) == ["VET-7"]
    assert ids(admin.get("/api/studies", params={"q": "acc-104"})) == ["P-104"]
    assert ids(admin.get("/api/studies", params={"q": "9_%"})) == ["P-105"]  # LIKE wildcards are literal
    assert ids(admin.get("/api/studies", params={"q": "_"})) == ["P-105"]
    assert ids(admin.get("/api/studies", params={"q": "nobody"})) == []


def test_date_and_modality_filters(admin, corpus):
    assert ids(admin.get("/api/studies", params={"date": "today"})) == ["P-100"]
    assert ids(admin.get("/api/studies", params={"date": "7d"})) == ["P-100", "VET-7", "P-101"]
    rng = {"date": "range", "from": "2020-01-01", "to": "2020-01-15"}
    assert ids(admin.get("/api/studies", params=rng)) == ["P-104"]
    assert ids(admin.get("/api/studies", params={"date": "range", "from": "2020-01-16"}))[-1] == "P-105"
    assert ids(admin.get("/api/studies", params={"modality": "IO"})) == ["P-100"]
    assert ids(admin.get("/api/studies", params={"modality": "px", "q": "doe"})) == ["P-104"]
    for bad in (
        {"date": "yesterday"},
        {"date": "range", "from": "15/01/2020"},
        {"sort": "sha256"},
        {"page": "0"},
        {"limit": "5000"},
    ):
        assert admin.get("/api/studies", params=bad).status_code == 400, bad


def test_sorting_and_paging(admin, corpus):
    by_name = ids(admin.get("/api/studies", params={"sort": "name"}))
    assert by_name == [
        "P-104",
        "P-105",
        "P-101",
        "P-100",
        "VET-7",
        "P-102",
    ]  # doe, doe, muller anna, müller, rex, østergård
    assert ids(admin.get("/api/studies", params={"sort": "name", "order": "desc"})) == by_name[::-1]
    assert ids(admin.get("/api/studies", params={"sort": "images", "order": "desc"}))[0] == "P-100"
    pages, page = [], 1
    while True:
        answer = admin.get("/api/studies", params={"limit": 4, "page": page}).json()
        pages.append([s["patient_id"] for s in answer["studies"]])
        if not answer["more"]:
            break
        page += 1
    assert pages == [["P-100", "VET-7", "P-101", "P-102"], ["P-105", "P-104"]]
    html = admin.get("/", params={"limit": 4}).text
    assert 'limit=4&amp;page=2">Next page' in html and 'aria-sort="descending"' in html


def test_change_log_poll_sees_a_new_study(server, admin, corpus, tmp_path):
    before = admin.get("/api/changes").json()["last_change"]
    assert admin.get("/api/changes").json()["last_change"] == before  # nothing happened: same head
    uid = send_study(server, tmp_path, count=1, patient_name="New^Arrival", patient_id="P-NEW", StudyDate=DAY(0))
    assert admin.get("/api/changes").json()["last_change"] > before
    assert admin.get("/api/changes", params={"study": uid}).json()["study_instances"] == 1
    assert "P-NEW" in ids(admin.get("/api/studies", params={"q": "arrival"}))


def test_study_page_and_its_json_twin(admin, corpus):
    uid = corpus["VET-7"]
    detail = admin.get(f"/api/studies/{uid}").json()
    assert detail["study"]["patient_id"] == "VET-7" and detail["study"]["description"] == "Study of VET-7"
    (series,) = detail["series"]
    assert (series["modality"], series["num_instances"], len(series["instances"])) == ("CR", 2, 2)
    page = admin.get(f"/studies/{uid}").text
    assert "Study of VET-7" in page and "Beagle" in page and "Smith, John" in page and "^" not in page
    assert (
        f'href="/api/studies/{uid}/archive.zip"' in page and f"/api/series/{series['series_uid']}/archive.zip" in page
    )
    assert admin.get("/studies/1.2.3.4").status_code == 404
    assert admin.get("/api/studies/1.2.3.4").json() == {"error": "no such study"}


def _zip(admin: Client, url: str, label: str) -> zipfile.ZipFile:
    answer = admin.get(url, stream=True)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "application/zip"
    assert "Content-Length" not in answer.headers  # streamed (chunked), not built first
    assert answer.headers["Content-Disposition"] == f'attachment; filename="lightbox-{label}.zip"'
    return zipfile.ZipFile(io.BytesIO(answer.raw.read()))


def test_study_zip_is_dicom_media_with_a_dicomdir(admin, corpus, tmp_path):
    uid = corpus["P-100"]
    with _zip(admin, f"/api/studies/{uid}/archive.zip", "study") as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        assert names == ["IMAGES/SE000001/IM000001", "IMAGES/SE000001/IM000002", "IMAGES/SE000001/IM000003", "DICOMDIR"]
        zf.extractall(tmp_path)
    fileset = FileSet(dcmread(tmp_path / "DICOMDIR"))  # pydicom checks the records and their offsets
    assert len(fileset) == 3
    (patient,) = fileset.find_values("PatientID")
    assert patient == "P-100"
    instances = [instance.load() for instance in fileset]
    assert {str(ds.StudyInstanceUID) for ds in instances} == {uid}
    assert sorted(int(ds.InstanceNumber) for ds in instances) == [1, 2, 3]
    assert str(instances[0].PatientName) == "Müller^Jürgen"
    assert instances[0].pixel_array.shape == (16, 16)
    events = admin.get("/api/audit").json()["events"]
    assert any(e["event"] == "Export" and e["study_uid"] == uid for e in events)


def test_series_zip_and_a_multi_series_dicomdir(server, admin, tmp_path):
    from pydicom.uid import generate_uid

    study_uid = generate_uid()
    for n in (2, 1):
        files = make_study(tmp_path / f"s{n}", n, study_uid=study_uid, patient_id="P-MULTI", SeriesNumber=n)
        assert server.storescu(*files).returncode == 0
    with _zip(admin, f"/api/studies/{study_uid}/archive.zip", "study") as zf:
        assert zf.namelist() == [
            "IMAGES/SE000001/IM000001", "IMAGES/SE000002/IM000001", "IMAGES/SE000002/IM000002", "DICOMDIR",
        ]  # fmt: skip
        zf.extractall(tmp_path / "study")
    fileset = FileSet(dcmread(tmp_path / "study" / "DICOMDIR"))
    assert sorted(int(i.load().SeriesNumber) for i in fileset) == [1, 2, 2]
    series_uid = admin.get(f"/api/studies/{study_uid}").json()["series"][1]["series_uid"]
    with _zip(admin, f"/api/series/{series_uid}/archive.zip", "series") as zf:
        assert zf.namelist() == ["IMAGES/SE000001/IM000001", "IMAGES/SE000001/IM000002", "DICOMDIR"]
        zf.extractall(tmp_path / "series")
    assert [str(i.SeriesInstanceUID) for i in FileSet(dcmread(tmp_path / "series" / "DICOMDIR"))] == [series_uid] * 2
    assert admin.get("/api/series/1.2.3/archive.zip").status_code == 404


def test_both_query_plans_give_the_same_answers(server, corpus, monkeypatch):
    """Words are looked up in the trigram index, or tested study by study in list order; rare
    modalities are looked up first, common ones tested one by one.  Either way, the same page."""
    from appliance.archive import Archive
    from appliance.archive.reading import browse

    archive = Archive(server.data)
    texts = ("", "doe", "p-10 muller", "_", "acc", "canine", "beagle smith", "smith beagle jo")
    filters = [browse.StudyFilter(text=t, modality=m) for t in texts for m in ("", "IO", "PX", "CR")]
    try:
        default = [archive.list_studies(f) for f in filters]
        monkeypatch.setattr(browse, "DENSE_WORD", 1000)
        monkeypatch.setattr(browse, "DENSE_MODALITY", -1)
        assert [archive.list_studies(f) for f in filters] == default
        monkeypatch.setattr(browse, "DENSE_WORD", 3)
        monkeypatch.setattr(browse, "DENSE_MATCHES", 0)  # every word too common to look up
        assert [archive.list_studies(f) for f in filters] == default
        monkeypatch.setattr(browse, "DENSE_MATCHES", 10**9)
        monkeypatch.setattr(browse, "DENSE_MODALITY", 10**9)
        assert [archive.list_studies(f) for f in filters] == default
    finally:
        archive.close()
    assert sum(len(rows) for rows, _ in default) > 10


def test_zip_is_written_piece_by_piece(tmp_path):
    """No piece handed to the server is larger than one read of a stored file: the ZIP is never
    held in memory, whatever the size of the study."""
    from appliance.archive import Archive
    from appliance.archive.storage import CHUNK
    from appliance.web.downloads import zip_stream

    files = make_study(tmp_path / "big", 3, rows=1024, columns=1024)  # 2 MiB each
    archive = Archive(tmp_path / "data")
    try:
        assert archive.import_paths(files).imported == 3
        study_uid = str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
        media = archive.media_files(study_uid)
        pieces = [len(piece) for piece in zip_stream(archive, media)]
    finally:
        archive.close()
    assert max(pieces) <= CHUNK + 4096
    assert sum(pieces) > 3 * 2 * 1024 * 1024 and len(pieces) >= 7


def test_zip_dicomdir_lists_only_the_files_it_holds(tmp_path):
    """A file removed between the listing and its turn is left out, and so is its record: the
    DICOMDIR, written last, lists what the ZIP holds."""
    from appliance.archive import Archive
    from appliance.web.downloads import zip_stream

    files = make_study(tmp_path / "s", 3)
    archive = Archive(tmp_path / "data")
    try:
        assert archive.import_paths(files).imported == 3
        media = archive.media_files(str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID))
        archive.file_path(media[1].file_key).unlink()
        (tmp_path / "media.zip").write_bytes(b"".join(zip_stream(archive, media)))
    finally:
        archive.close()
    with zipfile.ZipFile(tmp_path / "media.zip") as zf:
        assert zf.namelist() == ["IMAGES/SE000001/IM000001", "IMAGES/SE000001/IM000003", "DICOMDIR"]
        zf.extractall(tmp_path / "media")
    records = dcmread(tmp_path / "media" / "DICOMDIR").DirectoryRecordSequence  # all, not only the files found
    images = [r for r in records if r.DirectoryRecordType == "IMAGE"]
    assert [list(r.ReferencedFileID) for r in images] == [
        ["IMAGES", "SE000001", "IM000001"],
        ["IMAGES", "SE000001", "IM000003"],
    ]
    assert [r.ReferencedSOPInstanceUIDInFile for r in images] == [media[0].sop_uid, media[2].sop_uid]
    assert len(FileSet(dcmread(tmp_path / "media" / "DICOMDIR"))) == 2


def test_search_index_is_made_for_old_archives_and_follows_rebuild(tmp_path):
    from appliance.archive import Archive
    from appliance.archive.index import database
    from appliance.archive.reading import browse

    files = [
        f for n in range(3) for f in make_study(tmp_path / f"s{n}", 1, patient_name=f"Zed^Nr{n}", patient_id=f"Z{n}")
    ]
    archive = Archive(tmp_path / "data")
    assert archive.import_paths(files).imported == 3
    for name in (
        "study_search",
        "study_search_insert",
        "study_search_update",
        "study_search_delete",
        "study_search_patient",
    ):
        kind = "TABLE" if name == "study_search" else "TRIGGER"
        database.execute_sql(f"DROP {kind} {name}")  # an archive made before the search index
    archive.close()

    def found(archive: Archive, text: str) -> list[str]:
        rows, _more = archive.list_studies(browse.StudyFilter(text=text))
        return [row.patient_id for row in rows]

    archive = Archive(tmp_path / "data")
    try:
        assert found(archive, "zed") == ["Z2", "Z1", "Z0"] and found(archive, "nr1") == ["Z1"]
        archive.rebuild_index()
        assert sorted(found(archive, "zed")) == ["Z0", "Z1", "Z2"]
        (rows,) = database.execute_sql("SELECT count(*) FROM study_search").fetchone()
        assert rows == 3
    finally:
        archive.close()


def test_search_finds_owner_species_and_breed(server, admin, corpus, tmp_path):
    """Vet practices look an animal up by its owner (Responsible Person), species or breed,
    folded like names."""
    assert ids(admin.get("/api/studies", params={"q": "smith"})) == ["VET-7"]
    assert ids(admin.get("/api/studies", params={"q": "beagle"})) == ["VET-7"]
    assert ids(admin.get("/api/studies", params={"q": "CANINE rex"})) == ["VET-7"]
    assert ids(admin.get("/api/studies", params={"q": "john smi"})) == ["VET-7"]  # not Doe^John
    send_study(server, tmp_path, count=1, patient_name="Lefèvre^Filou", patient_id="VET-8", PatientSpeciesDescription="Chien",
               PatientBreedDescription="Épagneul Breton", ResponsiblePerson="Lefèvre^Bérénice")  # fmt: skip
    assert ids(admin.get("/api/studies", params={"q": "epagneul"})) == ["VET-8"]
    assert ids(admin.get("/api/studies", params={"q": "BERENICE"})) == ["VET-8"]
    assert ids(admin.get("/api/studies", params={"q": "bérénice chi"})) == ["VET-8"]  # a short word: tested row by row
    assert ids(admin.get("/api/studies", params={"q": "br"})) == ["VET-8"]  # shorter than a trigram, in the breed


def test_modality_filter_offers_the_modalities_in_the_archive(server, admin, corpus, tmp_path):
    """Not a fixed list: NM, SEG, SR studies can be filtered once the archive holds them."""
    present = admin.get("/api/studies").json()["modalities"]
    assert {"IO", "US", "DX", "CR", "PX", "OT"} <= set(present) and "NM" not in present
    send_study(server, tmp_path / "nm", count=1, patient_id="P-NM", modality="NM")
    send_study(server, tmp_path / "seg", count=1, patient_id="P-SEG", modality="SEG")
    answer = admin.get("/api/studies", params={"modality": "NM"})
    assert ids(answer) == ["P-NM"]
    present = answer.json()["modalities"]
    assert {"NM", "SEG"} <= set(present) and present == sorted(present) and "" not in present
    assert ids(admin.get("/api/studies", params={"modality": "seg"})) == ["P-SEG"]
    assert '<option value="NM">NM</option>' in admin.get("/").text
    asked = admin.get("/api/studies", params={"modality": "xa"}).json()  # none in the archive: still the choice shown
    assert asked["studies"] == [] and "XA" in asked["modalities"]
    assert '<option value="XA" selected>XA</option>' in admin.get("/", params={"modality": "xa"}).text


def test_modalities_are_found_by_index_seeks_not_a_scan(server):
    """The list of modalities is read from the series.modality index, one seek per modality,
    so it stays cheap at 100,000 studies; a plain DISTINCT would read the whole index."""
    from appliance.archive import Archive
    from appliance.archive.index import database
    from appliance.archive.reading import browse

    archive = Archive(server.data)
    try:
        plan = " ".join(row[-1] for row in database.execute_sql("EXPLAIN QUERY PLAN " + browse._MODALITIES))
        assert archive.modalities() == sorted(archive.modalities()) and "CR" in archive.modalities()
    finally:
        archive.close()
    assert "SCAN series" not in plan and plan.count("SEARCH series USING COVERING INDEX") == 2, plan


def test_search_index_of_an_older_lightbox_is_extended_at_start_up(tmp_path):
    """An archive whose search index predates owner, species and breed (version 1: names, IDs,
    accession numbers) is given the new one when Lightbox starts, terms folded for old rows."""
    from appliance.archive import Archive
    from appliance.archive.index import database
    from appliance.archive.reading import browse
    from appliance.archive.reading import sqlite as search

    files = make_study(tmp_path / "vet", 1, patient_name="Rex", patient_id="V1", PatientBreedDescription="Épagneul",
                       PatientSpeciesDescription="Canine", ResponsiblePerson="Smith^John")  # fmt: skip
    archive = Archive(tmp_path / "data")
    assert archive.import_paths(files).imported == 1
    for kind, name in search.SEARCH_OBJECTS:  # back to what version 1 made
        database.execute_sql(f"DROP {kind} {name}")
    database.execute_sql("ALTER TABLE patient DROP COLUMN search_terms")
    database.execute_sql("CREATE VIRTUAL TABLE study_search USING fts5(terms, tokenize='trigram')")
    database.execute_sql(
        "INSERT INTO study_search(rowid, terms) SELECT st.id, p.name_norm || ' ' || p.patient_id || ' ' || st.accession"
        " FROM study st JOIN patient p ON p.id = st.patient_id"
    )
    database.execute_sql("DELETE FROM meta WHERE key = ?", (search.SEARCH_VERSION_KEY,))
    archive.close()

    archive = Archive(tmp_path / "data")
    try:
        for word in ("smith", "epagneul", "canine", "rex", "v1"):
            rows, _ = archive.list_studies(browse.StudyFilter(text=word))
            assert [r.patient_id for r in rows] == ["V1"], word
        assert browse.ensure_search_index() == ""  # current now: the next start leaves it alone
    finally:
        archive.close()
