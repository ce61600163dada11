"""First-run setup, login and logout pages."""

from __future__ import annotations

import hmac
import logging

import bottle
from bottle import request

from appliance.archive import MIN_PASSWORD, Archive, UserError, audit
from appliance.web import https
from appliance.web.auth import Guard, client_address, fail, public, see_other
from appliance.web.templates import render

LOG = logging.getLogger("lightbox.web")


def _safe_next(target: str) -> str:
    """Only a path of ours: never an absolute URL (an open redirect) or a scheme-relative one.
    Browsers drop tabs and line breaks from a URL and read a backslash as a slash, so
    ``/<tab>/host`` is ``//host`` to them: any control character, space or backslash is refused."""
    plain = target.isprintable() and " " not in target and "\\" not in target
    return target if plain and target.startswith("/") and not target.startswith("//") else "/"


def install(app: bottle.Bottle, archive: Archive, guard: Guard, door: https.HttpsDoor) -> None:
    auth = guard.auth

    def setup_page(message: str = "", name: str = "", status: int = 200) -> bottle.HTTPResponse:
        page = render(
            "setup.tpl",
            message=message,
            name=name,
            min_password=MIN_PASSWORD,
            https=https.facts(archive, door, "/setup"),
        )
        return bottle.HTTPResponse(page, status)

    @app.get("/setup")
    @public
    def setup_form():
        if not auth.setup_needed():
            return see_other("/login")
        return setup_page()

    @app.post("/setup")
    @public
    def setup_submit():
        auth.check_origin()
        if not auth.setup_needed():
            raise fail(403, "setup is closed: an account exists already")
        form = request.forms
        name, code = form.getunicode("name", ""), form.getunicode("code", "").strip().upper()
        keys = (auth.backoff.keys(client_address(), "setup")[0],)
        if auth.backoff.wait_left(keys) > 0:
            return setup_page("Too many wrong setup codes; wait a moment and try again.", name, 429)
        if not hmac.compare_digest(code.encode(), auth.setup_code.encode()):
            auth.backoff.failed(keys)
            LOG.info("setup_code_wrong address=%s", client_address())
            return setup_page("That setup code is not right; see the server's log.", name, 403)
        password = form.getunicode("password", "")
        if password != form.getunicode("password2", ""):
            return setup_page("The two passwords differ.", name, 400)
        try:
            account = archive.users.add_first_admin(name, password)
        except UserError as exc:
            return setup_page(str(exc).capitalize() + ".", name, 400)
        auth.backoff.succeeded(keys)
        auth.setup_done()
        LOG.info("first_admin_created address=%s", client_address())
        archive.audit.record(
            audit.APPLICATION_ACTIVITY,
            account.name,
            client_address(),
            action="C",
            detail="first-run setup: admin created",
        )
        auth.start_session(account)
        return see_other("/wizard")  # the rest of the set-up, step by step

    def login_page(message: str = "", name: str = "", next_path: str = "/", status: int = 200) -> bottle.HTTPResponse:
        return bottle.HTTPResponse(render("login.tpl", message=message, name=name, next=next_path), status)

    @app.get("/login")
    @public
    def login_form():
        if auth.setup_needed():
            return see_other("/setup")
        return login_page(next_path=_safe_next(request.query.getunicode("next", "/")))

    @app.post("/login")
    @public
    def login_submit():
        auth.check_origin()
        form = request.forms
        name, password = form.getunicode("name", "").strip(), form.getunicode("password", "")
        next_path = _safe_next(form.getunicode("next", "/"))
        keys = auth.backoff.keys(client_address(), name)
        wait = auth.backoff.wait_left(keys)
        if wait > 0:
            LOG.info("login_backoff address=%s wait_s=%.0f", client_address(), wait)
            return login_page(f"Too many failed logins. Try again in {wait:.0f} s.", name, next_path, 429)
        account = archive.users.authenticate(name, password)
        if account is None:
            auth.backoff.failed(keys)
            auth.login_failed(name, "form")
            return login_page("Wrong user name or password.", name, next_path, 401)
        auth.backoff.succeeded(keys)
        auth.start_session(account)
        archive.audit.record(audit.USER_AUTHENTICATION, account.name, client_address(), detail="login")
        return see_other(next_path)

    @app.post("/logout")
    @guard
    def logout():
        archive.audit.record(audit.USER_AUTHENTICATION, guard.user().name, client_address(), detail="logout")
        auth.end_session()
        return see_other("/login")

    @app.get("/api/me")
    @guard
    def me() -> dict:
        """Who is logged in, and the CSRF token scripts send back on state-changing requests."""
        user = guard.user()
        return {"name": user.name, "role": user.role, "csrf_token": guard.csrf_token()}

    @app.get("/account")
    @guard
    def account_page():
        return render(
            "account.tpl", user=guard.user(), csrf=guard.csrf_token(), section="account", min_password=MIN_PASSWORD
        )

    @app.post("/api/me/password")
    @guard
    def change_own_password() -> dict:
        """A user's own new password, given the current one; other sessions of the user end."""
        user, form = guard.user(), request.forms
        keys = auth.backoff.keys(client_address(), user.name)
        if auth.backoff.wait_left(keys) > 0:
            raise fail(429, "too many wrong passwords; try again later")
        if archive.users.authenticate(user.name, form.getunicode("current", "")) is None:
            auth.backoff.failed(keys)
            auth.login_failed(user.name, "password change")
            raise fail(403, "the current password is not right")
        try:
            archive.users.set_password(user.name, form.getunicode("password", ""))
        except UserError as exc:
            raise fail(400, str(exc)) from None
        guard.audit(audit.SECURITY_ALERT, action="U", detail=f"user {user.name}: own password changed")
        account = archive.users.get(user.name)
        if account is None:  # removed meanwhile
            raise fail(403, "this account no longer exists")
        auth.start_session(account)  # this browser stays logged in
        return {"ok": True}
