"""DIMSE statuses Lightbox answers with, how archive outcomes map onto them, and how a peer's
C-STORE status counts in a sub-operation."""

from __future__ import annotations

from appliance.archive import Outcome

# C-STORE statuses (PS3.4 Table B.2-1; 0x0110 is the general processing failure of PS3.7 C).
SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
DATASET_MISMATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000
PROCESSING_FAILURE = 0x0110

# Query/Retrieve statuses (PS3.4 Tables C.4-1, C.4-2, C.4-3).
PENDING = 0xFF00
CANCEL = 0xFE00
IDENTIFIER_MISMATCH = 0xA900  # "Identifier does not match SOP Class"
UNABLE_TO_PROCESS = 0xC000
SUB_OPERATIONS_FAILED = 0xA702  # "Refused: Out of Resources - Unable to perform sub-operations"
MOVE_DESTINATION_UNKNOWN = 0xA801
SOME_SUB_OPERATIONS_FAILED = 0xB000  # "Sub-operations Complete - One or more Failures or Warnings"

# Normalized (N-CREATE, N-SET, N-ACTION) statuses (PS3.7 Annex C): MPPS's and Storage
# Commitment's refusals.
INVALID_ATTRIBUTE_VALUE = 0x0106
DUPLICATE_SOP_INSTANCE = 0x0111
NO_SUCH_SOP_INSTANCE = 0x0112  # "No such object instance"
INVALID_ARGUMENT = 0x0115
MISSING_ATTRIBUTE = 0x0120
NO_SUCH_ACTION = 0x0123
RESOURCE_LIMITATION = 0x0213

STATUS_FOR_OUTCOME = {
    Outcome.STORED: SUCCESS,
    Outcome.ALREADY_PRESENT: SUCCESS,
    Outcome.DUPLICATE_KEPT_FIRST: SUCCESS,
    Outcome.REPLACED: SUCCESS,
    Outcome.REFUSED_UNREADABLE: CANNOT_UNDERSTAND,
    Outcome.REFUSED_INVALID: CANNOT_UNDERSTAND,
    Outcome.REFUSED_MISMATCH: DATASET_MISMATCH,
    Outcome.OUT_OF_RESOURCES: OUT_OF_RESOURCES,
    Outcome.FAILED: PROCESSING_FAILURE,
}


def is_warning(status: int) -> bool:
    """A Warning status (PS3.7 Annex C: 0001, 0107, 0116, Bxxx).  From a storage SCP (PS3.4
    B.2.3: B000 elements coerced, B006 elements discarded, B007 not matching the SOP class) it
    means the instance was stored: a warning sub-operation (PS3.4 C.4.2.1.5, C.4.3.1.5)."""
    return status in (0x0001, 0x0107, 0x0116) or 0xB000 <= status <= 0xBFFF
