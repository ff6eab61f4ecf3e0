"""Inventory loading: the model it builds, and every mistake reported with file and line."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

from pacs_tui.credentials import SecretRef
from pacs_tui.inventory import (
    BmcAccess,
    DicomAccess,
    Fleet,
    InventoryError,
    SshAccess,
    dump_inventory,
    load_inventory,
    parse_inventory,
)
from pacs_tui.roles import ROLES

GOOD = """\
version: 1
sites:
  - {name: dc-north, kind: datacenter, description: new data center}
  - {name: st-mary, kind: hospital}
credentials:
  bmc-admin:
    username: root
    password: env:PACS_BMC_PASSWORD
  ssh-ops:
    username: pacsops
    private_key: file:keys/id_ed25519
defaults:
  site: dc-north
  bmc: {credentials: bmc-admin, verify_tls: false}
  ssh: {credentials: ssh-ops, port: 2222}
  dicom: {calling_ae: CONTROL_ROOM}
servers:
  - name: db-01
    role: database
    address: 10.20.0.5
    bmc: {address: 10.21.0.5}
    rack: R01-U10
  - name: arch-01
    role: archive
    address: 10.20.0.11
    bmc: {address: 10.21.0.11, port: 8443, verify_tls: true, system_path: /redfish/v1/Systems/1/}
    dicom: {ae_title: ARCH01, port: 11112}
    depends_on: [db-01]
    tags: [tier1, archive]
  - name: gw-stmary
    role: edge-gateway
    site: st-mary
    address: gw-stmary.example.org
    dicom: {ae_title: GW_STMARY}
    ssh: false
    depends_on: [arch-01]
  - name: viewer-01
    role: web-viewer
    address: "::1"
    bmc: {address: "fd00::21", scheme: http}
    services: [nginx, viewer, redis]
    depends_on: [arch-01, db-01]
"""


def write(tmp_path: Path, text: str, name: str = "inventory.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(tmp_path: Path, text: str, name: str = "inventory.yaml") -> list[str]:
    path = write(tmp_path, text, name)
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    # Relative to tmp_path so assertions read like the CLI output.
    return [str(p).replace(f"{tmp_path}/", "") for p in caught.value.problems]


def server_yaml(body: str, *, header: str = "") -> str:
    return header + "servers:\n" + textwrap.indent(textwrap.dedent(body), "  ")


# -- a good inventory -----------------------------------------------------------------


def test_good_inventory_builds_the_model_with_defaults_applied(tmp_path: Path) -> None:
    fleet = load_inventory(write(tmp_path, GOOD))
    assert [s.name for s in fleet] == ["db-01", "arch-01", "gw-stmary", "viewer-01"]
    assert fleet.warnings == ()
    db, arch, gw, viewer = fleet.servers

    assert db.site == "dc-north"  # defaults.site
    assert db.services == ROLES["database"].units
    assert db.bmc == BmcAccess(address="10.21.0.5", credentials="bmc-admin", verify_tls=False)
    assert db.ssh == SshAccess(port=2222, credentials="ssh-ops")
    assert db.dicom is None and not db.speaks_dicom
    assert db.rack == "R01-U10"

    assert arch.bmc is not None
    assert arch.bmc.url == "https://10.21.0.11:8443"
    assert arch.bmc.verify_tls is True  # the server overrides the default
    assert arch.bmc.system_path == "/redfish/v1/Systems/1"
    assert arch.dicom == DicomAccess(ae_title="ARCH01", port=11112, calling_ae="CONTROL_ROOM")
    assert arch.tags == frozenset({"tier1", "archive"})
    assert arch.location.line == 23 and arch.location.path.endswith("inventory.yaml")

    assert gw.site == "st-mary" and gw.ssh is None and gw.bmc is None
    assert gw.address == "gw-stmary.example.org"
    assert gw.dicom is not None and gw.dicom.port == 104

    assert viewer.services == ("nginx", "viewer", "redis")
    assert viewer.bmc is not None and viewer.bmc.url == "http://[fd00::21]:443"

    assert fleet.sites["dc-north"].kind == "datacenter"
    assert fleet.roles() == ["database", "archive", "edge-gateway", "web-viewer"]
    bmc_set = fleet.bmc_credentials(db)
    assert bmc_set is not None and bmc_set.password == SecretRef("env", "PACS_BMC_PASSWORD")
    ssh_set = fleet.ssh_credentials(db)
    # file: references are anchored at the inventory's folder, not the working directory.
    assert ssh_set is not None
    assert ssh_set.private_key == SecretRef("file", str(tmp_path / "keys/id_ed25519"))
    assert fleet.ssh_credentials(gw) is None


def test_selection_and_direct_dependencies(tmp_path: Path) -> None:
    fleet = load_inventory(write(tmp_path, GOOD))
    assert [s.name for s in fleet.select(site="dc-north")] == ["db-01", "arch-01", "viewer-01"]
    assert [s.name for s in fleet.select(role="archive", tag="tier1")] == ["arch-01"]
    assert fleet.select(tag="nope") == ()
    assert [s.name for s in fleet.dependents("arch-01")] == ["gw-stmary", "viewer-01"]
    assert [s.name for s in fleet.dependencies("viewer-01")] == ["arch-01", "db-01"]
    assert "db-01" in fleet and "db-99" not in fleet and fleet.get("db-99") is None


def test_dump_then_load_gives_an_equal_fleet(tmp_path: Path) -> None:
    fleet = load_inventory(write(tmp_path, GOOD))
    text = dump_inventory(fleet)
    assert "defaults" not in text
    again = parse_inventory(text, source="dumped.yaml", base_dir=tmp_path)
    assert again.servers == fleet.servers
    assert dict(again.sites) == dict(fleet.sites)
    assert dict(again.credentials) == dict(fleet.credentials)


# -- where mistakes are reported --------------------------------------------------------


def test_every_error_is_reported_in_one_run_with_line_and_column(tmp_path: Path) -> None:
    text = server_yaml(
        """\
        - name: db-01
          role: database
          site: dc
          address: 10.0.0.5
          tag: tier1
        - name: arch-01
          role: archive
          site: dc
          address: 10.0.0.300
          dicom: {ae_title: THIS_AE_TITLE_IS_TOO_LONG, port: 70000}
        - name: arch-02
          role: archve
          site: dc
          address: 10.0.0.12
        """
    )
    assert problems_of(tmp_path, text) == [
        "inventory.yaml:6:5: error: server db-01: unknown key 'tag' (did you mean 'tags'?)",
        "inventory.yaml:10:5: error: server arch-01.address: '10.0.0.300' is neither "
        "an IP address nor a host name",
        "inventory.yaml:11:13: error: server arch-01.dicom.ae_title: AE title "
        "'THIS_AE_TITLE_IS_TOO_LONG' is longer than 16 characters",
        "inventory.yaml:11:50: error: server arch-01.dicom.port: expected a port 1-65535, "
        "got the number 70000",
        "inventory.yaml:13:5: error: server arch-02: role 'archve' is not a built-in role "
        "(did you mean 'archive'?); give 'services' (the systemd units to check)",
    ]


def test_yaml_syntax_error_points_at_the_line(tmp_path: Path) -> None:
    text = "servers:\n  - name: a\n    role: [database\n    site: dc\n"
    [problem] = problems_of(tmp_path, text)
    assert problem.startswith("inventory.yaml:")
    assert int(problem.split(":")[1]) in (4, 5)
    assert "YAML syntax" in problem


def test_duplicate_yaml_keys_are_errors_not_silently_overwritten(tmp_path: Path) -> None:
    text = server_yaml(
        """\
        - name: db-01
          role: database
          site: dc
          address: 10.0.0.5
          address: 10.0.0.6
        """
    )
    assert problems_of(tmp_path, text) == [
        "inventory.yaml:6:5: error: duplicate key 'address' (first at line 5)"
    ]


def test_yaml_booleans_and_numbers_where_text_belongs_say_quote_it(tmp_path: Path) -> None:
    text = server_yaml(
        """\
        - name: no
          role: database
          site: dc
          address: 10.0.0.5
        """
    )
    [problem] = problems_of(tmp_path, text)
    assert problem == (
        "inventory.yaml:2:5: error: servers[0].name: expected text, "
        "got the boolean false (quote it in YAML)"
    )


def test_missing_required_fields(tmp_path: Path) -> None:
    text = server_yaml("- name: db-01\n  role: database\n")
    assert problems_of(tmp_path, text) == [
        "inventory.yaml:2:5: error: server db-01: 'site' is required",
        "inventory.yaml:2:5: error: server db-01: 'address' is required",
    ]


def test_plain_text_password_is_refused_and_never_echoed(tmp_path: Path) -> None:
    text = """\
        credentials:
          bmc:
            username: root
            password: Summer2024!
          lazy: Summer2024!
        servers:
          - name: db-01
            role: database
            site: dc
            address: 10.0.0.5
            bmc: {address: 10.1.0.5, password: Summer2024!}
        """
    found = problems_of(tmp_path, text)
    assert all("Summer2024!" not in p for p in found)
    assert found[0].startswith(
        "inventory.yaml:4:5: error: credentials.bmc.password: not a credential"
    )
    assert found[1] == (
        "inventory.yaml:5:3: error: credentials.lazy: expected a mapping with username "
        "and references"
    )
    assert found[2].startswith(
        "inventory.yaml:11:30: error: server db-01.bmc: unknown key 'password'"
    )
    assert "secrets belong in a credential set" in found[2]


def test_dicom_role_needs_an_ae_title_unless_switched_off(tmp_path: Path) -> None:
    base = "- name: arch-01\n  role: archive\n  site: dc\n  address: 10.0.0.11\n"
    assert problems_of(tmp_path, server_yaml(base)) == [
        "inventory.yaml:2:5: error: server arch-01: role 'archive' speaks DICOM; give "
        "dicom.ae_title (or 'dicom: false' if this server offers no DICOM service)"
    ]
    fleet = load_inventory(write(tmp_path, server_yaml(base + "  dicom: false\n")))
    assert fleet["arch-01"].dicom is None


def test_custom_role_needs_services_and_warns_when_close_to_a_known_one(tmp_path: Path) -> None:
    text = server_yaml(
        """\
        - name: hl7-01
          role: hl7-broker
          site: dc
          address: 10.0.0.40
          services: [mirth]
        - name: db-01
          role: databases
          site: dc
          address: 10.0.0.5
          services: postgresql, pgbouncer
        """
    )
    fleet = load_inventory(write(tmp_path, text))
    assert fleet["hl7-01"].services == ("mirth",)
    assert fleet["db-01"].services == ("postgresql", "pgbouncer")
    assert [str(w).replace(f"{tmp_path}/", "") for w in fleet.warnings] == [
        "inventory.yaml:8:5: warning: server db-01: custom role 'databases' "
        "(did you mean 'database'?)"
    ]


def test_cross_server_checks(tmp_path: Path) -> None:
    text = """\
        sites: [dc-north, st-mary]
        credentials:
          bmc-admin: {username: root, password: env:PW}
        servers:
          - {name: db-01, role: database, site: dc-nort, address: 10.0.0.5,
             bmc: {address: 10.1.0.5, credentials: bmc-admn}}
          - {name: DB-01, role: database, site: dc-north, address: 10.0.0.6}
          - {name: db-02, role: database, site: dc-north, address: 10.0.0.7,
             bmc: {address: 10.1.0.5}, depends_on: [db-02, stor-01]}
        """
    assert problems_of(tmp_path, text) == [
        "inventory.yaml:7:5: error: server DB-01: duplicate name ('db-01' differs only in "
        "case), first at inventory.yaml:5:5",
        "inventory.yaml:5:5: error: server db-01: unknown site 'dc-nort' "
        "(did you mean 'dc-north'?)",
        "inventory.yaml:5:5: error: server db-01: bmc.credentials names unknown set "
        "'bmc-admn' (did you mean 'bmc-admin'?)",
        "inventory.yaml:8:5: error: server db-02: depends on itself",
        "inventory.yaml:8:5: error: server db-02: depends on unknown server 'stor-01'",
        "inventory.yaml:8:5: error: server db-02: BMC https://10.1.0.5:443 is already the "
        "BMC of db-01 (inventory.yaml:5:5)",
    ]


def test_dependency_cycle_is_named(tmp_path: Path) -> None:
    text = server_yaml(
        """\
        - {name: a, role: database, site: dc, address: 10.0.0.1, depends_on: [b]}
        - {name: b, role: database, site: dc, address: 10.0.0.2, depends_on: [c]}
        - {name: c, role: database, site: dc, address: 10.0.0.3, depends_on: [a]}
        - {name: d, role: database, site: dc, address: 10.0.0.4, depends_on: [a]}
        """
    )
    assert problems_of(tmp_path, text) == [
        "inventory.yaml:2:5: error: dependency cycle: a -> b -> c -> a"
    ]


def test_duplicate_ae_title_is_a_warning(tmp_path: Path) -> None:
    text = server_yaml(
        """\
        - {name: r1, role: dicom-router, site: dc, address: 10.0.0.1, dicom: {ae_title: ROUTER}}
        - {name: r2, role: dicom-router, site: dc, address: 10.0.0.2, dicom: {ae_title: ROUTER}}
        """
    )
    fleet = load_inventory(write(tmp_path, text))
    assert len(fleet) == 2
    [warning] = fleet.warnings
    assert "AE title 'ROUTER' is also used by r1" in warning.message
    assert warning.location.line == 3


def test_top_level_and_version_mistakes(tmp_path: Path) -> None:
    text = "version: 2\nserver: []\n"
    assert problems_of(tmp_path, text) == [
        "inventory.yaml:2:1: error: unknown top-level key 'server' (did you mean 'servers'?)",
        "inventory.yaml:1:1: error: inventory version 2 is not supported (this pacs-tui reads 1)",
    ]
    assert problems_of(tmp_path, "version: 1\n") == [
        "inventory.yaml:1: error: the inventory lists no servers"
    ]


def test_missing_file_is_an_inventory_error(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="no such file"):
        load_inventory(tmp_path / "absent.yaml")


# -- CSV --------------------------------------------------------------------------------

CSV = """\
name,role,site,address,bmc.address,bmc.credentials,dicom.ae_title,depends_on,tags
db-01,database,dc,10.0.0.5,10.1.0.5,bmc-admin,,,tier1
# comment rows and blank lines are skipped

arch-01,archive,dc,10.0.0.11,10.1.0.11,bmc-admin,ARCH01,db-01,tier1 archive
"""


def test_bare_csv_loads_with_dotted_columns(tmp_path: Path) -> None:
    path = write(tmp_path, CSV.replace(",bmc-admin", ","), "servers.csv")
    fleet = load_inventory(path)
    arch = fleet["arch-01"]
    assert arch.bmc == BmcAccess(address="10.1.0.11")
    assert arch.dicom == DicomAccess(ae_title="ARCH01")
    assert arch.depends_on == ("db-01",)
    assert arch.tags == {"tier1", "archive"}
    assert arch.location.line == 5


def test_csv_errors_name_the_row_line(tmp_path: Path) -> None:
    text = CSV.replace("10.0.0.11", "not_a_host").replace("bmc-admin", "")
    text += "x1,database,dc,10.0.0.9,,,,,,extra\n"
    assert problems_of(tmp_path, text, "servers.csv") == [
        "servers.csv:6: error: row has 10 cells but the header names 9",
        "servers.csv:5: error: server arch-01.address: 'not_a_host' is neither an IP "
        "address nor a host name",
    ]


def test_yaml_includes_csv_rows_with_yaml_defaults(tmp_path: Path) -> None:
    (tmp_path / "racks").mkdir()
    write(tmp_path, CSV, "racks/servers.csv")
    text = """\
        credentials:
          bmc-admin: {username: root, password: env:PW}
        defaults:
          dicom: {calling_ae: CONTROL_ROOM}
          bmc: {port: 8443}
        servers:
          - {name: gw-01, role: edge-gateway, site: dc, address: 10.0.0.50,
             dicom: {ae_title: GW01}, depends_on: [arch-01]}
        servers_from: [racks/servers.csv]
        """
    fleet = load_inventory(write(tmp_path, text))
    assert [s.name for s in fleet] == ["gw-01", "db-01", "arch-01"]
    arch = fleet["arch-01"]
    assert arch.dicom == DicomAccess(ae_title="ARCH01", calling_ae="CONTROL_ROOM")
    assert arch.bmc is not None and arch.bmc.port == 8443 and arch.bmc.credentials == "bmc-admin"
    assert arch.location.path == str(tmp_path / "racks/servers.csv")
    assert tmp_path / "racks/servers.csv" in fleet.sources


def test_included_csv_errors_point_into_the_csv(tmp_path: Path) -> None:
    write(tmp_path, CSV.replace("ARCH01", "ARCH\\01"), "servers.csv")
    text = "credentials: {bmc-admin: {username: root}}\nservers_from: servers.csv\n"
    assert problems_of(tmp_path, text) == [
        "servers.csv:5: error: server arch-01.dicom.ae_title: AE title 'ARCH\\\\01' may hold "
        "printable ASCII only, without '\\'"
    ]
    assert problems_of(tmp_path, "servers_from: [absent.csv]\n") == [
        "inventory.yaml:1:1: error: absent.csv: no such file"
    ]


# -- scale ------------------------------------------------------------------------------


def big_inventory(count: int) -> str:
    lines = ["credentials:", "  bmc: {username: root, password: env:PW}", "servers:"]
    for i in range(count):
        n = f"{i // 250}.{i % 250 + 1}"
        lines += [
            f"  - name: arch-{i:04d}",
            "    role: archive",
            f"    site: site-{i % 19}",
            f"    address: 10.0.{n}",
            f"    bmc: {{address: 10.100.{n}, credentials: bmc}}",
            f"    dicom: {{ae_title: ARCH{i:04d}}}",
            f"    depends_on: [{f'arch-{i - 1:04d}' if i % 10 else ''}]",
        ]
    return "\n".join(lines) + "\n"


def test_three_thousand_servers_load_quickly(tmp_path: Path) -> None:
    path = write(tmp_path, big_inventory(3000))
    started = time.perf_counter()
    fleet: Fleet = load_inventory(path)
    elapsed = time.perf_counter() - started
    assert len(fleet) == 3000 and len(fleet.sites) == 19
    assert len(fleet.startup_waves()) == 10
    assert elapsed < 5.0, f"loading 3 000 servers took {elapsed:.2f} s"
