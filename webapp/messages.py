"""Task messages in the reader's language.

The worker and the services store a task's message in English (one record for every reader);
pages and the API translate it when they show it: the stage part of "Running video processing...
Rendering video 334/1800 frames" and the fixed lifecycle messages. The detail stays as written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from webapp.catalog import STAGE_MESSAGES

#: Stages the worker pipeline reports (worker/pipeline/run.py).
STAGE_LABELS = {"storyboard": _l("storyboard"), "visuals": _l("visuals"), "audio": _l("audio"),
                "render": _l("render"), "assemble": _l("assemble")}


def N_(text: str) -> str:
    """No-op marker (Babel's default `N_` keyword): extract `text`, translate it later."""
    return text


#: The worker writes a task's message in English as STAGE_MESSAGES[stage] + " " + detail
#: (worker/tasks.py). These copies exist only so Babel extracts them; the pages translate the
#: stage part and keep the detail as written.
STAGE_MESSAGE_IDS = {"storyboard": N_("Writing the storyboard..."), "visuals": N_("Running image processing..."),
                     "audio": N_("Running audio processing..."), "render": N_("Running video processing..."),
                     "assemble": N_("Assembling the video...")}
#: Whole messages the web app and lifecycle write in English (webapp/services/*).
FIXED_MESSAGE_IDS = (N_("Starting"), N_("Completed"), N_("Cancelled"), N_("Cancelling..."),
                     N_("Waiting for a worker"), N_("Requeued: worker lost"))
assert STAGE_MESSAGE_IDS == STAGE_MESSAGES

def stage_line_lookup() -> Callable[[Any], str]:
    """The stage line of a task row: the translated stage message with the worker's detail after
    it ("Running video processing... Rendering video 334/1800 frames" -> "正在进行视频处理… Rendering …").
    Other messages: a known fixed one is translated; else the stage label comes first while live."""
    cache: dict[str, str] = {}

    def translated(text: str) -> str:
        if text not in cache:
            cache[text] = _(text)
        return cache[text]

    def line(task: Any) -> str:
        stage, message = task.stage, (task.message or "").strip()
        prefix = STAGE_MESSAGES.get(stage or "")
        if prefix and message.startswith(prefix):
            return translated(prefix) + message[len(prefix):]
        if message in FIXED_MESSAGE_IDS:
            return translated(message)
        if stage and task.is_live:
            label = str(STAGE_LABELS.get(stage, stage))
            return f"{label} — {message}" if message else label
        return message

    return line


def localized_message(task: Any) -> str:
    """One task's message in the current language."""
    return stage_line_lookup()(task)
