"""Presentation states (PS3.3 A.33): how a set of images is to be shown, kept as DICOM.

``description``: the JSON the viewer sends and gets back, validated with bounds.
``making``: a description and the referenced images -> a Grayscale (or Color) Softcopy
Presentation State dataset.  ``reading``: any presentation state file -> the same JSON.
``saving``: made, stored through the archive's ingest, listed per series.
"""
