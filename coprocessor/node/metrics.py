"""What operators watch: Prometheus metrics of one node (`node --metrics-port`)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .journal import Journal, State

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class _RequestsByState(Collector):
    """`coprocessor_requests{state}`, read from the journal at each scrape."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("coprocessor_requests", "Requests in the journal by state.", labels=["state"])
        counts = self.journal.counts()
        for state in State:
            family.add_metric([state.value], counts.get(state.value, 0))
        yield family


class NodeMetrics:
    """The node's metrics, in a registry of their own (several nodes can share one process in tests)."""

    def __init__(self, journal: Journal) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_RequestsByState(journal))
        r = self.registry
        self.stage_seconds = Histogram(
            "coprocessor_stage_seconds",
            "Time per stage: intake (one head's scan), queued (seen to claimed), enclave (one run), mined (sent to receipt).",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "coprocessor_batch_size", "Items per mined fulfil transaction.", buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r
        )
        self.gas_per_item = Histogram(
            "coprocessor_gas_per_item",
            "Gas used per item of a mined fulfil transaction, callbacks included.",
            buckets=(10_000, 20_000, 40_000, 60_000, 100_000, 200_000, 500_000, 1_000_000),
            registry=r,
        )
        self.enclave_queue = Gauge("coprocessor_enclave_queue_depth", "Claimed requests waiting for an enclave run.", registry=r)
        self.in_flight = Gauge("coprocessor_transactions_in_flight", "Node transactions sent and not yet mined.", registry=r)
        self.key_active = Gauge("coprocessor_enclave_key_active", "1 while the enclave key is registered and usable.", registry=r)
        self.head = Gauge("coprocessor_head_block", "The latest block the intake processed.", registry=r)
        self.errors = Counter("coprocessor_errors", "Errors by stage or kind.", ["kind"], registry=r)

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Serves `/metrics` over HTTP in a background thread; returns the bound port."""
        server, _ = start_http_server(port, addr=host, registry=self.registry)
        return int(server.server_port)
