"""Settings of gas ingestion (``[gas.ingest]``): broker, batching, retention, HTTP push sources."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field


class PushSourceSettings(BaseModel):
    """One platform allowed to push to ``/api/v1/gas/push/{source}``.

    It proves itself with ``token`` (header ``X-CunAn-Push-Token``) or with an HMAC-SHA256 of
    the body under ``hmac_secret`` (header ``X-CunAn-Signature: sha256=<hex>``); with both set,
    either is accepted. A source with neither is refused.
    """

    format: Literal["ctwing"] = "ctwing"
    token: str | None = Field(default=None, min_length=16)
    hmac_secret: str | None = Field(default=None, min_length=16)


class GasIngestSettings(BaseModel):
    """Where device messages come from and how long they are kept."""

    #: Subscribe to the broker in ``cunan serve`` (``cunan gas ingest`` runs it on its own).
    mqtt_enabled: bool = False
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = Field(default=1883, ge=1, le=65535)
    #: CunAn's own account on the broker (``cunan gas mosquitto-config`` writes it).
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    #: Fixed, so that the broker keeps the session (and queues messages) while CunAn is down.
    mqtt_client_id: str = Field(default="cunan-gas-ingest", min_length=1, max_length=64)
    #: How long the broker keeps the session of a disconnected CunAn (seconds; MQTT 5).
    mqtt_session_expiry_s: int = Field(default=7 * 24 * 3600, ge=0)
    #: Unacknowledged messages the broker may have in flight to CunAn at once (MQTT 5
    #: receive maximum): acknowledging after storing a batch needs a batch's worth.
    mqtt_receive_maximum: int = Field(default=2000, ge=1, le=65535)
    mqtt_tls: bool = False
    mqtt_ca_file: Path | None = None
    #: Client certificate and key, for brokers that require one.
    mqtt_cert_file: Path | None = None
    mqtt_key_file: Path | None = None
    #: Reconnect backoff: the first wait and the longest (seconds).
    reconnect_min_s: float = Field(default=1.0, gt=0)
    reconnect_max_s: float = Field(default=60.0, gt=0)
    #: Messages stored per transaction, and how long a partial batch waits for more.
    batch_size: int = Field(default=500, ge=1, le=5000)
    batch_wait_ms: int = Field(default=50, ge=0, le=5000)
    #: Raw messages are kept this many days (the minutes keep the history).
    raw_days: int = Field(default=30, ge=1)
    #: Per-minute aggregates are kept this many days (3 years: the compliance history).
    minutes_days: int = Field(default=3 * 366, ge=1)
    #: Rows deleted per transaction by the purge (short transactions beside ingestion).
    purge_chunk: int = Field(default=5000, ge=100)
    #: Platforms allowed to push, by the ``{source}`` name in the URL.
    push_sources: dict[str, PushSourceSettings] = Field(default_factory=dict)
    #: Largest push body accepted (bytes).
    push_max_bytes: int = Field(default=64 * 1024, ge=1024, le=1024 * 1024)
    #: How often the inbox processor looks for new pushes (seconds), and how often a push
    #: whose storing failed (database down) is tried before it is left for an operator.
    push_poll_s: float = Field(default=1.0, gt=0)
    push_max_attempts: int = Field(default=20, ge=1)
