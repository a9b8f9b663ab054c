"""What the machine spent during a benchmark: CPU seconds per thread, and on CUDA the GPU's
utilisation and memory (``nvidia-ml-py``, when installed).

CPU time per Python thread comes from its POSIX CPU clock (``time.pthread_getcpuclockid``);
threads Python does not know (FFmpeg's decoder threads, torch's and OpenCV's pools) are
reported together as ``native (FFmpeg, torch, OpenCV pools)``: process CPU time minus the
Python threads'.

Example:
    >>> a = cpu_sample()
    >>> b = cpu_sample()
    >>> "MainThread" in cpu_seconds(a, b)
    True
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

NATIVE = "native (FFmpeg, torch, OpenCV pools)"


@dataclass(frozen=True)
class CpuSample:
    at_s: float
    process_s: float
    threads: dict[str, float]
    """Thread name -> CPU seconds so far (threads alive at the sample)."""


def cpu_sample() -> CpuSample:
    threads: dict[str, float] = {}
    for t in threading.enumerate():
        if t.ident is None:
            continue
        try:
            clock = time.pthread_getcpuclockid(t.ident)
            threads[t.name] = threads.get(t.name, 0.0) + time.clock_gettime(clock)
        except (OSError, AttributeError):  # the thread ended meanwhile, or no per-thread clocks here
            continue
    return CpuSample(time.monotonic(), time.process_time(), threads)


def cpu_seconds(a: CpuSample, b: CpuSample) -> dict[str, float]:
    """CPU seconds per thread between two samples (threads in ``b``), plus the native rest."""
    out = {name: max(0.0, s - a.threads.get(name, 0.0)) for name, s in b.threads.items()}
    out[NATIVE] = max(0.0, (b.process_s - a.process_s) - sum(out.values()))
    return out


def cpu_report(a: CpuSample, b: CpuSample) -> dict[str, dict[str, float]]:
    """Per thread group: CPU seconds and cores busy (seconds / wall seconds); source
    threads are summed as ``decode (N sources)``."""
    wall = max(1e-9, b.at_s - a.at_s)
    groups: dict[str, float] = {}
    n_sources = 0
    for name, s in cpu_seconds(a, b).items():
        if name.startswith("source:"):
            n_sources += 1
            name = "decode"
        groups[name] = groups.get(name, 0.0) + s
    if "decode" in groups:
        groups[f"decode ({n_sources} source threads)"] = groups.pop("decode")
    return {name: {"cpu_s": round(s, 3), "cores": round(s / wall, 3)} for name, s in sorted(groups.items())}


@dataclass
class GpuProbe:
    """Samples GPU utilisation and memory on a thread while a run lasts (CUDA + nvml only)."""

    device_index: int = 0
    interval_s: float = 0.25
    util: list[float] = field(default_factory=list)
    mem_used_mb: list[float] = field(default_factory=list)
    error: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> GpuProbe:
        try:
            # only on CUDA machines
            import pynvml

            pynvml.nvmlInit()
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(self.device_index)
            self._nvml = pynvml
        except Exception as e:  # no nvml library, no driver, no GPU: the report says why
            self.error = f"nvidia-ml-py unavailable: {type(e).__name__}: {e}"
            return self
        self._thread = threading.Thread(target=self._run, name="gpu-probe", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.util.append(float(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu))
                self.mem_used_mb.append(self._nvml.nvmlDeviceGetMemoryInfo(self._handle).used / 2**20)
            except Exception as e:  # a failing query ends sampling, never the run
                self.error = f"nvml query failed: {e}"
                return

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        out: dict[str, Any] = {"nvml_error": self.error}
        if self.util:
            out.update(
                util_mean_pct=round(sum(self.util) / len(self.util), 1),
                util_max_pct=max(self.util),
                mem_used_max_mb=round(max(self.mem_used_mb), 1),
                samples=len(self.util),
            )
        return out


def gpu_memory(device: Any) -> dict[str, Any]:
    """torch's view of a CUDA device's memory (peak allocated and reserved), else {}."""
    try:
        # only on CUDA machines
        import torch
    except ImportError:
        return {}
    if getattr(device, "type", str(device)) != "cuda" or not torch.cuda.is_available():
        return {}
    return {
        "name": torch.cuda.get_device_name(device),
        "torch_max_allocated_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1),
        "torch_max_reserved_mb": round(torch.cuda.max_memory_reserved(device) / 2**20, 1),
    }
