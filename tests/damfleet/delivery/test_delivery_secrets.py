"""Target credentials never leave their config model as text: every target type's definition,
with every credential field set, is repr'd, printed, dumped (Python and JSON), described,
logged and refused, and no secret's text appears in any of it. The one way to the value is
``.get_secret_value()``, which only the call into the client library makes.

A new target type must get a definition in ``_definitions`` (the test fails for it otherwise),
so its credentials are checked here too.
"""

from __future__ import annotations

import functools
import logging

import asyncssh
import pytest
from pydantic import SecretStr

from damfleet.delivery import parse_target
from damfleet.delivery.http import auth_headers
from damfleet.delivery.targets import TARGET_TYPES
from damfleet.errors import ConfigurationError


@functools.cache
def _keys() -> tuple[str, str]:
    """(an encrypted private key's text, a host key line) made here: nothing is read from disk."""
    client = asyncssh.generate_private_key("ssh-ed25519")
    host = asyncssh.generate_private_key("ssh-ed25519")
    private = client.export_private_key("pkcs8-pem", passphrase="SECRET-passphrase-1f").decode()
    return private, host.export_public_key("openssh").decode().strip()


def _secret(field: str) -> str:
    return f"SECRET-{field}-1f"


def _definitions(kind: str) -> list[dict[str, object]]:
    """Valid definitions of ``kind`` that, between them, set every credential field it has."""
    remote = {"host": "files.partner.example", "username": "u", "password": _secret("password")}
    if kind == "local":
        return [{"path": "/srv/out"}]
    if kind == "s3":
        return [{"bucket": "b", **{f: _secret(f) for f in ("access_key_id", "secret_access_key", "session_token")}}]
    if kind == "http":
        url = "https://drop.partner.example/{filename}"
        headers = {"X-Api-Key": _secret("header")}
        return [{"url": url, "bearer_token": _secret("bearer_token"), "headers": headers},
                {"url": url, "username": "u", "password": _secret("password"), "headers": headers}]
    if kind == "webhook":
        return [{"url": "https://hooks.example/in", "secret": _secret("secret"),
                 "bearer_token": _secret("bearer_token"), "headers": {"X-Api-Key": _secret("header")}}]
    if kind == "sftp":
        private_key, host_key = _keys()
        return [{**remote, "host_key": host_key, "private_key": private_key,
                 "private_key_passphrase": "SECRET-passphrase-1f"}]
    if kind in ("ftp", "ftps"):
        return [remote]
    raise AssertionError(f"no definition for target type {kind!r}: add one to this test")


def _forbidden(definition: dict[str, object]) -> list[str]:
    """The texts that must never appear: each secret, and a line from inside the private key."""
    texts = [v for v in definition.values() if isinstance(v, str) and v.startswith("SECRET-")]
    texts += list(definition.get("headers", {}).values())  # type: ignore[attr-defined]
    if "private_key" in definition:
        texts.append(str(definition["private_key"]).splitlines()[2])   # key material, not the armour
    return texts


@pytest.mark.parametrize("kind", sorted(TARGET_TYPES))
def test_every_target_types_credentials_stay_hidden(kind: str, caplog: pytest.LogCaptureFixture) -> None:
    target_type = TARGET_TYPES[kind]
    secrets = target_type.config.secret_fields()
    if kind != "local":
        assert secrets, f"{kind}: a target type that logs in has SecretStr credential fields"
    for name in secrets:
        assert target_type.config.model_fields[name].annotation is SecretStr, (kind, name)
    definitions = _definitions(kind)
    covered = {k for d in definitions for k in d}
    assert secrets <= covered, f"{kind}: the test sets every credential field ({secrets - covered} missing)"
    for definition in definitions:
        config = parse_target("t", {"type": kind, **definition}, env={})
        for name in secrets & set(definition):
            revealed = getattr(config, name).get_secret_value()
            assert revealed == definition[name], f"{kind}.{name}: the value is still there to use"
        with caplog.at_level(logging.DEBUG):
            logging.getLogger("damfleet.test").info("config %r / %s", config, config)
        shown = "\n".join([
            repr(config), str(config), str(config.model_dump()), config.model_dump_json(),
            str(config.model_dump(mode="json")), config.describe(), caplog.text,
        ])
        forbidden = _forbidden(definition)
        assert forbidden or kind == "local"
        for text in forbidden:
            assert text not in shown, f"{kind}: secret text shows in repr/str/dump/log"
        # A refused definition names what is wrong, never the secrets around it.
        with pytest.raises(ConfigurationError, match="'t'") as refused:
            parse_target("t", {"type": kind, **definition, "concurrency": "many"}, env={})
        for text in forbidden:
            assert text not in str(refused.value), f"{kind}: secret text shows in the error"


def test_a_secret_of_the_wrong_type_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigurationError, match="'t'.*secret_access_key must be a string") as refused:
        parse_target("t", {"type": "s3", "bucket": "b", "secret_access_key": 918273645}, env={})
    assert "918273645" not in str(refused.value)


def test_auth_headers_reveal_the_credentials_for_the_wire_only() -> None:
    headers = {"X-Api-Key": SecretStr("k")}
    assert auth_headers(headers, SecretStr("tok")) == {"X-Api-Key": "k", "Authorization": "Bearer tok"}
    basic = auth_headers({}, username="u", password=SecretStr("p"))
    assert basic == {"Authorization": "Basic dTpw"}
    assert auth_headers({}) == {}
