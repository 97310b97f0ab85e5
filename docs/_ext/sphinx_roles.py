"""A griffe extension for the API pages: Sphinx roles in docstrings become inline code.

Our docstrings cross-reference with reST roles (``:class:`SessionClient```, ``:mod:`core.events```),
which Markdown would print verbatim; the name alone, as code, reads right on the page.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|meth|func|mod|data|attr|exc|obj):`~?([^`]+)`")


class SphinxRoles(griffe.Extension):
    """Rewrite ``:role:`target``` to ``target`` in code style, in every docstring."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _ROLE.sub(r"`\1`", obj.docstring.value)
