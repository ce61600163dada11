"""The clinic's own report on a study, kept as DICOM Basic Text SR (PS3.3 A.35.1).

``text``: the report text as the editor sends it, checked (size, control characters).
``making``: text, author and status -> a Basic Text SR dataset with the study's identity.
``keeping``: a study's report versions in the archive: drafts replaced, finals kept and amended.
"""
