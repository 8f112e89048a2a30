"""The API's authentication lives in webapp/access.py (with the dashboard's); these names stay
importable from here for the API modules."""

from webapp.access import api_error, bearer_token, require_role

__all__ = ["api_error", "bearer_token", "require_role"]
