"""Window presets by modality (appliance/imaging/presets.py): CT's in HU; dental (IO, PX) and
veterinary (DX, CR of a patient with a species) derived from the image's own window or stored
range, the dense end following the photometric interpretation; and /api/series/<uid>/viewer
offering them for images sent by storescu."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydicom.uid import generate_uid

from appliance.imaging import presets
from support.dicomgen import make_dataset, write


def windows(found: list[tuple[str, float, float]]) -> dict[str, tuple[float, float]]:
    return {name: (c, w) for name, c, w in found}


def test_dental_presets_from_the_stored_range_and_the_files_window() -> None:
    # 12 bits, no window: the base is the range 0-4095 (centre 2047.5, width 4096).
    twelve = {"photometric": "MONOCHROME2", "windows": [], "value_range": [0, 4095]}
    got = windows(presets("IO", twelve))
    assert got == {"Enamel / dentine": (3072, 2048), "Bone (alveolar)": (2560, 3072), "Soft tissue": (1024, 2048)}
    # MONOCHROME1: the dense end is the low values.
    assert windows(presets("PX", {**twelve, "photometric": "MONOCHROME1"}))["Enamel / dentine"] == (1024, 2048)
    # The file's window wins over the range: 8-bit panoramic with 128/200.
    own = {"photometric": "MONOCHROME2", "windows": [{"center": 128, "width": 200}], "value_range": [0, 255]}
    assert windows(presets("PX", own))["Soft tissue"] == (78, 100)


def test_veterinary_presets_only_with_a_species_and_ct_in_hu() -> None:
    image = {"photometric": "MONOCHROME2", "windows": [], "value_range": [0, 16383]}
    assert presets("DX", image) == [] and presets("MR", image, "Canine") == []
    got = windows(presets("CR", image, "Canine"))
    assert got == {"Thorax": (6144, 20480), "Abdomen": (8192, 9830), "Bone / orthopaedics": (10977, 12288)}
    assert windows(presets("CT", image))["Brain"] == (40, 80)
    assert presets("IO", {"photometric": "MONOCHROME2", "windows": [], "value_range": None}) == []


def test_viewer_json_offers_them(server: Any, viewer: Any, tmp_path: Path) -> None:
    sent = {}
    for name, modality, extra in [("io", "IO", {}), ("dog", "DX", {"PatientSpeciesDescription": "Canine"}),
                                  ("human", "DX", {})]:  # fmt: skip
        ds = make_dataset(study_uid=generate_uid(), modality=modality, patient_id=f"P-{name}", BitsStored=12, **extra)
        ds.PixelData = np.zeros((16, 16), np.uint16).tobytes()
        sent[name] = (write(ds, tmp_path / f"{name}.dcm"), str(ds.SeriesInstanceUID))
    assert server.storescu(*(path for path, _ in sent.values())).returncode == 0
    names = {
        name: [p["name"] for p in viewer.get(f"/api/series/{series}/viewer").json()["presets"]]
        for name, (_, series) in sent.items()
    }
    assert names == {"io": ["Enamel / dentine", "Bone (alveolar)", "Soft tissue"],
                     "dog": ["Thorax", "Abdomen", "Bone / orthopaedics"], "human": []}  # fmt: skip
    assert viewer.get(f"/api/series/{sent['io'][1]}/viewer").json()["image"]["value_range"] == [0, 4095]
