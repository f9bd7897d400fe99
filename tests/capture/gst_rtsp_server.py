"""Tiny GStreamer RTSP server for the capture tests; run it with Debian's /usr/bin/python3."""

# This file is launched as a separate process by tests/capture/rtsp_server.py, under Debian's
# interpreter because the GStreamer bindings (python3-gi, gir1.2-gst-rtsp-server-1.0) exist only
# there. It must not import anything from cunan or pytest.
from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/cam1")
    parser.add_argument("--file", required=True, help="an MP4 file with one H.264 video track")
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    location = args.file.replace("\\", "\\\\").replace('"', '\\"')
    factory.set_launch(
        f'( filesrc location="{location}" ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 '
        "config-interval=1 )"
    )
    # Each client gets its own pipeline from the start of the file. The default transports
    # already include UDP, UDP multicast and TCP-interleaved.
    factory.set_shared(False)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print("cannot attach the RTSP server", file=sys.stderr, flush=True)
        return 1
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"READY rtsp://127.0.0.1:{args.port}{args.path}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
