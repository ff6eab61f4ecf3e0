"""Resolving credential references: sources, file modes, and no secret in any output."""

from __future__ import annotations

import logging
import os
import textwrap
from pathlib import Path

import pytest

from pacs_tui.credentials import (
    REDACTED,
    REDACTOR,
    Credential,
    CredentialError,
    Secret,
    SecretRedactor,
    resolve,
)
from pacs_tui.inventory import Inventory, load_inventory_text
from peers import require_capability

PASSWORD = "Tr0ub4dor&3-horse"


def private(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.fixture
def inventory(tmp_path: Path) -> Inventory:
    private(
        tmp_path / "secrets.yaml",
        f"bmc-vendor-b: {{username: root, password: '{PASSWORD}'}}\n"
        "no-user: {password: other-password}\n",
    )
    private(tmp_path / "id_ops", "-----BEGIN OPENSSH PRIVATE KEY-----\n")
    text = """\
        credentials:
          bmc-admin: {username: admin, password_env: PACS_TUI_TEST_BMC_PW}
          bmc-vendor-b: {username: ignored, file: secrets.yaml}
          no-user: {file: secrets.yaml}
          absent-entry: {file: secrets.yaml}
          ssh-ops: {key_file: id_ops}
        sites: [{name: dc, kind: datacenter}]
        servers:
          - {name: db-1, site: dc, role: database}
        """
    return load_inventory_text(textwrap.dedent(text), tmp_path / "inventory.yaml")


# -- Secret ---------------------------------------------------------------------------


def test_secret_never_prints_its_value() -> None:
    secret = Secret(PASSWORD)
    shown = [repr(secret), str(secret), f"{secret}", f"{secret!r}", "%s" % secret]  # noqa: UP031
    shown.append(repr(Credential("admin", password=secret)))
    assert all(PASSWORD not in text for text in shown)
    assert repr(secret) == "'******'" and str(secret) == REDACTED
    assert secret.reveal() == PASSWORD


def test_secret_compares_by_value_and_is_unhashable() -> None:
    assert Secret("abc") == Secret("abc")
    assert Secret("abc") != Secret("abd")
    with pytest.raises(TypeError):
        hash(Secret("abc"))


# -- sources ----------------------------------------------------------------------------


def test_password_from_environment(inventory: Inventory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PACS_TUI_TEST_BMC_PW", PASSWORD)
    credential = resolve(inventory, "bmc-admin")
    assert credential.username == "admin"
    assert credential.password is not None and credential.password.reveal() == PASSWORD
    assert credential.key_file is None
    other = resolve(inventory, "bmc-admin", environ={"PACS_TUI_TEST_BMC_PW": "from-mapping"})
    assert other.password is not None and other.password.reveal() == "from-mapping"


@pytest.mark.parametrize("environ", [{}, {"PACS_TUI_TEST_BMC_PW": ""}])
def test_unset_environment_variable_is_named(inventory: Inventory, environ: dict[str, str]) -> None:
    with pytest.raises(CredentialError) as caught:
        resolve(inventory, "bmc-admin", environ=environ)
    assert str(caught.value) == (
        "credential 'bmc-admin' (environment variable PACS_TUI_TEST_BMC_PW): is not set or empty"
    )


def test_password_from_secrets_file(inventory: Inventory) -> None:
    credential = resolve(inventory, "bmc-vendor-b")
    assert credential.username == "root"  # the secrets file's username wins
    assert credential.password is not None and credential.password.reveal() == PASSWORD
    no_user = resolve(inventory, "no-user")
    assert no_user.username is None
    assert no_user.password is not None and no_user.password.reveal() == "other-password"


def test_secrets_file_without_the_entry(inventory: Inventory, tmp_path: Path) -> None:
    with pytest.raises(CredentialError, match="has no entry 'absent-entry'"):
        resolve(inventory, "absent-entry")


def test_secrets_file_mode_is_checked_again_at_resolve_time(
    inventory: Inventory, tmp_path: Path
) -> None:
    (tmp_path / "secrets.yaml").chmod(0o644)  # loosened after the inventory loaded
    with pytest.raises(CredentialError) as caught:
        resolve(inventory, "bmc-vendor-b")
    message = str(caught.value)
    assert "has mode 0644; it must be 0600" in message
    assert f"secrets file {tmp_path / 'secrets.yaml'}" in message
    assert PASSWORD not in message


def test_secrets_file_removed_or_broken(inventory: Inventory, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.yaml"
    private(secrets, f"bmc-vendor-b: {{password: '{PASSWORD}'\n")  # unclosed flow mapping
    with pytest.raises(CredentialError) as caught:
        resolve(inventory, "bmc-vendor-b")
    assert "is not valid YAML" in str(caught.value)
    assert PASSWORD not in str(caught.value)  # the parser's snippet would have shown it
    secrets.unlink()
    with pytest.raises(CredentialError, match="file is missing"):
        resolve(inventory, "bmc-vendor-b")


def test_secrets_file_owned_by_someone_else(inventory: Inventory, tmp_path: Path) -> None:
    if os.geteuid() != 0:  # CI runs as root: there this fails instead of skipping
        require_capability("giving a file to another owner needs root")
    os.chown(tmp_path / "secrets.yaml", 4242, 4242)
    with pytest.raises(CredentialError, match="owned by uid 4242"):
        resolve(inventory, "bmc-vendor-b")


def test_key_file_is_returned_as_a_path_and_its_mode_rechecked(
    inventory: Inventory, tmp_path: Path
) -> None:
    credential = resolve(inventory, "ssh-ops")
    assert credential == Credential(None, password=None, key_file=tmp_path / "id_ops")
    (tmp_path / "id_ops").chmod(0o640)
    with pytest.raises(CredentialError, match="has mode 0640"):
        resolve(inventory, "ssh-ops")


def test_unknown_reference(inventory: Inventory) -> None:
    with pytest.raises(CredentialError, match=r"'nope'.*no such credential reference"):
        resolve(inventory, "nope")


# -- logs -------------------------------------------------------------------------------


def test_resolved_passwords_are_scrubbed_from_logs(
    inventory: Inventory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.handler.addFilter(REDACTOR)
    logger = logging.getLogger("pacs_tui.test.redaction")
    try:
        with caplog.at_level(logging.DEBUG):
            resolve(inventory, "bmc-vendor-b")  # registers the password with REDACTOR
            logger.warning("login to bmc failed with password %s", PASSWORD)
            try:
                raise ValueError(f"server said: bad password {PASSWORD}")
            except ValueError:
                logger.exception("probe crashed")
    finally:
        caplog.handler.removeFilter(REDACTOR)
    assert PASSWORD not in caplog.text
    assert "login to bmc failed with password ******\n" in caplog.text
    assert "ValueError: server said: bad password ******" in caplog.text
    assert "resolved credential 'bmc-vendor-b'" in caplog.text


def test_redactor_install_adds_one_filter_per_handler() -> None:
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


def test_short_values_are_redacted_as_whole_tokens_only() -> None:
    redactor = SecretRedactor()
    redactor.add(Secret("ab"))
    redactor.add(Secret(PASSWORD))
    # Before: a secret under 4 characters was never redacted ("ab" stayed in the text).
    assert redactor.redact(f"ab {PASSWORD}") == f"{REDACTED} {REDACTED}"
    assert redactor.redact("password=ab; about tab ab_c") == f"password={REDACTED}; about tab ab_c"
