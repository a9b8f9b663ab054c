"""The device frame path: decoded YUV planes to the engine's device, colour conversion,
detector pictures and face crops there in torch (docs/design.md, "Frame paths").

Modules: ``colour`` (YUV -> RGB, OpenCV's integer maths), ``resample`` (OpenCV's resize and
warp), ``planes`` (uploads through pinned buffers), ``picture`` (the detector's picture),
``crops`` (face crops), ``path`` (``FramePath``: inline, host or device, chosen once per
pipeline), ``device_path`` (``DeviceFramePath``: the one that uses the modules above),
``hwaccel`` (PyAV hardware decoding with a logged fallback).
"""
