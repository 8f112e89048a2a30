"""The browser dashboard: sign-in, submit and follow tasks, history, settings.

Each page's view also serves its live fragment when the request comes from htmx; fragments answer
286 when nothing on them can change any more, which stops htmx polling.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, make_response, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_htmx.constants import HTMX_STOP_POLLING
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from webapp.access import cached_user_for_polls, role_required
from webapp.catalog import PRIORITIES, QUALITIES, QUEUES, Role, TaskStatus
from webapp.dashboard import live
from webapp.dashboard.forms import CUSTOM, RESOLUTION_PRESETS, BriefForm, LoginForm, PasswordForm, TokenForm
from webapp.extensions import db, htmx
from webapp.limits import SubmissionRefused, check_submission, limiter, login_limits
from webapp.messages import STAGE_LABELS, stage_line_lookup
from webapp.services import auth as auth_service
from webapp.services import dashboard as board
from webapp.services import tasks as task_service
from webapp.services.validation import BriefError

bp = Blueprint("dashboard", __name__)

POLL_SECONDS = 2
#: Live tasks drawn in full on the dashboard; the rest are counted (the fragment is polled).
ACTIVE_SHOWN = 20
LANG_COOKIE_DAYS = 365
TASK_ID = re.compile(r"^video_\d{6,12}_[a-z0-9]{4,16}$")

def is_fragment_request() -> bool:
    """True for htmx requests that want a fragment (a history restore wants the whole page)."""
    return bool(htmx) and not htmx.history_restore_request


def live_response(html: str, live: bool):
    """A fragment response; 286 tells htmx to stop polling when nothing on it is live."""
    return make_response(html, 200 if live else HTMX_STOP_POLLING)


def safe_next(target: str | None, fallback: str) -> str:
    """Only same-site paths are followed after sign-in or a language switch."""
    if not target:
        return fallback
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return fallback
    return target


def principal() -> str:
    return f"user:{current_user.username}"


# --- sign-in ---------------------------------------------------------------------------------

@bp.route("/login", methods=["GET", "POST"])
@login_limits[0]
@login_limits[1]
def login():
    """Sign in with user name and password."""
    next_url = safe_next(request.args.get("next"), url_for("dashboard.index"))
    if current_user.is_authenticated:
        return redirect(next_url)
    form = LoginForm()
    error = None
    status = 200
    if form.validate_on_submit():
        user = board.user_by_name(form.username.data.strip())
        # An unknown user costs the same password check as a known one: timing tells nothing.
        known = user.check_password(form.password.data) if user is not None else auth_service.dummy_check(
            form.password.data)
        if user is not None and user.active and known:
            login_user(user)
            return redirect(next_url)
        # One message for both cases, so the page does not reveal which user names exist.
        error = _("Wrong user name or password.")
        status = 401
    elif request.method == "POST":
        status = 400
    return render_template("auth/login.html", form=form, error=error), status


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    """Sign out (POST with the CSRF token; GET shows the button)."""
    if request.method == "POST":
        logout_user()
        flash(_("You are signed out."), "info")
        return redirect(url_for("dashboard.login"))
    if not current_user.is_authenticated:
        return redirect(url_for("dashboard.login"))
    return render_template("auth/logout.html")


@bp.post("/lang")
def set_language():
    """Remember the chosen language in a cookie (and on the user, when signed in)."""
    lang = request.form.get("lang", "")
    back = safe_next(request.form.get("next"), url_for("dashboard.index"))
    if lang not in current_app.config["LANGUAGES"]:
        abort(400)
    if current_user.is_authenticated and current_user.locale != lang:
        current_user.locale = lang
        db.session.commit()
    response = redirect(back)
    response.set_cookie("lang", lang, max_age=LANG_COOKIE_DAYS * 86400, samesite="Lax", httponly=True,
                        secure=current_app.config.get("SESSION_COOKIE_SECURE", False))
    return response


# --- dashboard ---------------------------------------------------------------------------------

def board_response(shown: live.Board):
    """The polled board: 304 when the poll's ETag still matches, else the fragment (286 when idle)."""
    if live.etag_matches(request.headers.get("If-None-Match"), shown.etag):
        response = make_response("", 304)
    else:
        response = live_response(shown.html, shown.live)
    response.set_etag(shown.etag)
    # Browsers must ask again each poll; the answer depends on the session cookie.
    response.headers["Cache-Control"] = "no-cache, private"
    response.vary.add("Cookie")
    return response


def render_index(form: BriefForm | None, status: int = 200):
    shown = live.live_board(principal())
    page = render_template("dashboard/index.html", form=form, live_html=shown.html,
                           presets=RESOLUTION_PRESETS, custom=CUSTOM)
    return page, status


@limiter.request_filter
def board_polls_are_not_counted() -> bool:
    """The dashboard's GETs (the live board's polls) carry no rate limit: skip the limiter's lookup."""
    return request.method == "GET" and request.endpoint == "dashboard.index"


@bp.route("/", methods=["GET", "POST"])
@cached_user_for_polls
@login_required
def index():
    """The dashboard: submit form (operators) and the live board; htmx polls get the board only."""
    if request.method == "POST":
        return submit_brief()
    if is_fragment_request():
        # A refresh after an event (the viewer's own submit) must not get a board from before it.
        fresh = request.headers.get("X-Aura-Refresh") == "event"
        return board_response(live.live_board(principal(), fresh=fresh))
    form = None
    if current_user.can(Role.OPERATOR):
        source = task_service.get_task(request.args.get("from", ""))
        form = BriefForm.from_brief(source.request, source.id) if source else BriefForm.blank()
    return render_index(form)


def submit_brief():
    """Validate the posted brief like the API does; keep every value when it fails."""
    if not current_user.can(Role.OPERATOR):
        abort(403)
    form = BriefForm.from_request(request.form)
    parent = None
    if form.values["parent_id"]:
        parent = task_service.get_task(form.values["parent_id"])
        if parent is None:
            form.errors["parent_id"] = _("The original task no longer exists.")
    if not form.errors:
        try:
            check_submission(form.brief, current_user.role, principal())
        except SubmissionRefused as exc:
            for name, message in (exc.fields or {"theme_id": exc.message}).items():
                key = name.removeprefix("config.")
                form.errors[key if key != "resolution" or form.values["resolution"] != CUSTOM
                            else "custom_resolution"] = message
    if not form.errors and form.brief is not None:
        from webapp.services import assets as asset_service

        try:
            asset_service.check_asset_refs(form.brief, asset_service.Actor(principal(), current_user.can(Role.ADMIN)))
        except BriefError as exc:
            form.errors["extensions"] = "; ".join(f"{k}: {m}" for k, m in exc.fields.items())
    if form.errors:
        if is_fragment_request():
            return render_template("dashboard/_form.html", form=form, presets=RESOLUTION_PRESETS, custom=CUSTOM)
        return render_index(form, 400)
    task, _created = task_service.submit(form.brief, submitted_by=principal(),
                                         parent_id=parent.id if parent else None)
    if form.brief["config"].get("variants", 1) > 1:
        from webapp.services import variants as variant_service

        variant_service.spawn_variants(task, principal())
    if is_fragment_request():
        response = make_response(render_template("dashboard/_form.html", form=BriefForm.blank(),
                                                 presets=RESOLUTION_PRESETS, custom=CUSTOM, submitted=task))
        # The live board listens for this event and refreshes (and resumes polling) at once.
        response.headers["HX-Trigger"] = "aura:refresh"
        return response
    flash(_("Submitted %(id)s.", id=task.id), "success")
    return redirect(url_for("dashboard.task_page", task_id=task.id))


# --- one task --------------------------------------------------------------------------------

def render_task_live(task, notice: str | None = None) -> str:
    events = task_service.events_of(task.id)
    children = board.resubmissions_of(task)
    return render_template("dashboard/_task.html", task=task, events=events, children=children, notice=notice)


@bp.get("/videos/<task_id>")
@login_required
def task_page(task_id: str):
    """One task: live status, timeline, error or video, cancel and submit again."""
    task = task_service.get_task(task_id)
    if task is None:
        return render_template("dashboard/task_missing.html", task_id=task_id), 404
    html = render_task_live(task)
    if is_fragment_request():
        return live_response(html, task.is_live)
    return render_template("dashboard/task.html", task=task, live_html=html)


@bp.post("/videos/<task_id>/cancel")
@role_required(Role.OPERATOR)
def task_cancel(task_id: str):
    """Cancel a waiting or running task (operators)."""
    task = task_service.get_task(task_id)
    if task is None:
        abort(404)
    if task_service.cancel(task, by=principal()):
        if task.status == TaskStatus.CANCELLED.value:
            notice, category = _("Cancelled."), "success"
        else:
            notice, category = _("Cancellation requested; the worker stops within seconds."), "info"
    else:
        notice = _("Task %(id)s is already %(status)s.", id=task.id, status=status_label(task.status))
        category = "error"
    if is_fragment_request():
        return live_response(render_task_live(task, notice=notice), task.is_live)
    flash(notice, category)
    return redirect(url_for("dashboard.task_page", task_id=task.id))


# --- history ---------------------------------------------------------------------------------

@bp.get("/history")
@login_required
def history():
    """Past and present tasks with filters, newest first; a full task id jumps to its page."""
    text = (request.args.get("q") or "").strip()
    if TASK_ID.match(text) and task_service.get_task(text) is not None:
        if is_fragment_request():
            response = make_response("", 200)
            response.headers["HX-Redirect"] = url_for("dashboard.task_page", task_id=text)
            return response
        return redirect(url_for("dashboard.task_page", task_id=text))
    errors: dict[str, str] = {}
    rows: list = []
    next_cursor = None
    try:
        query = task_service.HistoryQuery.from_args(request.args, max_limit=100)
        rows, next_cursor = task_service.history(query)
    except task_service.HistoryError as exc:
        errors = exc.fields
    more_args = {k: v for k, v in request.args.items() if k != "cursor" and v}
    more_url = url_for("dashboard.history", **more_args, cursor=next_cursor) if next_cursor else None
    context = dict(rows=rows, errors=errors, more_url=more_url, args=request.args,
                   continued=bool(request.args.get("cursor")))
    if is_fragment_request():
        return render_template("dashboard/_history_rows.html", **context)
    return render_template("dashboard/history.html", statuses=list(TaskStatus), priorities=list(PRIORITIES),
                           queues=list(QUEUES), **context), (400 if errors else 200)


# --- settings --------------------------------------------------------------------------------

def render_settings(status: int = 200, **context: Any):
    password_form = context.pop("password_form", None) or PasswordForm(formdata=None)
    token_form = context.pop("token_form", None) or TokenForm(formdata=None)
    token_form.limit_roles(current_user.role_enum)
    tokens = board.tokens_of(current_user) if current_user.can(Role.OPERATOR) else []
    return render_template("dashboard/settings.html", password_form=password_form, token_form=token_form,
                           tokens=tokens, **context), status


@bp.get("/settings")
@login_required
def settings():
    """Password, language and (operators) API tokens."""
    return render_settings()


@bp.post("/settings/password")
@login_required
def settings_password():
    """Change one's own password; the current one is needed."""
    form = PasswordForm()
    if form.validate_on_submit():
        if not current_user.check_password(form.current.data):
            form.current.errors.append(_("The current password is wrong."))
        else:
            user = current_user._get_current_object()
            auth_service.update_user(user, password=form.new.data)
            login_user(user)  # this session goes on; the user's other sessions end
            flash(_("Your password is changed."), "success")
            return redirect(url_for("dashboard.settings"))
    return render_settings(400, password_form=form)


@bp.post("/settings/tokens")
@role_required(Role.OPERATOR)
def settings_token_create():
    """Create an API token for oneself; its value is shown on this response only."""
    form = TokenForm()
    form.limit_roles(current_user.role_enum)
    if not form.validate_on_submit():
        return render_settings(400, token_form=form)
    token, raw = auth_service.create_token(form.name.data.strip(), form.role.data, current_user)
    response = make_response(render_settings(201, new_token=token, raw_token=raw))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/settings/tokens/<int:token_id>/revoke")
@role_required(Role.OPERATOR)
def settings_token_revoke(token_id: int):
    """Revoke one of one's own tokens."""
    token = board.token_of(current_user, token_id)
    if token is None:
        abort(404)
    if token.revoked_at is None:
        auth_service.revoke_token(token)
        flash(_("Token %(name)s is revoked.", name=token.name), "success")
    return redirect(url_for("dashboard.settings"))


# --- template helpers ------------------------------------------------------------------------

STATUS_LABELS = {
    TaskStatus.PENDING: _l("pending"),
    TaskStatus.QUEUED: _l("queued"),
    TaskStatus.PROCESSING: _l("processing"),
    TaskStatus.COMPLETED: _l("completed"),
    TaskStatus.FAILED: _l("failed"),
    TaskStatus.CANCELLED: _l("cancelled"),
    TaskStatus.RETRY: _l("retry"),
}
PRIORITY_LABELS = {"urgent": _l("urgent"), "high": _l("high"), "normal": _l("normal"), "low": _l("low")}
QUALITY_LABELS = {"low": _l("low"), "medium": _l("medium"), "high": _l("high")}
ROLE_LABELS = {Role.VIEWER: _l("viewer"), Role.OPERATOR: _l("operator"), Role.ADMIN: _l("admin")}
assert set(PRIORITY_LABELS) == set(PRIORITIES)


def label_lookup(labels: dict[Any, Any]) -> Callable[[Any], str]:
    """A label function that translates each label at most once per request (fragments are hot)."""
    cache: dict[Any, str] = {}

    def label(value: Any) -> str:
        if value is None:
            return "—"
        if value not in cache:
            cache[value] = str(labels.get(value, value))
        return cache[value]

    return label


def status_label(status: str) -> str:
    return str(STATUS_LABELS.get(status, status))


def seconds_text(value: float | None) -> str:
    """A short duration: 45 s, 3 min 05 s, 2 h 10 min."""
    if value is None:
        return "—"
    total = int(round(value))
    if total < 60:
        return _("%(s)s s", s=total)
    minutes, seconds = divmod(total, 60)
    if minutes < 60:
        return _("%(m)s min %(s)02d s", m=minutes, s=seconds)
    hours, minutes = divmod(minutes, 60)
    return _("%(h)s h %(m)02d min", h=hours, m=minutes)


def size_text(value: int | None) -> str:
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(value)


def moment_text(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "—"


_admin_url_cache: dict[int, str | None] = {}


def admin_url() -> str | None:
    """The admin page's URL when that blueprint has one (it lives in another area)."""
    key = id(current_app)
    if key not in _admin_url_cache:
        found = None
        for rule in current_app.url_map.iter_rules():
            if rule.rule in ("/admin", "/admin/") and "GET" in (rule.methods or ()):
                found = rule.rule
                break
        _admin_url_cache[key] = found
    return _admin_url_cache[key]


ERROR_TEXT = {
    400: (_l("Bad request"), _l("The request could not be understood.")),
    401: (_l("Sign-in needed"), _l("Please sign in to see this page.")),
    403: (_l("Not allowed"), _l("Your role does not allow this.")),
    404: (_l("Not found"), _l("There is nothing at this address.")),
    405: (_l("Method not allowed"), _l("This address does not accept that kind of request.")),
    413: (_l("Too large"), _l("The request is too large.")),
    429: (_l("Too many attempts"), _l("Too many requests in a short time. Wait a moment and try again.")),
}


def error_page(exc: HTTPException):
    """An HTML error page in the dashboard's look (the JSON API has its own errors)."""
    code = exc.code or 500
    title, message = ERROR_TEXT.get(code, (exc.name, exc.description))
    if isinstance(exc, CSRFError):
        message = _("The form has expired or lacks its security token. Reload the page and try again.")
    return render_template("error.html", error=exc, title=title, message=message), code


@bp.app_template_filter("split_tail")
def split_tail(text: str, lines: int = 20) -> str:
    """The last `lines` lines of a text (the end of a traceback is where the cause is)."""
    return "\n".join(str(text).splitlines()[-lines:])


@bp.app_context_processor
def template_helpers() -> dict[str, Any]:
    locale = get_locale()
    return {
        "html_lang": "zh-CN" if locale is not None and locale.language == "zh" else "en",
        "priorities": list(PRIORITIES),
        "qualities": QUALITIES,
        "Role": Role,
        "TaskStatus": TaskStatus,
        "status_label": label_lookup(STATUS_LABELS),
        "priority_label": label_lookup(PRIORITY_LABELS),
        "quality_label": label_lookup(QUALITY_LABELS),
        "stage_label": label_lookup(STAGE_LABELS),
        "role_label": label_lookup(ROLE_LABELS),
        "stage_line": stage_line_lookup(),
        "seconds_text": seconds_text,
        "size_text": size_text,
        "moment_text": moment_text,
        "admin_url": admin_url,
        "poll_seconds": POLL_SECONDS,
        "active_shown": ACTIVE_SHOWN,
    }
