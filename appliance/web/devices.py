"""Devices page (admin): learned and discovered devices with what each may do now, the device
policy, the DICOM nodes, forwarding rules and their retry queue; and the JSON twins.  Thin:
``archive.devices``, ``archive.access``, ``archive.discovered``, ``archive.forwarding`` and
``dicom.scu`` (the Test buttons' C-ECHO) do the work."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from typing import Any

import bottle
from bottle import request

from appliance import certificates
from appliance.archive import (
    OPERATIONS,
    POLICIES,
    Archive,
    DeviceError,
    DicomNode,
    ForwardError,
    LearnedDevice,
    NodeError,
    audit,
    device_access,
    parse_operations,
)
from appliance.certificates import fingerprint
from appliance.config import Settings
from appliance.dicom.scu import echo_device, echo_node
from appliance.web.auth import Guard, fail
from appliance.web.studies import with_study_labels
from appliance.web.templates import render


def node_json(node: DicomNode) -> dict[str, Any]:
    return {**asdict(node), "allowed": sorted(node.allowed)}


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
        raise fail(400, f"port: a number such as 104, not {value!r}") from None


def _allowed() -> frozenset[str] | None:
    """The ticked operations; None when the form has none (a hidden empty value comes first,
    so that a form with every box unticked still says "none")."""
    values = request.forms.getall("allowed")
    return parse_operations(",".join(values)) if values else None


def install(app: bottle.Bottle, archive: Archive, guard: Guard, settings: Settings) -> None:
    default_aet, query_retrieve_from = settings.aet, settings.query_retrieve_from

    def device_json(device: LearnedDevice) -> dict[str, Any]:
        """A device with what it may do now (``access``); ``allowed`` is what its node, once it
        has one, allows."""
        access = device_access(device, archive.nodes.get(device.aet), archive.devices.policy, query_retrieve_from)
        return {**asdict(device), "allowed": sorted(device.allowed), "access": asdict(access)}

    def overview() -> dict[str, Any]:
        info = {
            "policy": archive.devices.policy,
            "policies": list(POLICIES),
            "query_retrieve_from": query_retrieve_from,
            "operations": list(OPERATIONS),
            "devices": [device_json(d) for d in archive.devices.all()],
            "nodes": [node_json(n) for n in archive.nodes.all()],
            "discovered": [asdict(s) for s in archive.discovered.all()],
            "forwarding": forwarding(),
        }
        return {**info, "version": version(info)}

    def forwarding() -> dict[str, Any]:
        return {
            "rules": [asdict(r) for r in archive.forwarding.rules()],
            "queue": with_study_labels(archive, [asdict(j) for j in archive.forwarding.queue()]),
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
        """Approve, with the device's host and own DICOM port when the form gives them."""
        device_or_404(aet)
        try:
            device, node = archive.devices.approve(aet, host=_last("host") or None, port=_port(_last("port")))
        except (DeviceError, NodeError) as exc:
            raise fail(400, str(exc)) from None
        answer = changed(aet, "approved" + (f" as node {node.host}:{node.port}" if node else " without a port"))
        if node is None:
            answer["warning"] = (
                f"{device.aet} is approved: it may send images. Without its DICOM port, Lightbox cannot"
                " send it studies (C-MOVE, forwarding) or test it: enter the port under Edit."
            )
        return answer

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
        try:
            device, _ = archive.devices.edit(
                aet,
                new_aet=_last("aet") or None,
                host=_last("host"),
                port=_port(_last("port")),
                allowed=_allowed(),
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
            ok, message = echo_device(archive, aet, archive.site.ae_title(default_aet))
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

    # The node table: C-MOVE destinations, forwarding destinations, who may query and retrieve.
    def node_or_404(aet: str) -> DicomNode:
        node = archive.nodes.get(aet)
        if node is None:
            raise fail(404, f"no node {aet!r}")
        return node

    def save_node(aet: str, current: DicomNode | None) -> dict[str, Any]:
        """Add a node (``current`` None) or change one with the fields the request sends; the
        others stay as they are (a new node may do everything, unless the form says otherwise)."""
        host, name, port, allowed = _last("host"), _last("name"), _port(_last("port")), _allowed()
        if current is None:
            if port is None:
                raise fail(400, "port: enter the DICOM port the node listens on (often 104 or 11112)")
            if archive.nodes.get(aet) is not None:
                raise fail(409, f"there is already a node {aet.strip()}: change that one instead")
        base = current or DicomNode(aet, "", 0, "", frozenset(OPERATIONS))  # what a new node starts from
        try:
            node, _ = archive.devices.save_node(
                aet,
                base.host if host is None else host,
                base.port if port is None else port,
                base.name if name is None else name,
                base.allowed if allowed is None else allowed,
                new=current is None,
                tls=_flag("tls"),
                tls_trust=_last("tls_trust"),
            )
        except NodeError as exc:
            raise fail(400, str(exc)) from None
        allowed_now = ",".join(sorted(node.allowed)) or "nothing"
        trust = f", trusts certificate {fingerprint(node.tls_trust)}" if node.tls_trust else ""
        guard.audit(
            audit.SECURITY_ALERT, action="U" if current else "C",
            detail=f"node {node.aet} {'changed' if current else 'added'}: {node.host}:{node.port}"
                   f"{' over TLS' if node.tls else ''}, allowed {allowed_now}{trust}",
        )  # fmt: skip
        return {"ok": True, "node": node_json(node)}

    @app.get("/api/nodes")
    @guard("admin")
    def nodes_api() -> dict:
        return {"nodes": [node_json(n) for n in archive.nodes.all()], "operations": list(OPERATIONS)}

    @app.post("/api/nodes")
    @guard("admin")
    def add_node() -> dict:
        return save_node(request.forms.getunicode("aet", ""), None)

    @app.post("/api/nodes/<aet:path>/edit")
    @guard("admin")
    def edit_node(aet: str) -> dict:
        current = node_or_404(aet)
        return save_node(current.aet, current)

    @app.delete("/api/nodes/<aet:path>")
    @guard("admin")
    def remove_node(aet: str) -> dict:
        node = node_or_404(aet)
        try:
            archive.devices.remove_node(node.aet)
        except NodeError as exc:
            raise fail(409, str(exc)) from None
        guard.audit(audit.SECURITY_ALERT, action="D", detail=f"node {node.aet} removed")
        return {"ok": True}

    @app.post("/api/nodes/<aet:path>/echo")
    @guard("admin")
    def test_node(aet: str) -> dict:
        node = node_or_404(aet)
        identity = certificates.identity(settings) if node.tls else None
        ok, message = echo_node(node, archive.site.ae_title(default_aet), identity)
        return {"ok": ok, "message": message}
