"""Recorded videos to tables and a report (``streamer analyze``, ``streamer.analyze``):
the pipeline run over files (``runner``), its output gathered in the process (``collect``),
DataFrames written as Parquet and CSV (``tables``), the HTML report (``report``), the inputs
and the manifest (``files``), progress bars (``progress``) and the Python API (``api``).
"""
