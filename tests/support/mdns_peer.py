"""Another process on the LAN, for the discovery tests (python-zeroconf, separate from Lightbox's).

python mdns_peer.py browse TYPE       print one JSON line per event (added/updated with the
                                      resolved service, removed) until killed
python mdns_peer.py announce NAME TYPE PORT KEY=VALUE...
                                      announce a service on 127.0.0.1 until stdin closes
"""

from __future__ import annotations

import json
import sys
import time

from zeroconf import ServiceBrowser, ServiceInfo, ServiceStateChange, Zeroconf


def _text(value: bytes | None) -> str:
    return value.decode() if value else ""


def browse(service_type: str) -> None:
    zc = Zeroconf()

    def on_change(zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        event: dict = {"event": state_change.name.lower(), "name": name}
        if state_change is not ServiceStateChange.Removed:
            info = zeroconf.get_service_info(service_type, name, timeout=3000)
            if info is None:
                return
            event.update(
                addresses=info.parsed_addresses(),
                port=info.port,
                server=info.server,
                txt={_text(k): _text(v) for k, v in info.properties.items()},
            )
        print(json.dumps(event), flush=True)

    ServiceBrowser(zc, service_type, handlers=[on_change])
    try:
        while True:
            time.sleep(1)
    finally:
        zc.close()


def announce(name: str, service_type: str, port: int, pairs: list[str]) -> None:
    txt = dict(pair.split("=", 1) for pair in pairs)
    zc = Zeroconf(interfaces=["127.0.0.1"])
    info = ServiceInfo(
        service_type, f"{name}.{service_type}", port=port, properties=txt,
        server="peer.local.", parsed_addresses=["127.0.0.1"],
    )  # fmt: skip
    zc.register_service(info)
    print("announced", flush=True)
    sys.stdin.read()  # until the test closes our stdin
    zc.unregister_service(info)
    zc.close()


if __name__ == "__main__":
    if sys.argv[1] == "browse":
        browse(sys.argv[2])
    else:
        announce(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:])
