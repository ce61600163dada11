"""The reading room's SQLite-specific SQL: the study list's trigram search (FTS5) and the
expressions C-FIND matching needs (GLOB wildcards, the JSON of request attribute items,
group_concat).  PostgreSQL's twins: pg_trgm, LIKE/SIMILAR TO, jsonb, string_agg."""

from __future__ import annotations

from appliance.archive.index import Meta, database
from appliance.archive.sqlite import has_table, put_meta

# The search index: for each study, its patient's folded name, Patient ID, accession number and
# folded species, breed and owner (``patient.search_terms``), indexed by trigrams (SQLite FTS5),
# so that a word of three or more characters finds its studies anywhere in those texts without
# scanning them.  Triggers keep it in step with every insert, update and delete of the index,
# whoever makes them (ingest, rebuild-index).
_TERMS = "p.name_norm || ' ' || p.patient_id || ' ' || {accession} || ' ' || p.search_terms"
SEARCH_SCHEMA = (
    "CREATE VIRTUAL TABLE study_search USING fts5(terms, tokenize='trigram')",
    "CREATE TRIGGER study_search_insert AFTER INSERT ON study BEGIN"
    f" INSERT INTO study_search(rowid, terms) SELECT new.id, {_TERMS.format(accession='new.accession')}"
    " FROM patient p WHERE p.id = new.patient_id; END",
    "CREATE TRIGGER study_search_update AFTER UPDATE OF accession, patient_id ON study BEGIN"
    f" UPDATE study_search SET terms = (SELECT {_TERMS.format(accession='new.accession')}"
    " FROM patient p WHERE p.id = new.patient_id) WHERE rowid = new.id; END",
    "CREATE TRIGGER study_search_delete AFTER DELETE ON study BEGIN DELETE FROM study_search WHERE rowid = old.id; END",
    "CREATE TRIGGER study_search_patient AFTER UPDATE OF name_norm, patient_id, search_terms ON patient BEGIN"
    f" UPDATE study_search SET terms = (SELECT {_TERMS.format(accession='st.accession')}"
    " FROM study st JOIN patient p ON p.id = st.patient_id WHERE st.id = study_search.rowid)"
    " WHERE rowid IN (SELECT id FROM study WHERE patient_id = new.id); END",
    f"INSERT INTO study_search(rowid, terms) SELECT st.id, {_TERMS.format(accession='st.accession')}"
    " FROM study st JOIN patient p ON p.id = st.patient_id",
)
SEARCH_OBJECTS = (
    ("TRIGGER", "study_search_insert"), ("TRIGGER", "study_search_update"), ("TRIGGER", "study_search_delete"),
    ("TRIGGER", "study_search_patient"), ("TABLE", "study_search"),
)  # fmt: skip
# What the index holds; a database with an older one (or none) is given this one at start-up.
# 1: names, IDs, accession numbers; 2: also species, breed and owner.
SEARCH_VERSION = "2"
SEARCH_VERSION_KEY = "search_index_version"


def search_index_state() -> str:
    """ "current", "old" (made by an older Lightbox) or "none"."""
    if not has_table("study_search"):
        return "none"
    version = Meta.get_or_none(Meta.key == SEARCH_VERSION_KEY)
    return "current" if version is not None and version.value == SEARCH_VERSION else "old"


def make_search_index() -> None:
    """(Re)make the search index and fill it from the index (in the caller's transaction)."""
    for kind, name in SEARCH_OBJECTS:
        database.execute_sql(f"DROP {kind} IF EXISTS {name}")
    for statement in SEARCH_SCHEMA:
        database.execute_sql(statement)
    put_meta(SEARCH_VERSION_KEY, SEARCH_VERSION)


# A word looked up in the search index; how many studies match one (is it a rare word?).
WORD_MATCHES = "st.id IN (SELECT rowid FROM study_search WHERE study_search MATCH ?)"
WORD_COUNT = "SELECT count(*) FROM (SELECT 1 FROM study_search WHERE study_search MATCH ? LIMIT ?)"


def phrase(word: str) -> str:
    """A word as one FTS5 string: every character literal."""
    return '"' + word.replace('"', '""') + '"'


def glob(pattern: str) -> str:
    """A DICOM wildcard pattern as a GLOB pattern: * and ? mean the same; [ and ] are literal."""
    return "".join("[" + ch + "]" if ch in "[]" else ch for ch in pattern)


WILDCARD_MATCH = "{} GLOB ?"  # a column against glob(pattern): case-sensitive, as DICOM's
# The stored items of a series' Request Attributes Sequence (JSON), one row each as j.value.
ITEMS = "FROM json_each(NULLIF(se.request_attributes, '')) j WHERE {}"
ITEMS_AS_JSON = "(SELECT json_group_array(json(j.value)) " + ITEMS + ")"


def item_value(keyword: str) -> str:
    return f"json_extract(j.value, '$.{keyword}')"


def joined(expression: str) -> str:
    """The values of a one-column sub-select joined with backslashes (a multi-valued answer)."""
    return f"(SELECT group_concat(c, '\\') FROM ({expression}))"
