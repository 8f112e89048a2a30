"""Fixtures for the pipeline tests (pure: no Flask, Celery or Redis)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

# The pipeline is importable as `worker.pipeline` from the repository root, however pytest is started.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

BRIEFS = json.loads((Path(__file__).with_name("briefs.json")).read_text(encoding="utf-8"))


def pytest_generate_tests(metafunc):
    """`sample_brief` runs a test once per brief of briefs.json (the shared sample set)."""
    if "sample_brief" in metafunc.fixturenames:
        metafunc.parametrize("sample_brief", BRIEFS, ids=[b["theme_id"] for b in BRIEFS])


def small_brief(**overrides) -> dict:
    """A short, low-quality Chinese brief that renders in a few seconds."""
    brief = {
        "theme_id": "公益倡导",
        "keywords_id": ["环保", "节水"],
        "target_duration_id": 6,
        "user_description_id": "十秒公益短片：每个人节约一滴水。",
        "priority": "normal",
        "config": {"quality": "low", "resolution": "320x180", "seed": 7},
    }
    config = overrides.pop("config", {})
    brief.update(overrides)
    brief["config"] = {**brief["config"], **config}
    return brief


@pytest.fixture
def quiet():
    """A progress callback that records what it was told."""
    calls: list[tuple] = []

    def progress(*args):
        calls.append(args)

    progress.calls = calls
    return progress


@pytest.fixture
def briefs() -> list[dict]:
    """The shared sample briefs."""
    return json.loads(json.dumps(BRIEFS))


@pytest.fixture
def make_brief():
    """Factory for the small brief, with overrides."""
    return small_brief


@pytest.fixture
def never():
    """A cancel check that never cancels."""
    return lambda: False
