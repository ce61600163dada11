"""Files a clinic adds to a study: a referral letter (PDF), photos (JPEG, PNG, BMP), videos.

Each becomes a DICOM instance in a new series of the study, with the patient's and study's
attributes copied (``appliance.made.identity``), stored through the archive's ingest
(``appliance.made.storing``) like any received instance.  ``kinds`` tells what a file is from
its first bytes, ``document``, ``photo`` and ``video`` make the instance of each kind, ``series``
the attributes they share, ``attach`` is the one entry point the doors (web, CLI) call.
"""
