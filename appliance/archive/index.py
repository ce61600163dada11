"""The index: peewee models over SQLite (WAL, synchronous=FULL).

Denormalised so that C-FIND and QIDO-RS can answer at every level without opening files:
each level carries the PS3.4 C.6 required and common optional keys and its related counts.
"""

from __future__ import annotations

from pathlib import Path

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
    request_attributes = TextField(default="")  # JSON list of items (query.ITEM_KEYS) for C-FIND
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


class Node(BaseModel):
    """A known DICOM peer: a C-MOVE destination and, by policy, who may query and retrieve.

    ``allowed`` is a comma-separated subset of find, move, get, store (see ``nodes.py``)."""

    aet = CharField(unique=True)
    host = CharField()
    port = IntegerField()
    name = CharField(default="")
    allowed = CharField(default="find,move,get,store")


class User(BaseModel):
    """A person who may use the web UI and the HTTP API (see ``users.py``)."""

    name = CharField(unique=True)
    password_hash = CharField()  # Argon2id, in the PHC string format
    role = CharField()  # admin or viewer
    created_at = FloatField()


class Session(BaseModel):
    """A logged-in browser.  Only the token's SHA-256 is kept: a copy of the index gives no
    one a session."""

    token_sha256 = CharField(unique=True)
    user = ForeignKeyField(User, backref="sessions", on_delete="CASCADE")
    csrf_token = CharField()
    created_at = FloatField()
    last_seen_at = FloatField()
    address = CharField(default="")


class AuditEvent(BaseModel):
    """Who did what to which study, from where, when (event types after DICOM PS3.15 A.5)."""

    at = FloatField(index=True)
    event = CharField(index=True)  # e.g. UserAuthentication, DICOMInstancesAccessed, Export
    action = CharField(default="E")  # PS3.15 EventActionCode: C, R, U, D, E
    outcome = IntegerField(default=0)  # EventOutcomeIndicator: 0 success, 4 minor, 8 serious failure
    user_name = CharField(default="")
    address = CharField(default="")
    study_uid = CharField(default="")
    detail = TextField(default="")


class Device(BaseModel):
    """A device that has associated with Lightbox, learned from its A-ASSOCIATE-RQ (see
    ``devices.py``).  ``status``: new, approved, refused (tried while locked), ignored."""

    aet = CharField(unique=True)
    name = CharField(default="")
    status = CharField(default="new")
    host = CharField(default="")  # last source address, or the one an admin set
    port = IntegerField(null=True)  # its own DICOM port, when known (to C-ECHO it, to send to it)
    allowed = CharField(default="find,move,get,store")
    implementation_class_uid = CharField(default="")
    implementation_version = CharField(default="")
    sop_classes = TextField(default="[]")  # JSON list: every abstract syntax it proposed
    transfer_syntaxes = TextField(default="[]")  # JSON list: every transfer syntax it proposed
    first_seen = FloatField()
    last_seen = FloatField()
    associations = IntegerField(default=0)
    refused = IntegerField(default=0)
    studies_received = IntegerField(default=0)
    images_received = IntegerField(default=0)
    last_error = TextField(default="")
    last_error_at = FloatField(null=True)
    charset_override = CharField(default="")
    accept_private_sop_classes = BooleanField(default=False)
    lenient_aet = BooleanField(default=False)


class DiscoveredService(BaseModel):
    """A DICOM service announced on the LAN (DNS-SD ``_dicom._tcp`` / ``_dicom-tls._tcp``)."""

    name = CharField(unique=True)  # the DNS-SD instance name, e.g. "US1._dicom._tcp.local."
    service_type = CharField()
    aet = CharField(default="", index=True)
    host = CharField(default="")
    port = IntegerField()
    device_type = CharField(default="")
    txt = TextField(default="{}")  # JSON: every TXT key as announced
    first_seen = FloatField()
    last_seen = FloatField()
    present = BooleanField(default=True)  # False once it said goodbye (or expired)


class ForwardRule(BaseModel):
    """Send studies, once stable, to a node (see ``forwarding.py``); empty filters match all."""

    destination = CharField()
    modality = CharField(default="")
    calling_ae = CharField(default="")
    created_at = FloatField()


class ForwardJob(BaseModel):
    """One study to send to one destination: the persistent retry queue."""

    rule_id = IntegerField(index=True)
    destination = CharField()
    study_uid = CharField()
    state = CharField(default="pending", index=True)  # pending, done
    attempts = IntegerField(default=0)
    next_attempt_at = FloatField()
    last_error = TextField(default="")
    created_at = FloatField()
    done_at = FloatField(null=True)
    sent = IntegerField(default=0)


class Meta(BaseModel):
    """Small persistent state: schema version, cursors."""

    key = CharField(primary_key=True)
    value = TextField()


MODELS = (
    Patient, Study, Series, Instance, Change, FileRemoval, Superseded, Incident, Node, User, Session,
    AuditEvent, Device, DiscoveredService, ForwardRule, ForwardJob, Meta,
)  # fmt: skip
CONTENT_MODELS = (Instance, Series, Study, Patient)


def open_database(path: Path) -> SqliteDatabase:
    """Open (creating if needed) the index at ``path`` and bind the models to it."""
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
        db.create_tables(MODELS)
        _add_missing_columns(db)
        Meta.insert(key="schema_version", value=str(SCHEMA_VERSION)).on_conflict_ignore().execute()
    return db


def _add_missing_columns(db: SqliteDatabase) -> None:
    """Columns added to a model since the database was made get their default in old rows;
    `lightbox rebuild-index` fills in their real values.

    One ``ALTER TABLE ... ADD COLUMN ... DEFAULT`` each: peewee's migrator adds NOT NULL by
    copying the table and dropping the old one, which the foreign keys refuse for a table that
    others refer to (patient, study, series) as soon as it has rows."""
    for model in MODELS:
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
