"""FFmpeg's protocol whitelist: a source cannot pivot to another protocol (a network stream
to file:, concat:, subfile:, a local file to the network)."""

from __future__ import annotations

from cunan.capture.sources import SourceConfig, resolve_source


def test_every_kind_of_source_gets_its_whitelist() -> None:
    expected = {
        "rtsp://192.0.2.1/s": "rtsp,rtp,srtp,udp,tcp",
        "rtsps://192.0.2.1/s": "rtsps,rtsp,rtp,srtp,udp,tcp,tls",
        "http://192.0.2.1/v.mjpg": "http,https,tcp,tls,crypto",
        "/srv/a.mp4": "file",
    }
    for url, whitelist in expected.items():
        spec = resolve_source(SourceConfig(url, extra_options={"protocol_whitelist": "all"}))
        assert spec.options["protocol_whitelist"] == whitelist  # no extra option widens it
