"""The index's content tables (peewee models): patients, studies, series, instances, the change
log, the journals of removals and superseded files, the worklist's scheduled orders and the
steps modalities performed (MPPS).  Opening the database is ``sqlite.py``'s; the registry's
tables are in ``registry/models.py``.

Denormalised so that C-FIND can answer at every level without opening files: each level
carries the PS3.4 C.6 required and common optional keys and its related counts.
"""

from __future__ import annotations

from peewee import (
    BooleanField,
    CharField,
    DatabaseProxy,
    FloatField,
    ForeignKeyField,
    IntegerField,
    Model,
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
    timezone_offset = CharField(default="")  # TimezoneOffsetFromUTC, a QIDO default (PS3.18 Table 10.6.1-5)
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
    pps_start_date = CharField(default="")  # PerformedProcedureStepStartDate/Time: QIDO defaults
    pps_start_time = CharField(default="")
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
    bits_allocated = IntegerField(null=True)  # a QIDO default
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


class WorklistItem(BaseModel):
    """One scheduled order: a Requested Procedure with its one Scheduled Procedure Step, and the
    patient (or animal and owner) it is for, as the Modality Worklist answers it (``worklist.py``)."""

    state = CharField(default="SCHEDULED", index=True)  # worklist.STATES
    patient_name = CharField(default="")
    patient_name_norm = CharField(default="", index=True)
    patient_id = CharField(default="", index=True)
    birth_date = CharField(default="")
    sex = CharField(default="")
    species = CharField(default="")
    breed = CharField(default="")
    responsible_person = CharField(default="")
    responsible_person_role = CharField(default="")
    responsible_organization = CharField(default="")
    accession = CharField(default="", index=True)
    requested_procedure_id = CharField(default="")
    requested_procedure_description = CharField(default="")
    step_id = CharField(default="")
    modality = CharField(default="")
    station_aet = CharField(default="")
    start_date = CharField(default="", index=True)
    start_time = CharField(default="")
    step_description = CharField(default="")
    performing_physician = CharField(default="")
    referring_physician = CharField(default="")
    study_uid = CharField(unique=True)  # made with the item: the images the modality sends carry it
    placer_order = CharField(default="", index=True)  # for HL7 orders (ORC-2/OBR-2, ORC-3/OBR-3)
    filler_order = CharField(default="", index=True)
    created_at = FloatField()
    updated_at = FloatField()


class PerformedStep(BaseModel):
    """A Modality Performed Procedure Step (MPPS, PS3.4 F) a modality reported: what it did for
    an order (``worklist``, None for a step done without one) or a study (``performed.py``)."""

    sop_uid = CharField(unique=True)  # the MPPS SOP Instance UID: N-SETs name it
    state = CharField(default="IN PROGRESS")  # IN PROGRESS, COMPLETED, DISCONTINUED
    worklist = ForeignKeyField(WorklistItem, null=True, backref="performed", on_delete="SET NULL")
    study_uid = CharField(default="", index=True)
    accession = CharField(default="")
    calling_ae = CharField(default="")
    station_aet = CharField(default="")  # Performed Station AE Title
    modality = CharField(default="")
    description = CharField(default="")
    start_date = CharField(default="")
    start_time = CharField(default="")
    end_date = CharField(default="")
    end_time = CharField(default="")
    series = TextField(default="[]")  # JSON: [{series_uid, description, images}] the modality made
    reason = CharField(default="")  # the Discontinuation Reason's code meaning (or value)
    created_at = FloatField()
    updated_at = FloatField()


class Meta(BaseModel):
    """Small persistent state: schema version, cursors."""

    key = CharField(primary_key=True)
    value = TextField()


MODELS = (
    Patient,
    Study,
    Series,
    Instance,
    Change,
    FileRemoval,
    Superseded,
    Incident,
    WorklistItem,
    PerformedStep,
    Meta,
)
CONTENT_MODELS = (Instance, Series, Study, Patient)
