"""QIDO-RS against a real `lightbox serve`: studies stored with DCMTK storescu, searched with
dicomweb-client (HTTP Basic) and with raw HTTP where headers matter (Warning, CORS, OHIF's
comma-separated includefield); the same matching as C-FIND (wildcards, ranges, UID lists,
names case- and accent-insensitive), paging, the default attributes, errors, the audit trail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom import Dataset
from pydicom.uid import generate_uid

from support.dicomgen import make_study
from support.lightbox import LightboxProcess
from support.web import ADMIN, ADMIN_PASSWORD, VIEWER, VIEWER_PASSWORD, Client, base_url, first_admin

CHEST, HEAD = generate_uid(), generate_uid()  # two studies of two patients
HEAD_SERIES = (generate_uid(), generate_uid())
OTHER = "https://viewer.example.org"


@pytest.fixture(scope="module")
def studies(server: LightboxProcess, admin: Client, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Müller^Jürgen's CT chest (3 instances) and Doe^Jane's MR head (2 series of 2), by storescu."""
    folder = tmp_path_factory.mktemp("qido")
    files = make_study(folder / "chest", 3, study_uid=CHEST, patient_name="Müller^Jürgen", patient_id="PID-A",
                       modality="CT", StudyDate="20260110", StudyDescription="Chest", SpecificCharacterSet="ISO_IR 192",
                       ReferringPhysicianName="House^Gregory", AccessionNumber="ACC-A")  # fmt: skip
    for n, series_uid in enumerate(HEAD_SERIES):
        files += make_study(folder / f"head{n}", 2, study_uid=HEAD, series_uid=series_uid,
                            patient_name="Doe^Jane", patient_id="PID-B", modality="MR", StudyDate="20260320",
                            StudyDescription="Head", SeriesNumber=n + 1, AccessionNumber="ACC-B")  # fmt: skip
    result = server.storescu(*files)
    assert result.returncode == 0, result.stdout + result.stderr


def basic(user: str = ADMIN, password: str = ADMIN_PASSWORD) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.auth = (user, password)
    return session


@pytest.fixture(scope="module")
def client(server: LightboxProcess, studies: None) -> DICOMwebClient:
    return DICOMwebClient(url=base_url(server) + "/dicom-web", session=basic())


def ds(result: dict) -> Dataset:
    return Dataset.from_json(result)


def uids(results: list[dict], keyword: str = "StudyInstanceUID") -> set[str]:
    return {str(ds(r).get(keyword)) for r in results}


def raw(server: LightboxProcess, path: str, **kwargs: Any) -> requests.Response:
    return basic().get(base_url(server) + "/dicom-web" + path, timeout=30, **kwargs)


def test_studies_answer_the_default_attributes(client: DICOMwebClient, server: LightboxProcess) -> None:
    found = {str(ds(r).StudyInstanceUID): r for r in client.search_for_studies()}
    assert set(found) == {CHEST, HEAD}
    head = ds(found[HEAD])
    assert head.ModalitiesInStudy == "MR" and head.NumberOfStudyRelatedSeries == 2
    assert head.NumberOfStudyRelatedInstances == 4
    assert (head.PatientID, head.AccessionNumber, head.StudyDate, head.StudyTime) == ("PID-B", "ACC-B", "20260320",
                                                                                      "101500")  # fmt: skip
    assert head.InstanceAvailability == "ONLINE" and head.PatientSex == "F" and head.PatientBirthDate == "19800101"
    assert head.RetrieveURL == f"/dicom-web/studies/{HEAD}"
    chest = found[CHEST]  # PS3.18 F.2: PN by component group, IS as a number, empty ones without a Value
    assert chest["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Müller^Jürgen"}]}
    assert chest["00080090"] == {"vr": "PN", "Value": [{"Alphabetic": "House^Gregory"}]}
    assert chest["00201208"] == {"vr": "IS", "Value": [3]}
    assert "00081030" not in chest  # StudyDescription is not a default: asked with includefield


def test_study_matching_is_c_find_matching(client: DICOMwebClient) -> None:
    def search(**filters: str) -> set[str]:
        return uids(client.search_for_studies(search_filters=filters))

    assert search(PatientName="muller*") == {CHEST}  # case- and accent-insensitive, wildcard
    assert search(PatientName="MÜLLER^JÜRGEN") == {CHEST}
    assert search(PatientName="Doe") == set()  # no wildcard: the whole name
    assert search(PatientID="PID-?") == {CHEST, HEAD}
    assert search(StudyDate="20260101-20260131") == {CHEST}  # a range
    assert search(StudyDate="20260301-") == {HEAD}  # open-ended
    assert search(StudyInstanceUID=f"{CHEST},{HEAD}") == {CHEST, HEAD}  # a UID list
    assert search(StudyInstanceUID=f"{HEAD}\\1.2.3") == {HEAD}
    assert search(ModalitiesInStudy="CT") == {CHEST}
    assert search(AccessionNumber="ACC-B") == {HEAD}
    assert search(**{"00100020": "PID-A"}) == {CHEST}  # a tag as 8 hex digits, as OHIF sends it
    assert search(**{"00100020": "PID-A", "00080050": "ACC-B"}) == set()  # every key must match


def test_fuzzymatching_matches_names_by_the_start_of_any_word(client: DICOMwebClient) -> None:
    assert uids(client.search_for_studies(search_filters={"PatientName": "jur"}, fuzzymatching=True)) == {CHEST}
    assert uids(client.search_for_studies(search_filters={"PatientName": "jur"}, fuzzymatching=False)) == set()
    assert uids(client.search_for_studies(search_filters={"PatientName": "do"}, fuzzymatching=True)) == {HEAD}


def test_series_of_a_study_and_of_all_studies(client: DICOMwebClient, server: LightboxProcess) -> None:
    series = client.search_for_series(HEAD)
    assert uids(series, "SeriesInstanceUID") == set(HEAD_SERIES)
    first = ds(next(s for s in series if ds(s).SeriesInstanceUID == HEAD_SERIES[0]))
    assert (first.Modality, first.SeriesNumber, first.NumberOfSeriesRelatedInstances) == ("MR", 1, 2)
    assert first.RetrieveURL == f"/dicom-web/studies/{HEAD}/series/{HEAD_SERIES[0]}"
    assert "PatientName" not in first  # study attributes only when searching all series

    every = client.search_for_series()
    assert len(every) == 3 and uids(every) == {CHEST, HEAD}
    assert {str(ds(s).PatientName) for s in every} == {"Müller^Jürgen", "Doe^Jane"}
    assert uids(client.search_for_series(search_filters={"Modality": "CT"})) == {CHEST}
    assert uids(client.search_for_series(search_filters={"SeriesNumber": "2"}), "SeriesInstanceUID") == {HEAD_SERIES[1]}
    assert client.search_for_series(generate_uid()) == []  # an unknown study: an empty answer


def test_instances_at_each_scope(client: DICOMwebClient, server: LightboxProcess) -> None:
    instances = client.search_for_instances(HEAD, HEAD_SERIES[1])
    assert len(instances) == 2
    one = ds(instances[0])
    assert one.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7" and (one.Rows, one.Columns) == (16, 16)
    assert one.InstanceNumber in (1, 2) and one.InstanceAvailability == "ONLINE"
    assert one.RetrieveURL == (f"/dicom-web/studies/{HEAD}/series/{HEAD_SERIES[1]}/instances/{one.SOPInstanceUID}")
    in_study = client.search_for_instances(HEAD)
    assert len(in_study) == 4 and uids(in_study, "SeriesInstanceUID") == set(HEAD_SERIES)
    everywhere = client.search_for_instances()
    assert len(everywhere) == 7 and uids(everywhere) == {CHEST, HEAD}
    assert str(ds(everywhere[0]).PatientID) in ("PID-A", "PID-B")  # study attributes for all instances
    found = client.search_for_instances(search_filters={"SOPInstanceUID": one.SOPInstanceUID})
    assert [ds(i).SeriesInstanceUID for i in found] == [HEAD_SERIES[1]]


def test_limit_offset_and_the_warning_when_cut(client: DICOMwebClient, server: LightboxProcess) -> None:
    page1, page2 = client.search_for_studies(limit=1), client.search_for_studies(limit=1, offset=1)
    assert uids(page1) | uids(page2) == {CHEST, HEAD} and uids(page1) == {HEAD}  # newest first
    assert client.search_for_studies(offset=2) == []
    assert len(client.search_for_instances(limit=2, get_remaining=True)) == 7  # paged through to the end

    cut = raw(server, "/instances", params={"limit": 3})
    assert cut.status_code == 200 and len(cut.json()) == 3
    assert cut.headers["Warning"].startswith("299 ") and "Additional results can be requested" in cut.headers["Warning"]
    whole = raw(server, "/instances", params={"limit": 7})
    assert len(whole.json()) == 7 and "Warning" not in whole.headers


def test_includefield_repeated_comma_separated_and_all(client: DICOMwebClient, server: LightboxProcess) -> None:
    asked = client.search_for_studies(fields=["StudyDescription", "00080080"], search_filters={"PatientID": "PID-A"})
    assert ds(asked[0]).StudyDescription == "Chest" and "00080080" in asked[0]  # empty Institution Name, its VR
    assert asked[0]["00080080"] == {"vr": "LO"}

    # What OHIF 3.13 sends first: includefield comma-separated.
    ohif = raw(server, "/studies?limit=101&offset=0&fuzzymatching=false&includefield=00081030,00080060")
    assert ohif.status_code == 200 and ohif.headers["Content-Type"] == "application/dicom+json"
    assert {str(ds(s).StudyDescription) for s in ohif.json()} == {"Chest", "Head"}

    every = raw(server, "/series", params={"includefield": "all", "SeriesInstanceUID": HEAD_SERIES[0]}).json()
    assert len(every) == 1
    fields = ds(every[0])
    assert fields.StudyDescription == "Head" and fields.SOPClassesInStudy == "1.2.840.10008.5.1.4.1.1.7"
    assert fields.NumberOfSeriesRelatedInstances == 2 and fields.AccessionNumber == "ACC-B"


def test_an_attribute_lightbox_cannot_match_is_named_in_a_warning(server: LightboxProcess, studies: None) -> None:
    answer = raw(server, "/studies", params={"Modality": "CT", "PatientID": "PID-B"})
    assert answer.status_code == 200 and uids(answer.json()) == {HEAD}  # ignored, not guessed at
    assert "not supported for matching: Modality" in answer.headers["Warning"]


def test_errors(server: LightboxProcess, studies: None) -> None:
    anonymous = DICOMwebClient(url=base_url(server) + "/dicom-web", session=requests.Session())
    with pytest.raises(requests.HTTPError) as refused:
        anonymous.search_for_studies()
    assert refused.value.response.status_code == 401
    assert refused.value.response.headers["WWW-Authenticate"] == 'Basic realm="Lightbox"'
    assert refused.value.response.json() == {"error": "login required"}  # JSON, never the login page

    wrong = DICOMwebClient(url=base_url(server) + "/dicom-web", session=basic(ADMIN, "not the password"))
    with pytest.raises(requests.HTTPError) as refused:
        wrong.search_for_series()
    assert refused.value.response.status_code == 401

    client = DICOMwebClient(url=base_url(server) + "/dicom-web", session=basic())
    for filters in ({"NotAnAttribute": "x"}, {"NumberOfStudyRelatedSeries": "many"}, {"123": "x"}):
        with pytest.raises(requests.HTTPError) as bad:
            client.search_for_studies(search_filters=filters)
        assert bad.value.response.status_code == 400 and bad.value.response.json()["error"]
    for query in ("limit=-1", "offset=x", "fuzzymatching=maybe", "includefield=NoSuchThing"):
        answer = raw(server, "/studies?" + query)
        assert answer.status_code == 400 and answer.headers["Content-Type"] == "application/json", query

    for accept in ("application/dicom+xml", "text/html", "application/json;q=0, application/dicom+json;q=0"):
        answer = raw(server, "/studies", headers={"Accept": accept})
        assert answer.status_code == 406 and answer.json()["error"], accept
    for accept in ("*/*", "application/*", "text/html;q=0.9, application/dicom+json;q=0.5", "application/json"):
        answer = raw(server, "/studies", headers={"Accept": accept})
        assert answer.status_code == 200 and len(answer.json()) == 2, accept
    assert raw(server, "/studies", headers={"Accept": "application/json"}).headers["Content-Type"] == (
        "application/json"
    )


def test_a_viewer_and_a_web_session_may_search(server: LightboxProcess, admin: Client, studies: None) -> None:
    assert admin.api_post("/api/users", name=VIEWER, password=VIEWER_PASSWORD, role="viewer").status_code == 200
    viewer = DICOMwebClient(url=base_url(server) + "/dicom-web", session=basic(VIEWER, VIEWER_PASSWORD))
    assert uids(viewer.search_for_studies()) == {CHEST, HEAD}
    in_browser = admin.get("/dicom-web/studies", params={"PatientID": "PID-A"})  # the session cookie
    assert in_browser.status_code == 200 and uids(in_browser.json()) == {CHEST}


def test_each_search_is_a_query_event_in_the_audit_trail(server: LightboxProcess, admin: Client) -> None:
    raw(server, f"/studies/{HEAD}/series", params={"Modality": "MR"})
    events = admin.get("/api/audit", params={"event": "Query", "user": ADMIN}).json()["events"]
    latest = events[0]
    assert latest["study_uid"] == HEAD and latest["outcome"] == 0 and latest["address"] == "127.0.0.1"
    assert latest["detail"].startswith(f"QIDO-RS SERIES /dicom-web/studies/{HEAD}/series by Modality: 2 results")
    raw(server, "/studies", params={"NumberOfStudyRelatedSeries": "x"})
    refused = admin.get("/api/audit", params={"event": "Query", "failures": "1"}).json()["events"][0]
    assert "refused" in refused["detail"] and "x" not in refused["detail"].split(":")[0]


def test_no_cors_unless_set(server: LightboxProcess, studies: None) -> None:
    answer = raw(server, "/studies", headers={"Origin": OTHER})
    assert answer.status_code == 200 and "Access-Control-Allow-Origin" not in answer.headers
    preflight = requests.options(base_url(server) + "/dicom-web/studies", headers={
        "Origin": OTHER, "Access-Control-Request-Method": "GET"}, timeout=30)  # fmt: skip
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_cors_for_the_origins_set(lightbox_factory, tmp_path: Path) -> None:
    server = lightbox_factory(dicomweb_cors_origins=f"{OTHER}, http://localhost:3000")
    first_admin(server)
    url = base_url(server) + "/dicom-web/studies"
    preflight = requests.options(url, headers={
        "Origin": OTHER, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"}, timeout=30)  # fmt: skip
    assert preflight.status_code == 204  # no login for a preflight: it says nothing of the archive
    assert preflight.headers["Access-Control-Allow-Origin"] == OTHER
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    assert "GET" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Access-Control-Allow-Credentials" not in preflight.headers  # a session cookie never crosses

    answer = basic().get(url, headers={"Origin": OTHER}, timeout=30)
    assert answer.status_code == 200 and answer.headers["Access-Control-Allow-Origin"] == OTHER
    assert "Warning" in answer.headers["Access-Control-Expose-Headers"] and "Origin" in answer.headers["Vary"]
    refused = requests.get(url, headers={"Origin": OTHER}, timeout=30)  # a 401 the page can read
    assert refused.status_code == 401 and refused.headers["Access-Control-Allow-Origin"] == OTHER

    stranger = basic().get(url, headers={"Origin": "https://evil.example"}, timeout=30)
    assert "Access-Control-Allow-Origin" not in stranger.headers
    api = basic().get(base_url(server) + "/api/me", headers={"Origin": OTHER}, timeout=30)
    assert "Access-Control-Allow-Origin" not in api.headers  # /dicom-web/ only


def test_a_page_holds_at_most_find_max_results(lightbox_factory, tmp_path: Path) -> None:
    server = lightbox_factory(find_max_results=2)
    first_admin(server)
    assert server.storescu(*make_study(tmp_path / "three", 3)).returncode == 0
    client = DICOMwebClient(url=base_url(server) + "/dicom-web", session=basic())
    for params in ({}, {"limit": 50}):  # the server's bound, whatever the client asks
        answer = raw(server, "/instances", params=params)
        assert len(answer.json()) == 2 and "Additional results can be requested" in answer.headers["Warning"]
    last = raw(server, "/instances", params={"offset": 2})
    assert len(last.json()) == 1 and "Warning" not in last.headers
    assert len(client.search_for_instances(get_remaining=True)) == 3  # a client pages through it all
