"""Pages are compiled once: bottle caches a compiled template under the id() of its lookup
list, so the list must be the same object on every render (a new list per render, once other
threads' objects took the old one's address, compiled the page again and kept every copy)."""

from __future__ import annotations

import bottle

from appliance.web.templates import render


def test_a_page_is_compiled_once() -> None:
    pages, others = [], []
    for n in range(50):
        pages.append(render("error.tpl", status=404, message=f"no study {n}", user=None))
        others.append([n])  # as another thread would: takes the address a freed list had
    assert "no study 49" in pages[-1] and "<h1>Error 404</h1>" in pages[0]
    assert len([key for key in bottle.TEMPLATES if key[1] == "error.tpl"]) == 1
