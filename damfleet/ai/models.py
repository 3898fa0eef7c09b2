"""Models behind a small interface, loaded once per process and reused across jobs.

Loading whisper or YOLO costs seconds (and GPU memory); running one job costs less. So
a worker process (or the inference service) keeps each model it has used in a
:class:`ModelRegistry`, keyed by its configuration, and every later activity reuses it.
This follows Immich's machine-learning service: an ``InferenceModel`` base with
``load()`` and ``predict()``, one short subclass per model.

The first load of each model is timed and exported as Prometheus metrics
(``damfleet_ai_model_load_seconds``, ``damfleet_ai_model_loads_total``), which the AI
worker's ``/metrics`` endpoint serves with everything else. A load count above one per
process for the same key means models are being thrown away, which is a bug.

Models run blocking code; callers run :meth:`InferenceModel.predict` in a thread, never
on an event loop. One lock per model serialises calls: CTranslate2 and torch already use
all the threads they are given, and two jobs on one model would only fight over them.
"""

from __future__ import annotations

import abc
import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from prometheus_client import Counter, Gauge

__all__ = [
    "MODEL_LOADS",
    "MODEL_LOAD_SECONDS",
    "InferenceModel",
    "ModelRegistry",
    "get_registry",
]

log = logging.getLogger(__name__)

MODEL_LOAD_SECONDS = Gauge(
    "damfleet_ai_model_load_seconds", "Seconds the first load of a model took in this process", ["model"]
)
MODEL_LOADS = Counter("damfleet_ai_model_loads_total", "Model loads in this process (1 per model is right)", ["model"])

M = TypeVar("M")


class InferenceModel(abc.ABC, Generic[M]):
    """One model: :meth:`load` once (slow), :meth:`predict` many times (under a lock)."""

    #: Short name for metrics and logs ("whisper", "yolo").
    name: str = "model"

    def __init__(self) -> None:
        self._model: M | None = None
        self.load_seconds: float = 0.0
        self.load_count = 0
        self.lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def source(self) -> str:
        """The path or name the model is loaded from (for logs and outputs)."""
        return ""

    @abc.abstractmethod
    def _load(self) -> M:
        """Build the underlying model; raise ConfigurationError when it cannot exist."""

    def load(self) -> M:
        """Load on first use and time it; later calls return the loaded model."""
        with self.lock:
            if self._model is None:
                started = time.perf_counter()
                self._model = self._load()
                self.load_seconds = time.perf_counter() - started
                self.load_count += 1
                MODEL_LOAD_SECONDS.labels(self.name).set(self.load_seconds)
                MODEL_LOADS.labels(self.name).inc()
                log.info("loaded %s from %s in %.2fs", self.name, self.source, self.load_seconds)
            return self._model

    @property
    def model(self) -> M:
        """The loaded model (loads it if needed)."""
        return self._model if self._model is not None else self.load()


IM = TypeVar("IM", bound=InferenceModel[Any])


class ModelRegistry:
    """Models of one process, one instance per configuration key."""

    def __init__(self) -> None:
        self._models: dict[Hashable, InferenceModel[Any]] = {}
        self._lock = threading.Lock()
        self.created: dict[str, int] = {}

    def get(self, key: Hashable, factory: Callable[[], IM]) -> IM:
        """The model for ``key``, created by ``factory`` the first time (not loaded yet)."""
        with self._lock:
            model = self._models.get(key)
            if model is None:
                model = factory()
                self._models[key] = model
                self.created[model.name] = self.created.get(model.name, 0) + 1
            return model  # type: ignore[return-value]

    def models(self) -> list[InferenceModel[Any]]:
        with self._lock:
            return list(self._models.values())

    def clear(self) -> None:
        """Forget every model (tests; a worker never needs this)."""
        with self._lock:
            self._models.clear()
            self.created.clear()


_registry = ModelRegistry()


def get_registry() -> ModelRegistry:
    """The process-wide registry every activity and the inference service share."""
    return _registry
