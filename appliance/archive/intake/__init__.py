"""The one way in: every dataset, from any door, becomes a stored file and an index row here.

- ``ingest``: ``Ingest(path, origin)`` — read the header (never the pixels), validate, store
  (fsync file and folder), index in one committed transaction, and only then report success;
  ``Ingest.batch`` the same for several at once, with one commit (STOW-RS's group commit).
- ``header``: reading a file's header; the stored file's own meta header (who sent it).
- ``validate``: what a dataset must satisfy (usable UIDs, no deflate, identity present).
- ``attributes``: a header's values for the index, level by level.
- ``charset``: decoding text in the declared character set (and the usual lies), name folding.
- ``indexing``: the row writes ingest, rebuild and corrections share (counts kept right).
- ``importer``: files, folders, zips and DICOMDIR media, through ``ingest``.
"""
