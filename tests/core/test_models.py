"""Session and run ids: prefix plus a plain suffix from the caller's source."""

from __future__ import annotations

from uuid import UUID

import pytest

from agent_session_manager.core.errors import ValidationError
from agent_session_manager.core.models import new_run_id, new_session_id


def test_session_id_is_ses_plus_the_uuid_hex() -> None:
    assert new_session_id(UUID(int=255)) == "ses_" + "0" * 30 + "ff"


def test_run_id_is_run_plus_the_given_suffix() -> None:
    assert new_run_id("turn-1_a") == "run_turn-1_a"


@pytest.mark.parametrize("suffix", ["", "a b", "x/y", "ü"])
def test_an_id_suffix_outside_letters_digits_dash_underscore_is_invalid_format(
    suffix: str,
) -> None:
    with pytest.raises(ValidationError) as caught:
        new_session_id(suffix)
    assert caught.value.code == "invalid_format"
