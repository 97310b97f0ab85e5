"""Large content travels by reference: what a reference is, and when content takes one.

Prompts, system prompts and final replies can be megabytes. Carried in workflow and activity
payloads they would hit Temporal's 2 MB payload limit (the task fails, and retries forever)
and grow every history that holds them, once per event that carries them. So anything above
:data:`INLINE_LIMIT` bytes is stored in SQL, content-addressed (``store.put_content``), and
the payloads carry a :class:`ContentRef`: its digest and size. History then holds
references, statuses and usage; the text lives in the store.

Pure code: computing a reference needs no I/O, so client, activities and tests agree on it.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

#: Content up to this many bytes (UTF-8) rides inline; above it, by reference. Small enough
#: that hundreds of inline prompts in one history stay far from its limits, large enough
#: that an ordinary chat turn costs no store round trip.
INLINE_LIMIT = 4 * 1024

#: The only digest algorithm: ``sha256:`` and 64 lowercase hex digits.
DIGEST_PATTERN = re.compile(r"sha256:[0-9a-f]{64}")

#: Text content, as prompts and replies are.
TEXT_MEDIA_TYPE = "text/plain; charset=utf-8"

#: A digest as :func:`digest_of` spells it.
Digest = Annotated[str, Field(pattern=DIGEST_PATTERN.pattern, max_length=71)]


class ContentRef(BaseModel):
    """Where stored content is, and how big: what a payload carries instead of the content."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    digest: Digest = Field(description="sha256 of the content's bytes: 'sha256:<hex>'")
    size: int = Field(ge=0, description="the content's size in bytes")
    media_type: str = Field(default=TEXT_MEDIA_TYPE, min_length=1, max_length=255)


def content_bytes(content: str | bytes) -> bytes:
    """Content as the bytes that are hashed and stored (text as UTF-8)."""
    return content.encode() if isinstance(content, str) else content


def digest_of(data: bytes) -> str:
    """The content address of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def ref_of(content: str | bytes, media_type: str = TEXT_MEDIA_TYPE) -> ContentRef:
    """The reference ``content`` gets when stored."""
    data = content_bytes(content)
    return ContentRef(digest=digest_of(data), size=len(data), media_type=media_type)


def travels_by_reference(content: str | bytes | None) -> bool:
    """Does ``content`` travel by reference (is it over :data:`INLINE_LIMIT` bytes)?"""
    if content is None:
        return False
    # A str's UTF-8 size is at least its length and at most four times it: decide cheaply
    # when that settles it, encode only in between.
    if isinstance(content, str):
        if len(content) > INLINE_LIMIT:
            return True
        if 4 * len(content) <= INLINE_LIMIT:
            return False
    return len(content_bytes(content)) > INLINE_LIMIT


__all__ = [
    "DIGEST_PATTERN",
    "INLINE_LIMIT",
    "TEXT_MEDIA_TYPE",
    "ContentRef",
    "Digest",
    "content_bytes",
    "digest_of",
    "ref_of",
    "travels_by_reference",
]
