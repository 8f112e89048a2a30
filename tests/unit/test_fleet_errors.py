"""Fleet services speak outcomes, not HTTP: their errors carry a code, and the views map every code
the services can raise to a status."""

from __future__ import annotations

import re
from pathlib import Path

from webapp.catalog import FLEET_OUTCOME_STATUS
from webapp.services.workers import FleetError

ROOT = Path(__file__).resolve().parents[2]


def test_a_fleet_error_carries_no_http_status():
    error = FleetError("not_found", "No worker named w.", {"worker_id": "Unknown worker."})
    assert (error.error, error.message, error.fields) == ("not_found", "No worker named w.",
                                                          {"worker_id": "Unknown worker."})
    assert not hasattr(error, "status")


def test_every_code_the_services_raise_or_audit_has_a_status():
    raised = set()
    for name in ("workers.py", "autoscale.py"):
        source = (ROOT / "webapp" / "services" / name).read_text()
        assert not re.search(r"FleetError\(\s*\d", source), f"{name} passes an HTTP status"
        raised |= set(re.findall(r'FleetError\(\s*"([a-z_]+)"', source))
        # audit(actor, action, target, params, outcome, message)
        raised |= set(re.findall(r'audit\(\w+, [^,]+, [^,]+, [^,]+, "([a-z_]+)"', source))
    assert raised and raised <= set(FLEET_OUTCOME_STATUS)
    assert {FLEET_OUTCOME_STATUS[code] for code in raised} <= {200, 202, 400, 404, 409}
