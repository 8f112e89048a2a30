"""The declared contract: /openapi.json covers every JSON endpoint, the docs page renders it, every
operation refuses a token below its role, and schemathesis finds no 5xx and no response that breaks
the document, with positive and negative data on every operation of the running app."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

import webapp.api.assets  # noqa: F401  (the blueprints register their operations on import)
import webapp.api.batches  # noqa: F401
import webapp.api.views  # noqa: F401
import webapp.api.webhooks  # noqa: F401
import webapp.api.workers  # noqa: F401
import webapp.health  # noqa: F401
from tests.conftest import OUTPUT_DIR, VENV_BIN, small_brief
from webapp.api.contract import OPERATIONS
from webapp.catalog import Role

LOWER = {Role.VIEWER: None, Role.OPERATOR: "viewer", Role.ADMIN: "operator"}


def test_document_covers_every_json_endpoint(app, client):
    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    declared = {(m.upper(), path) for path, item in doc["paths"].items() for m in item}
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(("/tasks", "/webhooks", "/assets", "/healthz", "/readyz")):
            path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
            routed |= {(m, path) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert routed == declared
    for name in ("/tasks/workers/policies", "/tasks/workers/decisions", "/tasks/workers/audit",
                 "/tasks/video/batch", "/tasks/batches/{batch_id}", "/webhooks/{endpoint_id}/rotate-secret"):
        assert name in doc["paths"]
    assert "/metrics" not in doc["paths"]  # Prometheus text, not JSON
    assert "content" not in doc["paths"]["/webhooks/{endpoint_id}"]["delete"]["responses"]["204"]
    brief = doc["components"]["schemas"]["BriefIn"]
    assert brief["additionalProperties"] is False and "theme_id" in brief["required"]


def test_docs_page_loads_its_script_from_static_files(client):
    page = client.get("/api/docs")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "vendor/swagger-ui-bundle.js" in html and "api-docs.js" in html
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert client.get("/static/vendor/swagger-ui-bundle.js").status_code == 200


def test_docs_page_renders_in_chromium(live_server, page):
    page.goto(f"{live_server}/api/docs")
    page.get_by_text("/tasks/video/async").first.wait_for()
    assert page.get_by_text("/tasks/workers/policies").count() >= 1


@pytest.mark.parametrize("operation", [op for op in OPERATIONS if op.role is not None],
                         ids=lambda op: f"{op.method} {op.path}")
def test_no_2xx_without_the_right_role(client, make_token, operation):
    path = re.sub(r"{[a-z_]+}", "video_1700000000_abcdef12", operation.path)
    lower = LOWER[operation.role]
    headers = [{}, {"Authorization": "Bearer aura_not-a-token"}]
    if lower:
        headers.append({"Authorization": f"Bearer {make_token(lower)}"})
    for header in headers:
        response = client.open(path, method=operation.method, headers=header, json={})
        assert response.status_code in (401, 403), (operation.path, header, response.status_code)


def run_schemathesis(live_server: str, token: str, report: Path, config: Path, *extra: str) -> tuple[int, str]:
    command = [str(VENV_BIN / "schemathesis"), "--config-file", str(config), "run", f"{live_server}/openapi.json",
               "-H", f"Authorization: Bearer {token}",
               "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                           "response_schema_conformance,negative_data_rejection",
               "--mode", "all", "--max-examples", "40", "--seed", "9", "--workers", "2",
               "--request-timeout", "20", "--generation-database", "none", "--no-color",
               "--report", "json", "--report-json-path", str(report), *extra]
    # st_site/sitecustomize.py works around a CPython 3.11.7 AST bug inside hypothesis (see there).
    site = str(Path(__file__).parent / "st_site")
    env = {**os.environ, "PYTHONPATH": site + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    return result.returncode, result.stdout + result.stderr


def existing_ids(path: Path) -> Path:
    """A schemathesis config naming rows that exist, so the operations on one webhook endpoint, one
    delivery, one batch and one asset get past their 404 and answer with their documented shapes (the
    endpoint's loopback URL is refused at send time: the ping waits for a retry, no request is made)."""
    from PIL import Image

    from webapp.services import assets, batches, webhooks

    kept, deleted = (webhooks.create_endpoint({"url": f"http://127.0.0.1:9/{name}", "events": ["task.failed"]},
                                              "contract-test")[0] for name in ("kept", "deleted"))
    delivery = webhooks.send_test(kept)
    assert delivery.status == "pending" and "WEBHOOK_ALLOWED_HOSTS" in delivery.last_error  # to retry
    batch, _created = batches.submit(batches.check({"briefs": [small_brief(), small_brief(priority="low")]}),
                                     submitted_by="contract-test")
    picture = path.with_name("picture.png")
    Image.new("RGB", (64, 48), (10, 132, 255)).save(picture)
    asset, doomed = (assets.ingest_file(picture, name, assets.Actor("contract-test"), tags="contract")
                     for name in ("kept.png", "deleted.png"))
    assert asset.has_thumbnail
    path.write_text(f'''
[parameters]
endpoint_id = "{kept.id}"
delivery_id = "{delivery.id}"
batch_id = "{batch["batch_id"]}"
asset_id = "{asset.id}"

[[operations]]
include-name = "DELETE /webhooks/{{endpoint_id}}"
parameters = {{ endpoint_id = "{deleted.id}" }}

[[operations]]
include-name = "DELETE /assets/{{asset_id}}"
parameters = {{ asset_id = "{doomed.id}" }}
''')
    return path


def test_schemathesis_finds_no_5xx_and_no_broken_response(live_server, make_token, tmp_path: Path):
    """Positive and negative data on every operation, as an admin; the output goes to test-output/.

    The autoscale operation skips the coverage phase: on this Python (3.11.7) hypothesis hits a
    CPython AST bug ("AST constructor recursion depth mismatch") while describing one of
    schemathesis's filters for its query parameters; it still gets examples and fuzzing."""
    admin = make_token("admin")
    config = existing_ids(tmp_path / "schemathesis.toml")
    runs = [("all", ["--phases", "examples,coverage,fuzzing", "--exclude-path", "/tasks/workers/autoscale"]),
            ("autoscale", ["--phases", "examples,fuzzing", "--include-path", "/tasks/workers/autoscale"])]
    generated = 0
    OUTPUT_DIR.mkdir(exist_ok=True)
    for name, extra in runs:
        code, output = run_schemathesis(live_server, admin, tmp_path / f"{name}.json", config, *extra)
        (OUTPUT_DIR / f"schemathesis-{name}.txt").write_text(output)
        assert code == 0, output[-6000:]
        generated += int(re.search(r"(\d+) generated", output).group(1))
    print(f"schemathesis: {generated} test cases, no failures")
    assert generated > 500
