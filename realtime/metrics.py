"""The socket count on /metrics, added to the observability registry at start."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import redis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from realtime.connections import count_open_connections

logger = logging.getLogger(__name__)


class WebSocketCollector(Collector):
    def collect(self) -> Iterable[GaugeMetricFamily]:
        try:
            count = count_open_connections()
        except redis.RedisError:
            # neonhub_metrics_source_up{source="redis"} already says why.
            logger.warning("Metrics could not count WebSocket connections", exc_info=True)
            return
        yield GaugeMetricFamily(
            "neonhub_websocket_connections",
            "Open WebSocket connections on all web processes.",
            value=count,
        )
