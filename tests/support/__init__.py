"""Helpers the tests share: the real processes they talk to and the data they send.

tools      DCMTK and other tools by path; a missing one skips (fails in CI)
ports      free ports, waiting for a listener
netns      a private network namespace for peers that cannot bind to 127.0.0.1 only
lightbox   `lightbox serve` as a process (LightboxProcess, running)
dicomgen   small synthetic DICOM files;  imagegen  images with palettes, overlays, gradients
mediagen   videos, PDFs and reports;     render    our rendering against DCMTK's
scu        a pynetdicom SCU and read-only index queries
qr         DCMTK query/retrieve: findscu, movescu to a storescp, nodes added with the CLI
peers      DCMTK storescp and Orthanc;   mdns_peer another mDNS host (run as a script)
web        an HTTP client of the web UI, the first admin, test studies
browser    the system Chromium through Playwright, and page helpers
s3servers  moto's and SeaweedFS's S3 on 127.0.0.1 (bench/backup.py uses them too)
backupbox  a data folder and the `lightbox backup`/`restore` commands run on it
waiting    polling for a condition with a deadline

Fixtures live in tests/conftest.py; test files import these modules as `support.<name>`.
"""
