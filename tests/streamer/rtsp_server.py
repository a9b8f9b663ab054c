"""A real RTSP server for tests: GStreamer's gst-rtsp-server serving one H.264 MP4 file.

Run it under Debian's ``/usr/bin/python3`` (it has ``gi``), not the project's Python:

    /usr/bin/python3 tests/streamer/rtsp_server.py clip.mp4 --port 0 [--loop] [--auth USER:PASSWORD]

It serves ``rtsp://127.0.0.1:PORT/test`` and prints ``READY <port>`` on stdout once it
answers. ``--port 0`` picks a free port. Every client gets its own pipeline, so the file
plays from the start for each (re)connection; with ``--loop`` it also restarts at its end
(segment seeks), so one client sees an endless stream. With ``--auth`` only that user may
play it (HTTP Basic; anyone else gets 401 Unauthorized).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def _launch_line(path: str) -> str:
    location = path.replace("\\", "\\\\").replace('"', '\\"')
    return f'( filesrc location="{location}" ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )'


def _loop_media(_factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia) -> None:
    """Make one client's pipeline restart the clip at its end (segment seeks)."""

    def seek(pipeline: Gst.Element) -> None:
        # Not FLUSH: the running time keeps going, so RTP timestamps stay monotonic.
        pipeline.seek(1.0, Gst.Format.TIME, Gst.SeekFlags.SEGMENT, Gst.SeekType.SET, 0, Gst.SeekType.NONE, -1)

    def seek_soon(pipeline: Gst.Element) -> None:
        # Not from the main loop or a streaming thread: a seek holds the pipeline's state lock
        # while it waits for the streaming thread, so there it can deadlock the server.
        threading.Thread(target=seek, args=(pipeline,), daemon=True).start()

    def on_sync_message(_bus: Gst.Bus, message: Gst.Message, pipeline: Gst.Element) -> None:
        if message.type == Gst.MessageType.SEGMENT_DONE:
            seek_soon(pipeline)
        elif message.type == Gst.MessageType.STATE_CHANGED and message.src == pipeline:
            # The client's PLAY does its own (non-segment) seek while the pipeline is paused,
            # so the first segment seek must wait until the pipeline really plays.
            new_state = message.parse_state_changed()[1]
            if new_state == Gst.State.PLAYING and not getattr(pipeline, "_looping", False):
                pipeline._looping = True
                seek_soon(pipeline)

    def on_prepared(media: GstRtspServer.RTSPMedia) -> None:
        pipeline = media.get_element().get_parent()
        bus = pipeline.get_bus()
        bus.enable_sync_message_emission()
        bus.connect("sync-message", on_sync_message, pipeline)

    media.connect("prepared", on_prepared)


def _require_basic_auth(
    server: GstRtspServer.RTSPServer, factory: GstRtspServer.RTSPMediaFactory, user: str, password: str
) -> None:
    """Only ``user:password`` may open the media (others get 401 Unauthorized)."""
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    server.set_auth(auth)
    permissions = GstRtspServer.RTSPPermissions()
    permissions.add_role_from_structure(
        Gst.Structure.new_from_string("user,media.factory.access=(boolean)true,media.factory.construct=(boolean)true")
    )
    factory.set_permissions(permissions)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", help="H.264 MP4 file to serve")
    parser.add_argument("--port", type=int, default=0, help="TCP port (0 = any free port)")
    parser.add_argument("--loop", action="store_true", help="restart the clip at its end")
    parser.add_argument("--auth", metavar="USER:PASSWORD", help="require HTTP Basic authentication")
    args = parser.parse_args(argv)

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(_launch_line(args.clip))
    factory.set_shared(False)
    if args.loop:
        factory.connect("media-configure", _loop_media)
    if args.auth:
        _require_basic_auth(server, factory, *args.auth.split(":", 1))
    server.get_mount_points().add_factory("/test", factory)
    if server.attach(None) == 0:
        print(f"ERROR cannot listen on 127.0.0.1:{args.port}", flush=True)
        return 1
    print(f"READY {server.get_bound_port()}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
