"""The API's declared contract: /openapi.json (OpenAPI 3.1, generated from webapp/api/contract.py)
and a readable docs page at /api/docs (Swagger UI, vendored from the npm registry)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template

from webapp.api.contract import document

bp = Blueprint("api_docs", __name__)

#: The docs page's own policy: Swagger UI sets inline styles and shows data: images; still no inline
#: script and no eval.
DOCS_POLICY = "; ".join([
    "default-src 'self'", "script-src 'self'", "style-src 'self' 'unsafe-inline'", "img-src 'self' data:",
    "connect-src 'self'", "object-src 'none'", "base-uri 'self'", "form-action 'self'", "frame-ancestors 'none'",
])


@bp.get("/openapi.json")
def openapi_json():
    """The OpenAPI 3.1 document of every JSON operation (built once per process)."""
    cached = current_app.extensions.get("aura_openapi")
    if cached is None:
        cached = current_app.extensions["aura_openapi"] = document()
    return jsonify(cached)


@bp.get("/api/docs")
def api_docs():
    """Swagger UI on /openapi.json."""
    response = current_app.make_response(render_template("api_docs.html"))
    response.headers["Content-Security-Policy"] = DOCS_POLICY
    return response
