"""Fixtures for the pipeline tests (pure: no Flask, Celery or Redis)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

BRIEFS = json.loads((Path(__file__).with_name("briefs.json")).read_text(encoding="utf-8"))


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


def never() -> bool:
    """A cancel check that never cancels."""
    return False
