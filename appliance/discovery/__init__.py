"""LAN discovery: announcing Lightbox (DNS-SD ``_dicom._tcp``, ``_http._tcp``) and browsing the
DICOM services others announce (``lan``, ``dnssd``), recorded in the registry."""
