"""The security tests share the dashboard's sign-in fixture."""

from tests.dashboard.conftest import sign_in  # noqa: F401
