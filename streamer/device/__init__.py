"""The device frame path: decoded YUV planes to the engine's device, colour conversion,
detector pictures and face crops there in torch (docs/design.md, "Frame paths").

Modules: ``colour`` (YUV -> RGB, OpenCV's integer maths), ``resample`` (OpenCV's resize and
warp), ``planes`` (uploads through pinned buffers), ``picture`` (the detector's picture),
``crops`` (face crops), ``path`` (``FramePath``: which of it the pipeline uses),
``hwaccel`` (PyAV hardware decoding with a logged fallback).
"""
