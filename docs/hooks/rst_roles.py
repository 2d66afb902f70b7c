"""MkDocs hook: docstrings use Sphinx-style roles (``:func:`name```); show them as plain code."""

from __future__ import annotations

import re

_ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|obj):(?=<code>)")


def on_page_content(html, page, config, files):
    return _ROLE.sub("", html)
