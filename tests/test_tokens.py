"""The token table on its own: what it keeps, and for how long."""

from __future__ import annotations

import pytest

from emulator import tokens
from emulator.clock import Clock


def test_unspent_refresh_tokens_are_bounded_oldest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "MAX_REFRESH_TOKENS", 3)
    store = tokens.TokenStore(Clock())
    issued = [store.issue_refresh("src", "key") for _ in range(4)]
    assert store.redeem_refresh(issued[0], "key") is None  # the oldest was dropped
    assert [store.redeem_refresh(t, "key") for t in issued[1:]] == ["src", "src", "src"]
