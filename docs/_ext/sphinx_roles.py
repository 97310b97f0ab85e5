"""A griffe extension for the API pages: our reST-flavoured docstrings read right as Markdown.

Docstrings cross-reference with reST roles (``:class:`SessionClient```) and introduce code
with ``::`` and an indented block; Markdown would print the first verbatim and run the second
into the paragraph. Roles become inline code; ``::`` blocks become fenced code.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|meth|func|mod|data|attr|exc|obj):`~?([^`]+)`")
#: A paragraph ending in ``::``, a blank line, then the indented literal block.
_LITERAL = re.compile(r"::\n\n((?:(?:[ \t]+\S[^\n]*)?\n?)+)")


def _fence(match: re.Match[str]) -> str:
    block = textwrap.dedent(match.group(1)).strip("\n")
    return f":\n\n```\n{block}\n```\n\n"


class SphinxRoles(griffe.Extension):
    """Rewrite roles to inline code and ``::`` literal blocks to fences, in every docstring."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            text = _LITERAL.sub(_fence, obj.docstring.value)
            obj.docstring.value = _ROLE.sub(r"`\1`", text)
