"""Reading request headers from the ASGI scope: the one-pass reader agrees with the single look-up."""

from __future__ import annotations

from emulator.web.requests import header, headers


def test_headers_give_each_names_first_value_as_header_does() -> None:
    scope = {"headers": [(b"content-type", b"application/json"), (b"authorization", b"Bearer first"),
                         (b"x-caf\xe9", b"na\xefve"), (b"authorization", b"Bearer second")]}
    fields = headers(scope)
    assert fields[b"authorization"] == b"Bearer first"
    for name in (b"content-type", b"authorization", b"x-caf\xe9", b"content-length"):
        given = fields.get(name)
        assert (None if given is None else given.decode("latin-1")) == header(scope, name)
