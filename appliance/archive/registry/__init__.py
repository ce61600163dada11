"""People and peers: who may do what, and what happened.

- ``models``: the registry's tables (in the same index file as the content).
- ``users``: accounts (Argon2id), roles, sessions.
- ``audit``: the audit trail (event types after DICOM PS3.15 A.5).
- ``nodes``: known DICOM peers (C-MOVE destinations, who may query and retrieve).
- ``devices``: devices learned from their associations, the device policy, quirks.
- ``discovered``: DICOM services announced on the LAN (DNS-SD).
- ``access``: what a device may do now, under the policy (for the Devices page).
- ``forwarding``: rules and the persistent retry queue that sends stable studies on.
"""
