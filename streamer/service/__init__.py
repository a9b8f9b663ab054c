"""The running service around the pipeline: its one assembly, the control requests that
change it while it runs (``control.py``) and its Prometheus metrics and health
(``metrics.py``)."""
