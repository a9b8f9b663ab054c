"""ZeroMQ plumbing every served or client socket goes through: CurveZMQ (``security.py``),
the one context of a process and the only maker of its sockets (``sockets.py``), the
request/reply endpoints (``endpoints.py``) and topics, stream ids and payload encodings
(``wire.py``, light: the subscriber imports it)."""
