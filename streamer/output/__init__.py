"""What leaves the pipeline: the messages (``messages.py``, against ``streamer/schemas``),
the publishers (``publisher.py``: ZeroMQ or JSON lines), the state board late joiners read
(``state.py``) and the annotated preview video (``preview.py``)."""
