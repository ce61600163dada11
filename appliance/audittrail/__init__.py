"""The audit trail leaving the box: DICOM audit messages (PS3.15 A.5) over syslog to the
clinic's collector (``exporter``), and the retention.  The trail itself, with its hash chain,
is the archive's (``appliance.archive``: ``archive.audit``)."""
