"""Business rules: the views and the worker tasks call these."""
