"""Capture test fixtures: the real RTSP servers of tests/capture/rtsp_server.py."""

from tests.capture.rtsp_server import gst_rtsp_server, perl_rtsp_server, rtsp_video

__all__ = ["gst_rtsp_server", "perl_rtsp_server", "rtsp_video"]
