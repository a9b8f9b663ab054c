"""The trainer's benchmarks: the head fit (``fitting.py``, ``trainer bench-fit``) and
feature extraction with the real architectures (``extraction.py``, ``trainer bench-extract``).
The service's and the engine's benchmarks are in ``streamer/benchmark/``; these time trainer
code, which the streamer layer may not import."""
