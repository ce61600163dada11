"""The DIMSE front door: Lightbox's own DICOM upper layer, its table of services, which call the
archive, and the SCU side that sends to peers.

The door, from the socket in:

- ``workers.py``: forked worker processes sharing the DICOM ports; ``options.py``: their settings.
- ``acceptor.py``: the ports: socket timeout and TCP_NODELAY, the association cap, the
  A-ASSOCIATE-RQ read whole; ``admission.py``: the device policy (A-ASSOCIATE-RJ).
- ``pdu.py``: upper-layer PDUs; ``link.py``: one end of an association on the wire
  (``read_command``, ``read_dataset``, ``send``); ``dimse.py``: command sets and responses.
- ``association.py``: one association: negotiates (``negotiation.py``, ``policy.py``: who may
  query and retrieve), reads each request, receives its dataset, calls its service, sends the
  final response; it is the services' ``ServiceContext``.
- ``services.py``: the table of services (C-ECHO, C-STORE, C-FIND, C-MOVE, C-GET, worklist,
  MPPS, storage commitment, each a row); ``context.py``: what a service is given
  (``Request``, ``ServiceContext``) and gives back (``Final``); ``syntaxes.py``: the rows'
  abstract and transfer syntaxes.
- ``incoming.py``: a request's dataset as it arrives (an identifier or an MPPS dataset, in memory);
  ``spool.py``: a C-STORE's, in a file.
- The services: ``store.py``, ``find.py`` (its answers encoded by ``encoding.py``),
  ``retrieve.py`` (C-MOVE, C-GET), ``worklist.py``, ``mpps.py`` (N-CREATE, N-SET); C-ECHO's
  is a line in ``services.py``.
  ``status.py``: the named statuses they answer with.

The SCU side: ``sender.py``, the one loop of C-STORE sub-operations (C-MOVE, C-GET and
forwarding) and its counts; ``requestor.py``, an association to a peer; ``outgoing.py``, each
instance in a syntax the peer accepted; ``scu.py``, C-ECHO of nodes and devices; ``probe.py``, the
service's C-ECHO of its own ports (its health rounds).

A C-STORE: ``Association.run`` accepts the storage class's context (``negotiation.negotiate``:
the ``store`` row); ``Link.read_command`` reads the C-STORE-RQ; the row's ``store.spool`` opens
a ``BoundedSpool`` beginning with the meta header to be stored; ``Link.read_dataset`` streams
every PDV into it, hashed on the way; ``store.serve`` calls ``archive.ingest`` and returns the
status of its outcome; the association sends it (``dimse.response``) only then.

A C-FIND: negotiation accepts the Find context if ``policy`` lets the calling AE find; the
C-FIND-RQ's identifier is read into memory (``incoming.identifier``) and parsed; ``find.serve``
matches it with ``archive.find`` and sends a pending response per match (``respond``, batched;
``encoding.py``), looking for a C-CANCEL between them (``cancelled``); its ``Final`` (Success,
Cancel or a refusal) is the last response.
"""
