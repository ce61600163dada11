"""The DIMSE front door: pynetdicom server and handlers that call the archive."""
