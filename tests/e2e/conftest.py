"""End-to-end fixtures (live_server, browser, page, login) live in tests/conftest.py: one
Playwright instance serves every browser test of the session."""
