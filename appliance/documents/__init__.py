"""Instances that are read, not looked at: encapsulated documents (PDF, CDA, STL, OBJ, MTL) and
structured reports.  Header parsing only; nothing here knows about the web."""
