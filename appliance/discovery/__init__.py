"""LAN discovery: DNS-SD announce and browse (zeroconf), and the learned devices' operations."""
