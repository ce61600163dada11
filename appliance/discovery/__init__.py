"""LAN discovery: DNS-SD announce and browse (zeroconf)."""
