"""The registry's tables: the people and peers Lightbox knows (nodes, users and their sessions,
the audit trail, learned and discovered devices, forwarding rules and their queue).  They live
in the same SQLite index as the archive's content (one file, one writer), beside it."""

from __future__ import annotations

from peewee import BooleanField, CharField, FloatField, ForeignKeyField, IntegerField, TextField

from appliance.archive.index import BaseModel


class Node(BaseModel):
    """A known DICOM peer: a C-MOVE destination and, by policy, who may query and retrieve.

    ``allowed`` is a comma-separated subset of find, move, get, store, commit (see ``nodes.py``)."""

    aet = CharField(unique=True)
    host = CharField()
    port = IntegerField()
    name = CharField(default="")
    allowed = CharField(default="find,move,get,store,commit")
    tls = BooleanField(default=False)  # Lightbox connects to it over DICOM TLS
    tls_trust = TextField(default="")  # PEM: its certificate, or the CA that signs it (both ways)


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
    chain = CharField(default="")  # SHA-256 of the previous event's chain and this event (auditchain.py)


class Device(BaseModel):
    """A device that has associated with Lightbox, learned from its A-ASSOCIATE-RQ (see
    ``devices.py``).  ``status``: new, approved, refused (tried while locked), ignored."""

    aet = CharField(unique=True)
    name = CharField(default="")
    status = CharField(default="new")
    host = CharField(default="")  # last source address, or the one an admin set
    port = IntegerField(null=True)  # its own DICOM port, when known (to C-ECHO it, to send to it)
    allowed = CharField(default="find,move,get,store,commit")
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


class Share(BaseModel):
    """A link that opens one study, read-only, to someone without an account (see ``shares.py``).
    Only the token's SHA-256 is kept, and the PIN's Argon2id hash."""

    token_sha256 = CharField(unique=True)
    study_uid = CharField(index=True)
    created_by = CharField()
    created_at = FloatField()
    expires_at = FloatField()
    pin_hash = CharField(default="")  # "" when the link needs no PIN
    deidentify = BooleanField(default=False)
    secret = CharField(default="")  # de-identification: the seed of its new UIDs and its date shift
    revoked_at = FloatField(null=True)
    revoked_by = CharField(default="")
    uses = IntegerField(default=0)
    pin_failures = IntegerField(default=0)  # in a row; the link locks at shares.MAX_PIN_FAILURES


MODELS = (Node, User, Session, AuditEvent, Device, DiscoveredService, ForwardRule, ForwardJob, Share)
