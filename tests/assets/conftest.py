"""The dashboard's signed-in client fixture, shared with the library page tests."""

from tests.dashboard.conftest import sign_in  # noqa: F401
