"""Devices page (admin): learned and discovered devices, the device policy, forwarding rules
and their retry queue; and the JSON twins.  Thin: ``archive.devices``, ``archive.discovered``,
``archive.forwarding`` and ``discovery.devices.echo_device`` do the work."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from typing import Any

import bottle
from bottle import request

from appliance.archive import Archive, audit
from appliance.archive.devices import POLICIES, DeviceError, LearnedDevice
from appliance.archive.forwarding import ForwardError
from appliance.archive.nodes import OPERATIONS, NodeError, parse_operations
from appliance.discovery.devices import echo_device
from appliance.web.auth import Guard, fail
from appliance.web.templates import render


def device_json(device: LearnedDevice) -> dict[str, Any]:
    return {**asdict(device), "allowed": sorted(device.allowed)}


def version(info: dict[str, Any]) -> str:
    """A digest of what the page shows; the page polls it and reloads when it moves.  Not the
    discovered services' last_seen: it moves with every re-announcement."""
    shown = {**info, "discovered": [{k: v for k, v in s.items() if k != "last_seen"} for s in info["discovered"]]}
    return hashlib.sha256(json.dumps(shown, sort_keys=True).encode()).hexdigest()[:16]


def _last(name: str) -> str | None:
    """A form field's last value: a checkbox follows a hidden "no", so the box wins when ticked."""
    values = request.forms.getall(name)
    return values[-1].strip() if values else None


def _flag(name: str) -> bool | None:
    value = _last(name)
    return None if value is None else value.lower() in ("yes", "true", "1", "on")


def _port(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise fail(400, f"port: a number, not {value!r}") from None


def install(app: bottle.Bottle, archive: Archive, guard: Guard, calling_aet: str) -> None:
    def overview() -> dict[str, Any]:
        info = {
            "policy": archive.devices.policy,
            "policies": list(POLICIES),
            "operations": list(OPERATIONS),
            "devices": [device_json(d) for d in archive.devices.all()],
            "discovered": [asdict(s) for s in archive.discovered.all()],
            "forwarding": forwarding(),
        }
        return {**info, "version": version(info)}

    def forwarding() -> dict[str, Any]:
        return {
            "rules": [asdict(r) for r in archive.forwarding.rules()],
            "queue": [asdict(j) for j in archive.forwarding.queue()],
            "destinations": [n.aet for n in archive.nodes.all() if n.allows("store")],
        }

    def device_or_404(aet: str) -> LearnedDevice:
        device = archive.devices.get(aet)
        if device is None:
            raise fail(404, f"no device {aet!r}")
        return device

    def changed(aet: str, what: str) -> dict[str, Any]:
        guard.audit(audit.SECURITY_ALERT, action="U", detail=f"device {aet}: {what}")
        return {"ok": True, "device": device_json(device_or_404(aet))}

    @app.get("/admin/devices")
    @guard("admin")
    def devices_page():
        return render("devices.tpl", user=guard.user(), csrf=guard.csrf_token(), section="devices", info=overview())

    @app.get("/api/devices")
    @guard("admin")
    def devices_api() -> dict:
        return overview()

    @app.post("/api/devices/policy")
    @guard("admin")
    def set_policy() -> dict:
        try:
            policy = archive.devices.set_policy(request.forms.getunicode("policy", ""))
        except DeviceError as exc:
            raise fail(400, str(exc)) from None
        guard.audit(audit.SECURITY_ALERT, action="U", detail=f"device policy: {policy}")
        return {"ok": True, "policy": policy}

    @app.post("/api/devices/<aet:path>/approve")
    @guard("admin")
    def approve(aet: str) -> dict:
        device_or_404(aet)
        try:
            archive.devices.approve(aet)
        except DeviceError as exc:
            raise fail(400, str(exc)) from None
        return changed(aet, "approved")

    @app.post("/api/devices/<aet:path>/ignore")
    @guard("admin")
    def ignore(aet: str) -> dict:
        device_or_404(aet)
        archive.devices.ignore(aet)
        return changed(aet, "ignored")

    @app.post("/api/devices/<aet:path>/rename")
    @guard("admin")
    def rename(aet: str) -> dict:
        device_or_404(aet)
        name = request.forms.getunicode("name", "")
        archive.devices.rename(aet, name)
        return changed(aet, f"named {name.strip()!r}")

    @app.post("/api/devices/<aet:path>/edit")
    @guard("admin")
    def edit(aet: str) -> dict:
        """Change the fields the form (or an API client) sends; the others stay."""
        device_or_404(aet)
        allowed = request.forms.getall("allowed")
        try:
            device, _ = archive.devices.edit(
                aet,
                new_aet=_last("aet") or None,
                host=_last("host"),
                port=_port(_last("port")),
                allowed=parse_operations(",".join(allowed)) if allowed else None,
                charset_override=_last("charset_override"),
                accept_private_sop_classes=_flag("accept_private_sop_classes"),
                lenient_aet=_flag("lenient_aet"),
            )
        except (DeviceError, NodeError) as exc:
            raise fail(400, str(exc)) from None
        return changed(device.aet, "edited")

    @app.post("/api/devices/<aet:path>/echo")
    @guard("admin")
    def echo(aet: str) -> dict:
        device_or_404(aet)
        try:
            ok, message = echo_device(archive, aet, calling_aet)
        except DeviceError as exc:
            return {"ok": False, "message": str(exc)}
        return {"ok": ok, "message": message}

    @app.post("/api/forwarding/rules")
    @guard("admin")
    def add_rule() -> dict:
        form = request.forms
        try:
            rule = archive.forwarding.add_rule(
                form.getunicode("destination", ""), form.getunicode("modality", ""), form.getunicode("calling_ae", "")
            )
        except (ForwardError, NodeError) as exc:
            raise fail(400, str(exc)) from None
        guard.audit(audit.SECURITY_ALERT, action="C", detail=f"forwarding rule {rule.id} to {rule.destination}")
        return {"ok": True, "rule": asdict(rule)}

    @app.delete("/api/forwarding/rules/<rule_id>")
    @guard("admin")
    def remove_rule(rule_id: str) -> dict:
        if not rule_id.isdigit() or not archive.forwarding.remove_rule(int(rule_id)):
            raise fail(404, f"no forwarding rule {rule_id}")
        guard.audit(audit.SECURITY_ALERT, action="D", detail=f"forwarding rule {rule_id} removed")
        return {"ok": True}
