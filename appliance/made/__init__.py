"""Instances Lightbox makes itself in a study (presentation states, attachments, reports).

``identity``: the patient's and study's attributes, copied from a stored instance of the study.
``storing``: a made dataset handed to the archive's ingest like any received file (so it is
indexed, in the change log, forwarded, backed up and found by C-FIND like any instance).
"""
