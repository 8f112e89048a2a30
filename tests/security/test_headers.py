"""Security headers on every response: a CSP without inline script, no framing, no MIME sniffing,
a referrer policy, and HSTS in production only. tests/e2e and tests/fleet drive every page in
Chromium under this policy; the `page` fixture fails a test on any CSP violation."""

from __future__ import annotations

import re

import pytest

from webapp import CONTENT_SECURITY_POLICY

PATHS = ["/login", "/", "/history", "/settings", "/admin", "/healthz", "/tasks/queue/status", "/nowhere",
         "/static/app.js"]


@pytest.mark.parametrize("path", PATHS)
def test_every_response_carries_the_headers(client, sign_in, path):
    sign_in("admin")
    headers = client.get(path).headers
    csp = headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in headers  # testing is not production


def test_pages_have_no_inline_script(client, sign_in):
    sign_in("admin")
    for path in ["/login", "/", "/history", "/settings", "/admin"]:
        html = client.get(path).get_data(as_text=True)
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in tag, f"inline script on {path}: {tag}"
        assert not re.search(r"\son[a-z]+=", html), f"inline event handler on {path}"
        assert "hx-on" not in html and "javascript:" not in html


def test_hsts_in_production(monkeypatch, tmp_path, redis_server):
    from webapp import create_app

    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SECRET_KEY", "k" * 48)
    app = create_app({"AURA_INSTANCE": str(tmp_path), "INSTANCE_DIR": str(tmp_path),
                      "MEDIA_ROOT": str(tmp_path / "media"), "REDIS_URL": redis_server.url,
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.db'}"})
    response = app.test_client().get("/healthz")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
