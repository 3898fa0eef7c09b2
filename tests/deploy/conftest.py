"""Fixtures of the Helm chart tests: the chart loaded once per module, and ``render``."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import helm_python as helm
import pytest

from tests.deploy.deploy_checks import CHART, RELEASE, Render, load_all


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def render(chart: helm.Chart) -> Render:
    """Render the chart offline (helm-python-sdk) as release ``fleet`` in namespace ``media``."""

    def _render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        manifests = chart.render(copy.deepcopy(values or {}), name=RELEASE, namespace="media", is_install=True)
        objects: list[dict[str, Any]] = []
        for path, text in sorted(manifests.items()):
            if path.endswith(".yaml"):
                objects += load_all(text)
        return objects

    return _render
