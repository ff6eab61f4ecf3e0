"""Credential references: resolution rules, file permissions, and no secret in any output."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import asyncssh
import pytest

from pacs_tui.credentials import (
    REDACTED,
    CredentialError,
    CredentialResolver,
    CredentialSet,
    Secret,
    SecretRedactor,
    SecretRef,
)

PASSWORD = "Tr0ub4dor&3-horse"


def secret_file(tmp_path: Path, text: str, mode: int = 0o600, name: str = "secret") -> Path:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(mode)
    return path


def resolver(**environ: str) -> CredentialResolver:
    return CredentialResolver(environ=environ, redactor=SecretRedactor())


# -- Secret ---------------------------------------------------------------------------


def test_secret_never_prints_its_value() -> None:
    secret = Secret(PASSWORD)
    shown = [repr(secret), str(secret), f"{secret}", f"{secret!r}", "%s" % secret]  # noqa: UP031  (logging formats this way)
    shown.append(repr([secret, {"password": secret}]))
    assert all(PASSWORD not in text for text in shown)
    assert REDACTED in str(secret)
    assert secret.reveal() == PASSWORD


def test_secret_compares_by_value_and_is_unhashable() -> None:
    assert Secret("abc") == Secret("abc")
    assert Secret("abc") != Secret("abd")
    with pytest.raises(TypeError):
        hash(Secret("abc"))


# -- parsing references ---------------------------------------------------------------


def test_parse_reference_schemes(tmp_path: Path) -> None:
    assert SecretRef.parse("env:PACS_BMC") == SecretRef("env", "PACS_BMC")
    assert SecretRef.parse("keyring:pacs-tui/bmc/root") == SecretRef("keyring", "pacs-tui/bmc/root")
    relative = SecretRef.parse("file:keys/bmc.pw", base_dir=tmp_path)
    assert relative == SecretRef("file", str(tmp_path / "keys/bmc.pw"))
    assert SecretRef.parse("file:/etc/x").target == "/etc/x"


@pytest.mark.parametrize("text", [PASSWORD, "plain:" + PASSWORD, "env:", "env:1BAD-NAME"])
def test_parse_rejects_non_references_without_echoing_a_password(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        SecretRef.parse(text)
    assert PASSWORD not in str(caught.value)


# -- env ----------------------------------------------------------------------------


def test_env_reference_resolves_and_caches() -> None:
    environ = {"PACS_BMC_PASSWORD": PASSWORD}
    res = CredentialResolver(environ=environ, redactor=None)
    ref = SecretRef.parse("env:PACS_BMC_PASSWORD")
    assert res.resolve(ref).reveal() == PASSWORD
    environ["PACS_BMC_PASSWORD"] = "rotated-password"
    assert res.resolve(ref).reveal() == PASSWORD  # cached
    res.forget()
    assert res.resolve(ref).reveal() == "rotated-password"


@pytest.mark.parametrize("value", [None, ""])
def test_env_reference_unset_or_empty_fails(value: str | None) -> None:
    environ = {} if value is None else {"PACS_BMC_PASSWORD": value}
    with pytest.raises(CredentialError, match="env:PACS_BMC_PASSWORD: environment variable"):
        resolver(**environ).resolve(SecretRef.parse("env:PACS_BMC_PASSWORD"))


def test_default_resolver_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PACS_TUI_TEST_SECRET", PASSWORD)
    got = CredentialResolver(redactor=None).resolve(SecretRef.parse("env:PACS_TUI_TEST_SECRET"))
    assert got.reveal() == PASSWORD


# -- file ---------------------------------------------------------------------------


def test_file_reference_owner_only_resolves_and_drops_one_newline(tmp_path: Path) -> None:
    path = secret_file(tmp_path, PASSWORD + "\n", 0o600)
    assert resolver().resolve(SecretRef("file", str(path))).reveal() == PASSWORD
    read_only = secret_file(tmp_path, PASSWORD + "\n\n", 0o400, name="ro")
    assert resolver().resolve(SecretRef("file", str(read_only))).reveal() == PASSWORD + "\n"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_file_readable_by_others_is_refused_with_the_fix(tmp_path: Path, mode: int) -> None:
    path = secret_file(tmp_path, PASSWORD, mode)
    with pytest.raises(CredentialError) as caught:
        resolver().resolve(SecretRef("file", str(path)))
    message = str(caught.value)
    assert f"{mode:04o}" in message
    assert f"chmod 600 {path}" in message
    assert PASSWORD not in message


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_file_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    path = secret_file(tmp_path, PASSWORD, 0o600)
    os.chown(path, 4242, 4242)
    with pytest.raises(CredentialError, match="owned by uid 4242"):
        resolver().resolve(SecretRef("file", str(path)))


def test_file_problems_are_named(tmp_path: Path) -> None:
    res = resolver()
    with pytest.raises(CredentialError, match="does not exist"):
        res.resolve(SecretRef("file", str(tmp_path / "missing")))
    with pytest.raises(CredentialError, match="not a regular file"):
        res.resolve(SecretRef("file", str(tmp_path)))
    with pytest.raises(CredentialError, match="empty"):
        res.resolve(SecretRef("file", str(secret_file(tmp_path, "\n", name="empty"))))
    big = secret_file(tmp_path, "x" * (64 * 1024 + 1), name="big")
    with pytest.raises(CredentialError, match="larger than"):
        res.resolve(SecretRef("file", str(big)))


async def test_private_key_from_file_is_usable_by_asyncssh(tmp_path: Path) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    path = tmp_path / "id_ed25519"
    key.write_private_key(str(path))
    path.chmod(0o600)
    creds = resolver().credentials(
        CredentialSet("ssh-ops", "pacsops", private_key=SecretRef("file", str(path)))
    )
    assert creds.private_key is not None
    imported = asyncssh.import_private_key(creds.private_key.reveal())
    assert imported.public_data == key.public_data


# -- keyring --------------------------------------------------------------------------


def test_keyring_reference_forms() -> None:
    entries = {("pacs-bmc", "root"): PASSWORD, ("pacs/bmc", "admin"): "other-pass"}
    res = CredentialResolver(
        environ={}, keyring_lookup=lambda s, u: entries.get((s, u)), redactor=None
    )
    by_set_user = res.resolve(SecretRef.parse("keyring:pacs-bmc"), username="root")
    assert by_set_user.reveal() == PASSWORD
    explicit = res.resolve(SecretRef.parse("keyring:pacs/bmc/admin"), username="root")
    assert explicit.reveal() == "other-pass"
    with pytest.raises(CredentialError, match="no keyring entry for user 'nobody'"):
        res.resolve(SecretRef.parse("keyring:pacs-bmc"), username="nobody")
    with pytest.raises(CredentialError, match="no user"):
        res.resolve(SecretRef.parse("keyring:pacs-bmc"))


def test_keyring_without_the_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "keyring", None)  # makes `import keyring` fail
    with pytest.raises(CredentialError, match="pip install keyring"):
        resolver().resolve(SecretRef.parse("keyring:pacs-bmc/root"))


def test_keyring_backend_errors_do_not_leak_their_text() -> None:
    def broken(service: str, user: str) -> str | None:
        raise RuntimeError(f"backend dump containing {PASSWORD}")

    res = CredentialResolver(environ={}, keyring_lookup=broken, redactor=None)
    with pytest.raises(CredentialError) as caught:
        res.resolve(SecretRef.parse("keyring:svc/root"))
    assert "RuntimeError" in str(caught.value)
    assert PASSWORD not in str(caught.value)


# -- sets -----------------------------------------------------------------------------


def test_check_reports_each_failing_reference_with_its_set(tmp_path: Path) -> None:
    sets = [
        CredentialSet("bmc-admin", "root", password=SecretRef.parse("env:GOOD")),
        CredentialSet(
            "ssh-ops",
            "pacsops",
            password=SecretRef.parse("env:MISSING"),
            private_key=SecretRef("file", str(tmp_path / "nokey")),
        ),
    ]
    failures = resolver(GOOD=PASSWORD).check(sets)
    assert [(f.credential_set, f.ref) for f in failures] == [
        ("ssh-ops", "env:MISSING"),
        ("ssh-ops", f"file:{tmp_path / 'nokey'}"),
    ]
    assert all("credential set 'ssh-ops'" in str(f) for f in failures)


# -- logs -----------------------------------------------------------------------------


def test_redactor_scrubs_resolved_secrets_from_log_records(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key_text = "-----BEGIN KEY-----\nAAAAbase64linethatissecret\n-----END KEY-----"
    redactor = SecretRedactor()
    res = CredentialResolver(environ={"PW": PASSWORD}, redactor=redactor)
    res.resolve(SecretRef.parse("env:PW"))
    res.resolve(SecretRef("file", str(secret_file(tmp_path, key_text))))
    caplog.handler.addFilter(redactor)
    logger = logging.getLogger("pacs_tui.test.redaction")
    with caplog.at_level(logging.DEBUG, logger=logger.name):
        logger.warning("login failed with password %s for root", PASSWORD)
        logger.info("key line AAAAbase64linethatissecret seen")
        try:
            raise ValueError(f"bad password {PASSWORD}")
        except ValueError:
            logger.exception("probe crashed")
    text = caplog.text
    assert PASSWORD not in text
    assert "AAAAbase64linethatissecret" not in text
    assert text.count(REDACTED) >= 3
    assert "login failed with password ******** for root" in text
    assert "ValueError" in text  # the traceback is kept, only the value goes


def test_redactor_install_attaches_to_logger_handlers() -> None:
    logger = logging.getLogger("pacs_tui.test.install")
    handler = logging.NullHandler()
    logger.addHandler(handler)
    try:
        redactor = SecretRedactor()
        redactor.install(logger)
        redactor.install(logger)
        assert handler.filters.count(redactor) == 1
    finally:
        logger.removeHandler(handler)


def test_resolver_debug_log_names_the_reference_only(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="pacs_tui.credentials"):
        CredentialResolver(environ={"PW": PASSWORD}, redactor=None).resolve(
            SecretRef.parse("env:PW")
        )
    assert "resolved env:PW" in caplog.text
    assert PASSWORD not in caplog.text
