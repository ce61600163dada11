"""Encrypted off-site backup to an S3-compatible bucket: age encryption on the box (crypto),
the bucket (target), incremental runs following the change log (sync), verification (verify),
restore on a new box (restore), set-up and the recovery sheet (setup), the service's loop
(schedule), status as plain data (status), and the bucket's client in a child process, so that
boto3 never loads where the work is done (bucket; ``python -m appliance.backup``)."""
