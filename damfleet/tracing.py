"""OpenTelemetry tracing: one trace per asset across the client and the five pools.

Off by default (``DAMFLEET_TRACING=off``): nothing here imports OpenTelemetry until tracing
is asked for, so ``damfleet --help`` and workers without the ``tracing`` extra pay nothing.

With ``DAMFLEET_TRACING=otlp`` every Temporal client damfleet builds (:func:`damfleet.temporal.connect`,
used by the CLI, the SDK and every worker) carries the SDK's
:class:`temporalio.contrib.opentelemetry.TracingInterceptor`. A worker built on that client
inherits it, so the client's ``StartWorkflow:AssetPipeline`` span is the root, the pipeline
worker's ``RunWorkflow``/``StartActivity`` spans and each activity pool's ``RunActivity`` span
are its descendants: the span context travels in the Temporal headers of every workflow and
activity task, not in the payloads. Inside activities, :func:`span` marks the heavy steps
(an ffmpeg encode, a whisper pass, a delivery to one target).

Where spans go is the OpenTelemetry SDK's own configuration, read from the standard
variables: ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (an
OTLP/HTTP collector: Jaeger, Grafana Tempo, an OpenTelemetry Collector),
``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_SERVICE_NAME`` (default ``damfleet-<pool>``),
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``/``_ARG``, ``OTEL_BSP_*``.
A process that already installed an SDK tracer provider (``opentelemetry-instrument``, an
application embedding damfleet's client) keeps it: damfleet adds no second exporter.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from damfleet.errors import ConfigurationError

__all__ = ["TRACING_MODES", "client_interceptors", "configure", "enabled", "flush", "span"]

#: ``DAMFLEET_TRACING`` values: ``off`` (default) or ``otlp`` (OTLP/HTTP export).
TRACING_MODES: tuple[str, ...] = ("off", "otlp")

_INSTALL_HINT = (
    "DAMFLEET_TRACING=otlp needs the OpenTelemetry packages of damfleet's 'tracing' extra "
    "(pip install 'damfleet[tracing]')"
)

_lock = threading.Lock()
_tracer: Any = None      # opentelemetry.trace.Tracer once configured; None = tracing off
_provider: Any = None    # the TracerProvider damfleet installed (None when the process brought its own)


def enabled() -> bool:
    """True once :func:`configure` turned tracing on in this process."""
    return _tracer is not None


def configure(settings: Any, service: str = "client") -> bool:
    """Turn tracing on for this process if the settings ask for it; idempotent.

    ``service`` names the process (``pipeline``, ``ingest``, ... or ``client``); it becomes
    ``service.name=damfleet-<service>`` unless ``OTEL_SERVICE_NAME`` or
    ``OTEL_RESOURCE_ATTRIBUTES`` name the service. The first call wins: a worker configures
    tracing with its pool name before it connects.
    """
    global _tracer, _provider
    mode = getattr(settings, "tracing", "off")
    if mode == "off":
        return False
    if mode not in TRACING_MODES:  # settings validate this too; kept for settings built by hand
        raise ConfigurationError(f"DAMFLEET_TRACING must be one of {', '.join(TRACING_MODES)}, got {mode!r}")
    with _lock:
        if _tracer is not None:
            return True
        try:
            from opentelemetry import trace
            from opentelemetry.sdk.resources import SERVICE_NAME, Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError as exc:
            raise ConfigurationError(f"{_INSTALL_HINT}: {exc}") from None

        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            provider = current  # the process brought its own (auto-instrumentation, an embedding app)
        else:
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            except ImportError as exc:
                raise ConfigurationError(f"{_INSTALL_HINT}: {exc}") from None
            resource = Resource.create({"damfleet.pool": service})
            if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
                resource = resource.merge(Resource({SERVICE_NAME: f"damfleet-{service}"}))
            provider = TracerProvider(resource=resource)
            # Endpoint, headers, timeout and compression come from OTEL_EXPORTER_OTLP_* variables.
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            trace.set_tracer_provider(provider)
            _provider = provider
        _tracer = provider.get_tracer("damfleet")
    return True


def client_interceptors(settings: Any) -> list[Any]:
    """The interceptors a Temporal client gets: the SDK's TracingInterceptor when tracing is on.

    Workers built on the client inherit it (the SDK prepends client interceptors that are
    also worker interceptors), so clients and workers need nothing else.
    """
    if not configure(settings):
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor(_tracer)]


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[Any]:
    """A child span of the current one (the running activity's), or nothing when tracing is off.

    Attribute values that are None are left out; the rest must be str, bool, int or float.
    An exception leaving the block is recorded on the span and re-raised.
    """
    tracer = _tracer
    if tracer is None:
        yield None
        return
    clean = {f"damfleet.{k}": v for k, v in attributes.items() if v is not None}
    with tracer.start_as_current_span(name, attributes=clean) as current:
        yield current


def flush(timeout_seconds: float = 5.0) -> None:
    """Export what is buffered (a worker stopping, the CLI exiting); no-op when tracing is off."""
    provider = _provider
    if provider is None:
        return
    provider.force_flush(int(timeout_seconds * 1000))
