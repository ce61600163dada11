"""Answers from the index, never from the files.

- ``query``: DICOM matching (PS3.4 C.2.2.2) compiled to SQL, for C-FIND.
- ``browse``: the web UI's study list (search as you type, filters, pages) and study details.
- ``retrieval``: the instances a C-MOVE or C-GET identifier names.
- ``lookup``: an instance's or a series' display facts (the viewer, thumbnails).
- ``media``: a study or series as DICOM media (names, DICOMDIR) for ZIP downloads.
- ``changes``: the change log for its followers (backup), with cursors kept in the index.
- ``kinds``: what an instance is for people (image, video, PDF, report), from its SOP class.
- ``rows``: ``InstanceFile``, the row everyone who sends or copies a stored file uses.
- ``sqlite``: this room's SQLite-only SQL (the FTS5 search, GLOB, JSON items).
"""
