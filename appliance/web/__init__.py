"""The HTTP front door: a bottle app served by waitress; pages rendered on the server from
``webui/templates`` with a JSON twin under ``/api/`` for each, plain JS from ``webui/static``.

- ``app``: assembles the routes (each module's ``install``), security headers, error pages.
- ``auth``, ``backoff``, ``accounts``: login, sessions, CSRF and Origin checks, roles, setup.
- ``studies``, ``contents``, ``corrections``: the study list and page, what each instance is,
  delete/fix identity/merge.
- ``frames``, ``video``, ``documents``, ``ranges``: pixels, videos, PDFs and reports; Range.
- ``downloads``: ZIP with DICOMDIR, streamed.
- ``admin``, ``devices``, ``backup``: the admin pages.
- ``https``, ``tls``: HTTPS as the admin sets it (redirects, HSTS, the certificate's fingerprint),
  and TLS done inside waitress's event loop; ``connections``: bounds on connections.
- ``display``, ``templates``: how values read for people; rendering.
"""
