"""The index: peewee models over SQLite (WAL, synchronous=FULL).

Denormalised so that C-FIND and QIDO-RS can answer at every level without opening files:
each level carries the PS3.4 C.6 required and common optional keys and its related counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from peewee import (
    BooleanField,
    CharField,
    DatabaseProxy,
    Field,
    FloatField,
    ForeignKeyField,
    IntegerField,
    Model,
    SqliteDatabase,
    TextField,
)
from playhouse.sqlite_ext import AutoIncrementField

SCHEMA_VERSION = 1

database = DatabaseProxy()


# The items of a series' Request Attributes Sequence that the index keeps (Series.request_attributes,
# JSON) and C-FIND matches on, each with how it is matched.
ITEM_KEYS = {
    "RequestedProcedureID": "text",
    "ScheduledProcedureStepID": "text",
    "RequestedProcedureDescription": "text",
    "ScheduledProcedureStepDescription": "text",
}


class BaseModel(Model):
    class Meta:
        database = database


class Patient(BaseModel):
    """One identity: Patient ID with the name and birth date first seen for it.

    The same Patient ID with another name or birth date becomes a second row and both are
    flagged ``identity_conflict``; they are never merged silently.
    """

    patient_id = CharField(default="", index=True)
    issuer = CharField(default="")
    name = CharField(default="")
    name_norm = CharField(default="", index=True)
    birth_date = CharField(default="")
    sex = CharField(default="")
    species = CharField(default="")
    breed = CharField(default="")
    responsible_person = CharField(default="")
    responsible_organization = CharField(default="")
    search_terms = CharField(default="")  # species, breed and responsible person, folded: see browse.py
    identity_conflict = BooleanField(default=False)
    num_studies = IntegerField(default=0)
    num_series = IntegerField(default=0)
    num_instances = IntegerField(default=0)

    class Meta:
        indexes = ((("patient_id", "issuer", "name_norm", "birth_date"), True),)


class Study(BaseModel):
    study_uid = CharField(unique=True)
    patient = ForeignKeyField(Patient, backref="studies", on_delete="RESTRICT")
    study_date = CharField(default="", index=True)
    study_time = CharField(default="")
    accession = CharField(default="", index=True)
    study_id = CharField(default="")
    description = CharField(default="")
    referring_physician = CharField(default="")
    referring_physician_norm = CharField(default="")
    institution = CharField(default="")
    patient_age = CharField(default="")
    patient_size = CharField(default="")
    patient_weight = CharField(default="")
    charset = CharField(default="")
    modalities = CharField(default="")
    num_series = IntegerField(default=0)
    num_instances = IntegerField(default=0)
    patient_mismatch = BooleanField(default=False)
    first_received_at = FloatField()
    last_received_at = FloatField(index=True)
    stable = BooleanField(default=False, index=True)


class Series(BaseModel):
    series_uid = CharField(unique=True)
    study = ForeignKeyField(Study, backref="series", on_delete="RESTRICT")
    modality = CharField(default="", index=True)
    series_number = IntegerField(null=True)
    series_number_text = CharField(default="")  # as received ("04"): C-FIND returns it so
    description = CharField(default="")
    body_part = CharField(default="")
    laterality = CharField(default="")
    series_date = CharField(default="")
    series_time = CharField(default="")
    protocol_name = CharField(default="")
    station_name = CharField(default="")
    manufacturer = CharField(default="")
    model_name = CharField(default="")
    request_attributes = TextField(default="")  # JSON list of items (ITEM_KEYS) for C-FIND
    num_instances = IntegerField(default=0)
    last_received_at = FloatField()


class Instance(BaseModel):
    sop_uid = CharField(unique=True)
    series = ForeignKeyField(Series, backref="instances", on_delete="RESTRICT")
    sop_class_uid = CharField()
    instance_number = IntegerField(null=True)
    instance_number_text = CharField(default="")  # as received, like series_number_text
    content_date = CharField(default="")
    content_time = CharField(default="")
    acquisition_datetime = CharField(default="")
    rows = IntegerField(null=True)
    columns = IntegerField(null=True)
    number_of_frames = IntegerField(null=True)
    number_of_frames_text = CharField(default="")
    transfer_syntax = CharField()
    file_key = CharField(unique=True)
    size = IntegerField()
    sha256 = CharField()
    received_at = FloatField()
    calling_ae = CharField(default="")
    called_ae = CharField(default="")
    source_address = CharField(default="")
    # Keywords of UIDs accepted although not conformant (letters, leading zeros; validate.py).
    nonconformant_uids = CharField(default="")


class Change(BaseModel):
    """The change log: a monotonic sequence that thumbnails, forwarding and backup follow."""

    seq = AutoIncrementField()
    kind = CharField()
    study_uid = CharField(default="")
    series_uid = CharField(default="")
    sop_uid = CharField(default="")
    at = FloatField()


class FileRemoval(BaseModel):
    """A stored file whose index row is gone and whose bytes must go too (a deletion is
    committed first, then the files are unlinked): finished at once, or at the next start-up
    after a crash, so that a deleted instance never comes back as an orphan."""

    file_key = CharField(unique=True)


class Superseded(BaseModel):
    """An original file replaced by an identity edit, kept on disk until the backup has it
    (or, with no backup, for ``superseded_keep_days``); never indexed as an instance."""

    sop_uid = CharField(index=True)
    sop_class_uid = CharField(default="")
    transfer_syntax = CharField(default="")
    file_key = CharField(unique=True)
    size = IntegerField()
    sha256 = CharField()
    received_at = FloatField()
    superseded_at = FloatField()
    change_seq = IntegerField()  # the change that superseded it: released once a backup passed it


class Incident(BaseModel):
    """Something an admin should know about: a duplicate that differed, an identity conflict,
    a repair made at start-up."""

    at = FloatField()
    kind = CharField(index=True)
    sop_uid = CharField(default="")
    detail = TextField(default="")
    calling_ae = CharField(default="")
    source_address = CharField(default="")


class Meta(BaseModel):
    """Small persistent state: schema version, cursors."""

    key = CharField(primary_key=True)
    value = TextField()


MODELS = (Patient, Study, Series, Instance, Change, FileRemoval, Superseded, Incident, Meta)
CONTENT_MODELS = (Instance, Series, Study, Patient)


def open_database(path: Path, models: Sequence[type[Model]] = MODELS) -> SqliteDatabase:
    """Open (creating if needed) the index at ``path`` and bind the models to it; ``models``
    are the tables to make (the facade adds the registry's to the index's own)."""
    db = SqliteDatabase(
        str(path),
        pragmas={  # busy_timeout first: the others may have to wait for another process
            "busy_timeout": 30000,
            "journal_mode": "wal",
            "synchronous": 2,  # FULL: a commit is on disk before we acknowledge
            "foreign_keys": 1,
            "cache_size": -8000,
        },
        check_same_thread=False,
    )
    database.initialize(db)
    db.connect(reuse_if_open=True)
    with db.atomic("IMMEDIATE"):  # take the write lock up front: no read-to-write upgrade
        db.create_tables(models)
        _add_missing_columns(db, models)
        Meta.insert(key="schema_version", value=str(SCHEMA_VERSION)).on_conflict_ignore().execute()
    return db


def _add_missing_columns(db: SqliteDatabase, models: Sequence[type[Model]]) -> None:
    """Columns added to a model since the database was made get their default in old rows;
    `lightbox rebuild-index` fills in their real values.

    One ``ALTER TABLE ... ADD COLUMN ... DEFAULT`` each: peewee's migrator adds NOT NULL by
    copying the table and dropping the old one, which the foreign keys refuse for a table that
    others refer to (patient, study, series) as soon as it has rows."""
    for model in models:
        table = model._meta.table_name
        present = {c.name for c in db.get_columns(table)}
        for field in model._meta.sorted_fields:
            if field.column_name not in present:
                db.execute_sql(f'ALTER TABLE "{table}" ADD COLUMN {_column_definition(db, field)}')


def _column_definition(db: SqliteDatabase, field: Field) -> str:
    ctx = db.get_sql_context()
    definition, _ = ctx.sql(field.ddl(ctx)).query()
    if field.default is None or callable(field.default):
        if not field.null:
            raise RuntimeError(f"column {field.column_name}: a new NOT NULL column needs a constant default")
        return definition
    default = field.db_value(field.default)
    if isinstance(default, str):
        return f"{definition} DEFAULT '{default.replace(chr(39), chr(39) * 2)}'"
    return f"{definition} DEFAULT {int(default) if isinstance(default, bool) else default!r}"
