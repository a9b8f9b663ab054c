"""ZeroMQ plumbing every served or client socket goes through: CurveZMQ (``security.py``),
socket construction (``sockets.py``), the request/reply endpoints (``endpoints.py``) and
topics and payload encodings (``wire.py``, light: the subscriber imports it)."""
