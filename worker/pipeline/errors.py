"""Exceptions raised by the video pipeline."""

from __future__ import annotations


class PipelineError(Exception):
    """A stage failed; the task may be retried."""

    retryable = True

    def __init__(self, message: str, stage: str = "pipeline") -> None:
        super().__init__(message)
        self.stage = stage

    def __str__(self) -> str:
        return f"[{self.stage}] {self.args[0]}"


class BadBrief(PipelineError):
    """The brief cannot be rendered; retrying will not help."""

    retryable = False

    def __init__(self, message: str, stage: str = "storyboard") -> None:
        super().__init__(message, stage)


class Cancelled(Exception):
    """The cancel check returned True; the stage stopped and cleaned up."""
