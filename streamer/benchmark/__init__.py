"""``streamer bench``'s pipeline mode: synthetic workloads (``workload``, ``truth``), measured
runs (``runner``, ``probes``), sweeps (``sweep``), reports (``report``, ``command``) and the
GPU proof's summary (``proof``). docs/BENCHMARKS.md shows what they measured.
"""
