"""The archive: the core every other part of Lightbox goes through.

Rooms (dependencies point down this list, never up):

- ``index.py``, ``storage.py``, ``writelock.py``: the SQLite index's content tables, the
  content-addressed storage area, the single-writer lock.
- ``intake/``: the one way in. ``ingest`` (header, validate, store, index; acknowledge only
  what is safe), ``importer`` (folders, zips, DICOMDIR media), character sets.
- ``reading/``: answers from the index. C-FIND matching (``query``), the web's study list
  (``browse``), what to retrieve, DICOMDIR media, display lookups, the change log for followers.
- ``registry/``: people and peers. Users and sessions, the audit trail, nodes, learned and
  discovered devices, forwarding; its tables in ``registry/models.py``.
- ``upkeep/``: keeping storage and index true. Verify, rebuild, reconcile, restore; deleting
  and correcting (patient identity edits and merges).

Public API — outside code imports only from here:

- ``Archive(data_dir, ArchiveOptions)``: the facade; a context manager (``close()`` on exit).
  Its tables: ``.users``, ``.sessions``, ``.audit``, ``.nodes``, ``.devices``,
  ``.discovered``, ``.forwarding``, ``.corrections``, ``.site``, ``.worklist`` (scheduled
  orders: ``worklist.py``), ``.performed`` (steps modalities performed, MPPS: ``performed.py``);
  its storage: ``.storage``.
- Performed steps (MPPS): ``PerformedStepError``, ``DuplicateStep``, ``NoSuchStep``, ``FinalStep``,
  ``PERFORMED_STATES``.
- Worklist: ``WorklistError``, ``WORKLIST_STATES``, ``WORKLIST_FIELDS``; for the MWL SCP
  ``STEP_SEQUENCE`` and ``STEP_KINDS`` (the Scheduled Procedure Step item's keys).
- Intake: ``Origin``, ``IngestResult``, ``Outcome``, ``Spooled``, ``Received`` (one dataset of
  ``archive.ingest.batch``); the stored meta header (``IMPLEMENTATION_CLASS_UID``, ``IMPLEMENTATION_VERSION_NAME``, ``build_meta``,
  ``encode_meta``, ``dataset_offset``, ``part10_meta``); ``REFUSED_SYNTAXES``; ``charset`` (decoding text).
- Reading: ``StudyFilter``, ``BrowseError``; ``QueryError``, ``TooManyMatches``, ``QUERY_KEYS``
  and ``QUERY_LEVELS`` (what matching knows, by keyword and level),
  ``ITEM_KEYS``; ``LEVEL_KEYS``, ``InstanceFile``; ``InstanceEntry``; ``MediaFile``,
  ``dicomdir``; ``kinds``; the change log's kinds (``STORED_KINDS``, ``REMOVED_KINDS``,
  ``SUPERSEDED_KIND``, ``REBUILT_KIND``).
- Registry: ``audit`` (event names, outcomes); ``Account``, ``UserError``, ``MIN_PASSWORD``, ``prepare_logins``;
  ``DicomNode``, ``NodeTable``, ``NodeError``, ``OPERATIONS``, ``parse_operations``, ``may``;
  ``AssociationSeen``, ``LearnedDevice``, ``DeviceError``, ``NoPort``, ``POLICIES``,
  ``device_access``; ``FoundService``; ``Rule``, ``Job``, ``SendResult``, ``ForwardError``;
  ``Site``, ``SiteError``, ``time_zones`` (the clinic's name, time zone, AE title), ``HttpsPolicy``.
- Upkeep: ``CorrectionError``, ``Identity``, ``DELETABLE_LEVELS``; ``RestoreError``,
  ``install_index``.
- Storage: ``Storage``, ``CHUNK``; ``BoundedSpool`` (a received dataset written as it arrives, bounded); ``make_private`` (an SQLite file readable by its owner alone), ``disk_full`` (an error that
  says so).
"""

from appliance.archive.facade import Archive, ArchiveOptions
from appliance.archive.index import ITEM_KEYS
from appliance.archive.intake import charset
from appliance.archive.intake.header import (
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    Origin,
    build_meta,
    dataset_offset,
    encode_meta,
    part10_meta,
)
from appliance.archive.intake.ingest import IngestResult, Outcome, Received, Spooled
from appliance.archive.intake.validate import REFUSED_SYNTAXES
from appliance.archive.performed import PERFORMED_STATES, DuplicateStep, FinalStep, NoSuchStep, PerformedStepError
from appliance.archive.reading import kinds
from appliance.archive.reading.browse import BrowseError, StudyFilter
from appliance.archive.reading.changes import (
    REBUILT_KIND,
    REMOVED_KINDS,
    STORED_KINDS,
    SUPERSEDED_KIND,
)
from appliance.archive.reading.lookup import InstanceEntry
from appliance.archive.reading.media import MediaFile, dicomdir
from appliance.archive.reading.query import KEYS as QUERY_KEYS
from appliance.archive.reading.query import LEVELS as QUERY_LEVELS
from appliance.archive.reading.query import QueryError, TooManyMatches
from appliance.archive.reading.retrieval import LEVEL_KEYS
from appliance.archive.reading.rows import InstanceFile
from appliance.archive.reading.worklist import ITEM_KINDS as STEP_KINDS
from appliance.archive.reading.worklist import STEP_SEQUENCE
from appliance.archive.registry import audit
from appliance.archive.registry.access import device_access
from appliance.archive.registry.devices import (
    POLICIES,
    AssociationSeen,
    DeviceError,
    LearnedDevice,
    NoPort,
)
from appliance.archive.registry.discovered import FoundService
from appliance.archive.registry.forwarding import ForwardError, Job, Rule, SendResult
from appliance.archive.registry.nodes import (
    OPERATIONS,
    DicomNode,
    NodeError,
    NodeTable,
    may,
    parse_operations,
)
from appliance.archive.registry.shares import ShareError, ShareLink
from appliance.archive.registry.site import HttpsPolicy, Site, SiteError, time_zones
from appliance.archive.registry.users import (
    MIN_PASSWORD,
    Account,
    UserError,
    prepare_logins,
)
from appliance.archive.spool import BoundedSpool
from appliance.archive.sqlite import disk_full, make_private
from appliance.archive.storage import CHUNK, Storage
from appliance.archive.upkeep.corrections import (
    DELETABLE_LEVELS,
    CorrectionError,
    Identity,
)
from appliance.archive.upkeep.restore import RestoreError, install_index
from appliance.archive.worklist import FIELDS as WORKLIST_FIELDS
from appliance.archive.worklist import STATES as WORKLIST_STATES
from appliance.archive.worklist import WorklistError

__all__ = [
    "Archive", "ArchiveOptions",
    "IMPLEMENTATION_CLASS_UID", "IMPLEMENTATION_VERSION_NAME", "IngestResult", "Origin", "Outcome", "REFUSED_SYNTAXES",
    "Received",
    "Spooled", "build_meta", "charset", "dataset_offset", "encode_meta", "part10_meta",
    "BrowseError", "ITEM_KEYS", "InstanceEntry", "InstanceFile", "LEVEL_KEYS", "MediaFile", "QUERY_KEYS", "QUERY_LEVELS", "QueryError", "REBUILT_KIND",
    "REMOVED_KINDS", "STORED_KINDS", "SUPERSEDED_KIND", "StudyFilter", "TooManyMatches", "dicomdir", "kinds",
    "MIN_PASSWORD", "OPERATIONS", "POLICIES", "Account", "AssociationSeen", "DeviceError", "DicomNode", "ForwardError",
    "FoundService", "Job", "LearnedDevice", "NoPort", "NodeError", "NodeTable", "Rule", "SendResult", "UserError", "audit",
    "device_access", "may", "parse_operations", "prepare_logins", "HttpsPolicy", "ShareError", "ShareLink", "Site", "SiteError",
    "time_zones",
    "DELETABLE_LEVELS", "CorrectionError", "Identity", "RestoreError", "install_index",
    "BoundedSpool", "CHUNK", "Storage", "disk_full", "make_private",
    "STEP_KINDS", "STEP_SEQUENCE", "WORKLIST_FIELDS", "WORKLIST_STATES", "WorklistError",
    "PERFORMED_STATES", "DuplicateStep", "FinalStep", "NoSuchStep", "PerformedStepError",
]  # fmt: skip
