"""The HTTP front door: bottle app (pages, JSON API, DICOMweb later), served by waitress."""
