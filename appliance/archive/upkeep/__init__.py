"""Keeping storage and index true to each other, and the explicit changes an admin makes.

- ``maintenance``: verify every file's hash, rebuild the index from the files, reconcile the
  two at start-up (orphans indexed, vanished files recorded).
- ``restore``: putting a backed-up index and files in place on a new box.
- ``corrections``: delete a study, series or instance; fix a patient's identity or merge two
  patients (files rewritten under the same UIDs, originals kept until backed up).
- ``rewrite``: a stored file with some attributes changed, streamed, byte for byte elsewhere.
"""
