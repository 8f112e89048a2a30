"""Imported at start-up by the schemathesis subprocess of tests/contract/test_openapi.py (this
folder is put on its PYTHONPATH), never by the app.

On CPython 3.11.7, `ast.parse` inside hypothesis's lambda description (used only to build the
repr of a filtered strategy) can raise SystemError "AST constructor recursion depth mismatch",
which aborts schemathesis's coverage phase for that operation. The description is cosmetic, so
a plain one is used when that happens and the operation is still tested."""

from __future__ import annotations

try:
    from hypothesis.internal import lambda_sources
except ImportError:  # not the schemathesis environment
    lambda_sources = None

if lambda_sources is not None:
    _describe = lambda_sources.lambda_description

    def _safe_description(f):  # noqa: ANN001, ANN202 - mirrors hypothesis's own signature
        try:
            return _describe(f)
        except SystemError:
            return "lambda: <source not parsed>"

    lambda_sources.lambda_description = _safe_description
