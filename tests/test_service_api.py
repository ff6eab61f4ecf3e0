"""``pacs-tui serve``'s API: documented exactly, answered as documented, and who may do what.

- ``docs/openapi.yaml`` is a valid OpenAPI document whose paths and methods are
  exactly the routes ``build_app`` makes, and whose writes are exactly
  ``api.WRITES`` and every route that is not a GET;
- against a real ``pacs-tui serve`` (its own process) on a 12-server simulator
  (its own process), every answer validates against the document: reads by a
  viewer, the SSE stream's events, an operator's plan and batch;
- a viewer, no token, an unknown token or Basic credentials change nothing
  through any write, and nothing reaches a BMC or a host: counted at the
  simulator (each BMC's resets and requests, each host's power and units),
  the custody board and the audit log; no token is ever written to the log,
  to an answer or to the audit;
- an operator's batch sends exactly the one reset it planned, audited under
  ``token:lead``; a second batch and a stale ``expect.touched`` are 409 and
  send nothing; a ``--read-only`` service refuses every write, operator or not;
- bad requests are 400 naming the field, and bad command lines exit 2 naming
  the file and entry, never with a traceback.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_core.validation.request.exceptions import InvalidRequestBody
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate as validate_spec

from service_process import RunningService, running_service
from sim_process import RunningSim, running_sim, wait_until
from sim_process import audit_rows as sim_audit_rows

SPEC_FILE = Path(__file__).resolve().parents[1] / "docs" / "openapi.yaml"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
PACS_TUI = [sys.executable, "-m", "pacs_tui"]
SESSIONS = "/redfish/v1/SessionService/Sessions"
TARGET = "web-001"  # the one server the operator's batch restarts
# A token no tokens file holds (as long as a real one), and how the tests ask with no valid one.
WRONG = "x" * 43


# -- the document ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    document = yaml.safe_load(SPEC_FILE.read_text())
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def openapi() -> OpenAPI:
    return OpenAPI.from_file_path(str(SPEC_FILE))


def spec_routes(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {(m.upper(), p) for p, item in spec["paths"].items() for m in item if m in METHODS}


def spec_writes(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (m.upper(), p)
        for p, item in spec["paths"].items()
        for m, op in item.items()
        if m in METHODS and op.get("x-write")
    }


def app_routes(tmp_path: Path) -> set[tuple[str, str]]:
    """(method, path) of every route of the app ``pacs-tui serve`` builds (HEAD aside)."""
    from pacs_tui.batch.audit import AuditLog
    from pacs_tui.inventory import load_inventory
    from pacs_tui.service.api import build_app
    from pacs_tui.service.fleet_service import FleetService
    from pacs_tui.service.tokens import TokenTable

    inventory = load_inventory(Path(__file__).parent / "inventories" / "good" / "minimal.yaml")
    audit = AuditLog(tmp_path / "audit.sqlite3")
    try:
        service = FleetService(inventory, "", audit=audit)  # built, never started
        app = build_app(service, TokenTable([]), metrics=lambda: (b"", "text/plain"))
        routes = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource}
    finally:
        audit.close()
    heads = {p for m, p in routes if m == "HEAD"}
    # aiohttp adds HEAD beside every GET; a HEAD of its own would need documenting.
    assert heads == {p for m, p in routes if m == "GET"}
    return {(m, p) for m, p in routes if m != "HEAD"}


def test_the_document_is_valid_openapi(spec: dict[str, Any]) -> None:
    validate_spec(spec)
    assert spec["openapi"].startswith("3.1")
    assert spec["components"]["securitySchemes"]["bearer"] == {
        **spec["components"]["securitySchemes"]["bearer"], "type": "http", "scheme": "bearer",
    }  # fmt: skip
    assert spec["security"] == [{"bearer": []}]


def test_the_document_has_exactly_the_apps_routes(spec: dict[str, Any], tmp_path: Path) -> None:
    routes = app_routes(tmp_path)
    assert len(routes) >= 13
    assert spec_routes(spec) == routes, (
        f"undocumented: {sorted(routes - spec_routes(spec))}; "
        f"documented but not served: {sorted(spec_routes(spec) - routes)}"
    )


def test_every_route_that_is_not_a_get_is_a_write(spec: dict[str, Any], tmp_path: Path) -> None:
    """A new POST that is not in ``WRITES`` would be open to viewers: it fails here."""
    from pacs_tui.service.api import WRITES

    routes = app_routes(tmp_path)
    not_get = {(m, p) for m, p in routes if m != "GET"}
    assert not_get, "the app has no write at all?"
    assert not_get <= WRITES, f"not in api.WRITES: {sorted(not_get - WRITES)}"
    assert set(WRITES) <= routes, f"WRITES names no route: {sorted(WRITES - routes)}"
    assert spec_writes(spec) == set(WRITES)


def test_every_event_the_service_publishes_is_documented(spec: dict[str, Any]) -> None:
    """A new event name must get its data schema in ``x-events``."""
    source = Path(__file__).resolve().parents[1] / "pacs_tui" / "service"
    kinds = {
        kind
        for path in source.glob("*.py")
        for kind in re.findall(r"publish\(\s*\"([\w-]+)\"", path.read_text())
    }
    kinds |= set(re.findall(r'event="([\w-]+)"', (source / "api.py").read_text()))
    assert {"snapshot", "readings", "batch", "notice"} <= kinds  # the scan finds them
    documented = spec["paths"]["/api/v1/events"]["get"]["x-events"]
    assert set(documented) == kinds
    for name in documented:
        event_validator(spec, name)  # the reference resolves


# -- one simulator, one service ---------------------------------------------------------


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSim]:
    out = tmp_path_factory.mktemp("api-sim") / "dc"
    # Generic BMCs only: a restart is one GracefulRestart, so "one reset" is exact.
    with running_sim(
        out, "--servers", "12", "--time-scale", "0.05", "--bmc-mix", "generic=1"
    ) as running:
        yield running


@dataclass
class Served:
    service: RunningService
    data: Path  # PACS_TUI_DATA_DIR of the service: audit.sqlite3, custody.json

    @property
    def lead(self) -> str:
        return self.service.tokens["lead"]

    @property
    def wall(self) -> str:
        return self.service.tokens["wall"]


def start_service(sim: RunningSim, workdir: Path, *args: str) -> Any:
    data = workdir / "data"
    return running_service(
        sim.out / "inventory.yaml", workdir, "--custody", *args,
        env={"PACS_TUI_DATA_DIR": str(data)},
    )  # fmt: skip


@pytest.fixture(scope="module")
def served(sim: RunningSim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("api-serve")
    with start_service(sim, workdir) as service:
        here = Served(service, workdir / "data")
        names = {s["name"] for s in sim.servers()}

        def powered() -> bool:
            status, _, text = call(here, "GET", "/api/v1/snapshot", here.wall)
            readings = json.loads(text)["readings"] if status == 200 else []
            return {r["server"] for r in readings if r["probe"] == "power"} == names

        wait_until(powered, timeout=60, interval=0.3, what="a power reading of every server")
        yield here


# Every answer body and SSE text the service gave in this module: no token may be in one.
ANSWERS: list[str] = []


def call(
    served: Served,
    method: str,
    path: str,
    token: str | None = None,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], str]:
    """One request; (status, headers, body text). Every body is kept in ``ANSWERS``."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(served.service.url + path, data=data, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            status, head, text = answer.status, dict(answer.headers), answer.read().decode()
    except urllib.error.HTTPError as exc:
        status, head, text = exc.code, dict(exc.headers), exc.read().decode()
    ANSWERS.append(text)
    return status, head, text


def check(
    openapi: OpenAPI,
    served: Served,
    method: str,
    path: str,
    answer: tuple[int, dict[str, str], str],
    *,
    query: dict[str, str] | None = None,
    body: Any = None,
) -> Any:
    """Validate one answer (and its request's ``body``) against the document; the parsed JSON."""
    if body is not None:
        validate_request(openapi, served, path, body)
    status, head, text = answer
    content_type = head.get("Content-Type", "")
    request = MockRequest(
        served.service.url, method, path, args=query,
        headers={"Authorization": f"Bearer {served.wall}"},
        data=None if body is None else json.dumps(body).encode(),
    )  # fmt: skip
    response = MockResponse(
        text.encode(), status_code=status, headers=head,
        content_type=content_type.split(";")[0].strip(),
    )  # fmt: skip
    openapi.validate_response(request, response)
    return json.loads(text) if content_type.startswith("application/json") else text


def validate_request(openapi: OpenAPI, served: Served, path: str, body: Any) -> None:
    """Validate a POST body against the document's request schema."""
    headers = {"Authorization": f"Bearer {served.lead}"}
    data = json.dumps(body).encode()
    openapi.validate_request(
        MockRequest(served.service.url, "POST", path, data=data, headers=headers)
    )


def query_string(query: dict[str, str]) -> str:
    return "?" + "&".join(f"{k}={urllib.request.quote(v)}" for k, v in query.items())


# -- what the simulator received, custody, audit ---------------------------------------


def control(sim: RunningSim, path: str) -> Any:
    with urllib.request.urlopen(sim.control_url + path, timeout=10) as answer:
        return json.loads(answer.read())


@dataclass(frozen=True)
class Received:
    """What every BMC and host of the simulator shows of the commands it got."""

    resets: dict[str, tuple[str, ...]]
    writes: dict[str, Counter[tuple[str, str]]]  # (method, path) → count, logins/logouts aside
    hosts: dict[str, tuple[str, str, str]]  # power, OS state, units


def received(sim: RunningSim) -> Received:
    resets: dict[str, tuple[str, ...]] = {}
    writes: dict[str, Counter[tuple[str, str]]] = {}
    for server in sim.servers():
        name = server["name"]
        bmc = control(sim, f"/hosts/{name}/bmc")
        resets[name] = tuple(bmc["resets"])
        writes[name] = Counter(
            {
                (r["method"], r["path"]): int(r["count"])
                for r in bmc["requests"]
                if r["method"] not in ("GET", "HEAD")
                # the poller's own logins and logouts are not commands
                and not (r["method"] == "POST" and r["path"] == SESSIONS)
                and not (r["method"] == "DELETE" and r["path"].startswith(SESSIONS + "/"))
            }
        )
    hosts = {
        h["name"]: (h["power_state"], h["os_state"], json.dumps(h["units"], sort_keys=True))
        for h in control(sim, "/hosts")
    }
    return Received(resets, writes, hosts)


def audit_rows(data: Path) -> list[dict[str, Any]]:
    return sim_audit_rows(data, missing_ok=True)  # a service that wrote nothing has no log


def custody_board(served: Served) -> Any:
    status, _, text = call(served, "GET", "/api/v1/custody", served.wall)
    assert status == 200, text
    return json.loads(text)


# -- SSE ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SseEvent:
    id: str  # INSTANCE:SEQ
    name: str
    data: Any

    @property
    def seq(self) -> int:
        return int(self.id.partition(":")[2])


def read_events(
    served: Served,
    token: str,
    *,
    last_event_id: str | None = None,
    until: str = "",
    count: int = 1,
    timeout: float = 30.0,
) -> list[SseEvent]:
    """Events of ``GET /api/v1/events``: ``count`` of them, or up to one named ``until``."""
    request = urllib.request.Request(served.service.url + "/api/v1/events")
    request.add_header("Authorization", f"Bearer {token}")
    if last_event_id is not None:
        request.add_header("Last-Event-ID", last_event_id)
    events: list[SseEvent] = []
    fields: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    with urllib.request.urlopen(request, timeout=timeout) as stream:
        assert stream.status == 200
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        while time.monotonic() < deadline:
            line = stream.readline().decode()
            assert line, "the stream ended"
            ANSWERS.append(line)
            line = line.rstrip("\r\n")
            if line.startswith(":"):
                continue  # a comment (ping)
            if line:
                key, _, value = line.partition(":")
                fields[key] = value[1:] if value.startswith(" ") else value
                continue
            if "data" in fields:
                events.append(SseEvent(fields["id"], fields["event"], json.loads(fields["data"])))
                if (until and events[-1].name == until) or (not until and len(events) >= count):
                    return events
            fields = {}
    raise AssertionError(f"timed out reading events; got {[e.name for e in events]}")


def event_validator(spec: dict[str, Any], name: str) -> OAS31Validator:
    ref = spec["paths"]["/api/v1/events"]["get"]["x-events"][name]["$ref"]
    return OAS31Validator({"$ref": ref, "components": spec["components"]})


# -- 2. every answer validates ------------------------------------------------------------


READS: list[tuple[str, dict[str, str] | None]] = [
    ("/api/v1/service", None),
    ("/api/v1/inventory", None),
    ("/api/v1/snapshot", None),
    ("/api/v1/batches/current", None),
    ("/api/v1/custody", None),
    ("/api/v1/audit", None),
    ("/api/v1/audit", {"since": "1d", "limit": "5"}),
    ("/api/v1/audit", {"batch": "no-such-batch"}),
    ("/api/v1/audit/interrupted", None),
    ("/metrics", None),
]


def test_every_read_by_a_viewer_validates(
    spec: dict[str, Any], openapi: OpenAPI, served: Served
) -> None:
    gets = {p for m, p in spec_routes(spec) if m == "GET"} - {"/api/v1/events"}
    assert {p for p, _ in READS} == gets  # a new GET gets a line here
    for path, query in READS:
        answer = call(served, "GET", path + (query_string(query) if query else ""), served.wall)
        status = answer[0]
        # No batch has run yet unless the batch test ran first: 404 then, documented too.
        assert status == 200 or (path == "/api/v1/batches/current" and status == 404), answer
        check(openapi, served, "GET", path, answer, query=query)
    snapshot = check(openapi, served, "GET", "/api/v1/snapshot",
                     call(served, "GET", "/api/v1/snapshot", served.wall))  # fmt: skip
    assert snapshot["service"]["servers"] == 12 and len(snapshot["readings"]) >= 12
    metrics = call(served, "GET", "/metrics", served.wall)[2]
    assert f'server="{TARGET}"' in metrics
    # Asked without a token: 401, as documented (with the WWW-Authenticate header).
    for path, _ in READS:
        answer = call(served, "GET", path)
        assert answer[0] == 401, answer
        check(openapi, served, "GET", path, answer)


def test_a_wrong_field_type_fails_validation(openapi: OpenAPI, served: Served) -> None:
    """The schemas are tight: one field of the wrong type in a real answer fails it."""
    from openapi_core.validation.response.exceptions import InvalidData

    status, head, text = call(served, "GET", "/api/v1/snapshot", served.wall)
    good = json.loads(text)
    check(openapi, served, "GET", "/api/v1/snapshot", (status, head, text))
    breakages = [
        lambda s: s.update(seq=str(s["seq"])),
        lambda s: s["readings"][0]["result"].update(latency_ms="12"),
        lambda s: s["readings"][0]["result"].update(health="fine"),
        lambda s: s["service"].update(read_only="no"),
        lambda s: s["readings"][0].update(history=["1.0"]),
        lambda s: s.update(extra=1),
    ]
    for breakage in breakages:
        bad = copy.deepcopy(good)
        breakage(bad)
        with pytest.raises(InvalidData):
            check(openapi, served, "GET", "/api/v1/snapshot", (status, head, json.dumps(bad)))


def test_the_event_stream_starts_with_a_snapshot(spec: dict[str, Any], served: Served) -> None:
    (first,) = read_events(served, served.wall)
    assert first.name == "snapshot"
    event_validator(spec, "snapshot").validate(first.data)
    assert first.id == f"{first.data['instance']}:{first.data['seq']}"
    assert first.data["service"]["servers"] == 12
    # Ids this run never issued (another run's, a foreign text): a fresh snapshot again.
    for foreign in (f"0{first.data['instance']}:{first.seq}", str(first.seq), "yesterday"):
        (again,) = read_events(served, served.wall, last_event_id=foreign)
        assert again.name == "snapshot" and again.seq >= first.seq, foreign
        event_validator(spec, "snapshot").validate(again.data)
    with pytest.raises(Exception, match="is not of type"):
        event_validator(spec, "snapshot").validate({**first.data, "seq": "7"})


def test_an_operator_plan_validates_and_is_audited_as_the_token(
    openapi: OpenAPI, sim: RunningSim, served: Served
) -> None:
    body = {"verb": "restart", "servers": [TARGET]}
    before = received(sim)
    answer = call(served, "POST", "/api/v1/batches/plan", served.lead, body)
    assert answer[0] == 200, answer
    plan = check(openapi, served, "POST", "/api/v1/batches/plan", answer, body=body)
    assert plan["touched"] == [TARGET] and not plan["refused"]
    rows = [r for r in audit_rows(served.data) if r["batch"] == plan["batch"]]
    assert rows and {r["operator"] for r in rows} == {"token:lead"}
    assert [(r["kind"], r["outcome"]) for r in rows] == [("plan", "dry-run")]
    audit = check(openapi, served, "GET", "/api/v1/audit",
                  call(served, "GET", f"/api/v1/audit?batch={plan['batch']}", served.wall),
                  query={"batch": plan["batch"]})  # fmt: skip
    assert [e["operator"] for e in audit["events"]] == ["token:lead"]
    after = received(sim)  # a plan sends nothing
    assert after.resets == before.resets and after.writes == before.writes


# -- 3. who may do what -------------------------------------------------------------------


def write_bodies(served: Served) -> dict[tuple[str, str], Any]:
    """For each write, a body an operator's request would act on."""
    return {
        ("POST", "/api/v1/batches/plan"): {"verb": "force-off", "servers": [TARGET]},
        ("POST", "/api/v1/batches/plan/{batch}/decline"): None,
        ("POST", "/api/v1/audit/interrupted/{batch}/ack"): None,
        ("POST", "/api/v1/batches"): {
            "verb": "force-off",
            "servers": [TARGET],
            "confirm": "1",
            "expect": {"touched": [TARGET]},
        },
        ("POST", "/api/v1/batches/current/pause"): None,
        ("POST", "/api/v1/batches/current/resume"): None,
        ("POST", "/api/v1/batches/current/abort"): None,
        ("POST", "/api/v1/custody"): {"how": "advance", "servers": [TARGET, "web-002"]},
    }


def all_writes(tmp_path: Path) -> list[tuple[str, str]]:
    """api.WRITES and every route of the app that is not a GET."""
    from pacs_tui.service.api import WRITES

    routes = app_routes(tmp_path)
    return sorted(set(WRITES) | {(m, p) for m, p in routes if m != "GET"})


def credentials(served: Served) -> dict[str, tuple[dict[str, str], int]]:
    """How a caller without an operator's bearer token may ask, and the status it must get."""
    basic = base64.b64encode(f"lead:{served.lead}".encode()).decode()
    return {
        "viewer": ({"Authorization": f"Bearer {served.wall}"}, 403),
        "viewer, lower-case scheme": ({"Authorization": f"bearer {served.wall}"}, 403),
        "no token": ({}, 401),
        "empty bearer": ({"Authorization": "Bearer "}, 401),
        "wrong token": ({"Authorization": f"Bearer {WRONG}"}, 401),
        "operator token with a suffix": ({"Authorization": f"Bearer {served.lead}x"}, 401),
        "basic with the operator's token": ({"Authorization": f"Basic {basic}"}, 401),
        "operator token as Basic": ({"Authorization": f"Basic {served.lead}"}, 401),
    }


def test_no_write_without_an_operator_token(
    openapi: OpenAPI, sim: RunningSim, served: Served, tmp_path: Path
) -> None:
    writes = all_writes(tmp_path)
    bodies = write_bodies(served)
    assert set(bodies) == set(writes), "a new write needs a body here"
    before, board, rows = received(sim), custody_board(served), audit_rows(served.data)
    tried = 0
    for (method, route), body in sorted(bodies.items()):
        path = route.replace("{batch}", "0123456789ab")  # a plan id the service never gave
        for who, (headers, expected) in credentials(served).items():
            answer = call(served, method, path, body=body, headers=headers)
            assert answer[0] == expected, (who, method, path, answer)
            assert json.loads(answer[2])["error"], answer
            check(openapi, served, method, path, answer, body=body)
            tried += 1
    assert tried == len(writes) * len(credentials(served))
    time.sleep(1.0)  # anything wrongly started would have sent its first call by now
    after = received(sim)
    assert after.resets == before.resets
    assert after.writes == before.writes, "a BMC received a POST that is not a login"
    assert after.hosts == before.hosts
    assert custody_board(served) == board
    assert audit_rows(served.data) == rows
    assert not [r for r in audit_rows(served.data) if r["operator"] == "token:wall"]
    status, _, text = call(served, "GET", "/api/v1/batches/current", served.wall)
    assert status == 404 or json.loads(text)["verb"] != "force-off", text


# -- 4. an operator's batch -----------------------------------------------------------------


def wait_batch_end(served: Served, openapi: OpenAPI) -> dict[str, Any]:
    def ended() -> Any:
        answer = call(served, "GET", "/api/v1/batches/current", served.wall)
        state = check(openapi, served, "GET", "/api/v1/batches/current", answer)
        return state if not state["running"] else None

    ended_state: dict[str, Any] = wait_until(ended, timeout=60, interval=0.2, what="batch end")
    return ended_state


def test_an_operator_batch_sends_one_reset_audited_as_the_token(
    spec: dict[str, Any], openapi: OpenAPI, sim: RunningSim, served: Served
) -> None:
    plan_answer = call(served, "POST", "/api/v1/batches/plan", served.lead,
                       {"verb": "restart", "servers": [TARGET]})  # fmt: skip
    plan = check(openapi, served, "POST", "/api/v1/batches/plan", plan_answer)
    assert plan["touched"] == [TARGET] and plan["confirm"] is None
    start = received(sim)

    # Shown one server, the operator runs a plan that now touches another: 409, nothing sent.
    stale = {"verb": "restart", "servers": [TARGET], "expect": {"touched": ["web-002"]}}
    answer = call(served, "POST", "/api/v1/batches", served.lead, stale)
    assert answer[0] == 409 and "plan changed" in json.loads(answer[2])["error"], answer
    check(openapi, served, "POST", "/api/v1/batches", answer, body=stale)
    assert received(sim) == start
    refused = [r for r in audit_rows(served.data) if r["kind"] == "refused"]
    assert refused and refused[-1]["operator"] == "token:lead"

    # The run keeps the id of the plan shown, but only the caller's, of the same verb.
    other = {"verb": "off", "servers": [TARGET], "batch": plan_answer_id(plan),
             "expect": {"touched": [TARGET]}}  # fmt: skip
    answer = call(served, "POST", "/api/v1/batches", served.lead, other)
    assert answer[0] == 409 and "plan again" in json.loads(answer[2])["error"], answer
    assert received(sim) == start

    mark = json.loads(call(served, "GET", "/api/v1/snapshot", served.wall)[2])
    seq = mark["seq"]
    body = {"verb": "restart", "servers": [TARGET], "expect": {"touched": plan["touched"]},
            "batch": plan_answer_id(plan)}  # fmt: skip
    # Two operators press run at the same moment (three requests at once): one batch starts.
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda _: call(served, "POST", "/api/v1/batches", served.lead,
                                               body), range(3)))  # fmt: skip
    assert sorted(a[0] for a in answers) == [202, 409, 409], answers
    (answer,) = [a for a in answers if a[0] == 202]
    state = check(openapi, served, "POST", "/api/v1/batches", answer, body=body)
    assert state["owner"] == "lead" and state["verb"] == "restart"
    batch = state["batch"]
    assert batch == plan_answer_id(plan)  # plan, confirmation and run: one id in the audit
    # While it runs: a second batch is 409, a viewer can neither abort nor pause it.
    second = call(served, "POST", "/api/v1/batches", served.lead, body)
    assert second[0] == 409 and "running" in json.loads(second[2])["error"], second
    check(openapi, served, "POST", "/api/v1/batches", second, body=body)
    for what in ("abort", "pause"):
        answer = call(served, "POST", f"/api/v1/batches/current/{what}", served.wall)
        assert answer[0] == 403, answer
    end = wait_batch_end(served, openapi)
    assert end["batch"] == batch and end["result"]["ok"], end
    assert not end["result"]["aborted"] and not end["paused"]

    after = received(sim)
    assert after.resets[TARGET] == (*start.resets[TARGET], "GracefulRestart")
    assert {n: r for n, r in after.resets.items() if n != TARGET} == {
        n: r for n, r in start.resets.items() if n != TARGET
    }
    rows = [r for r in audit_rows(served.data) if r["batch"] == batch]
    assert {r["operator"] for r in rows} == {"token:lead"}
    kinds = [r["kind"] for r in rows]
    assert kinds[0] == "plan" and "batch-start" in kinds and kinds[-1] == "batch-end"
    resets = [r for r in rows if r["kind"] == "step" and "ComputerSystem.Reset" in r["call"]
              and r["outcome"] != "not needed"]  # fmt: skip
    assert len(resets) == 1 and resets[0]["server"] == TARGET, resets
    assert "GracefulRestart" in resets[0]["call"] and resets[0]["outcome"] == "ok"
    assert not [r for r in audit_rows(served.data) if r["operator"] == "token:wall"]

    # Resuming after the snapshot's seq: exactly the later events, numbered on, batch ones too.
    resume = f"{mark['instance']}:{seq}"
    events = read_events(served, served.wall, last_event_id=resume, until="batch-result")
    assert events[0].name != "snapshot" and events[0].seq == seq + 1
    assert [e.seq for e in events] == list(range(seq + 1, seq + 1 + len(events)))
    assert {e.id.partition(":")[0] for e in events} == {mark["instance"]}
    names = {e.name for e in events}
    assert {"batch-started", "batch", "batch-result", "notice"} <= names
    for event in events:
        event_validator(spec, event.name).validate(event.data)
    assert events[-1].data["batch"] == batch and events[-1].data["result"]["ok"]
    assert [e for e in events if e.name == "batch" and e.data["kind"] == "batch-start"]


def plan_answer_id(plan: dict[str, Any]) -> str:
    """The batch id ``POST /api/v1/batches/plan`` gave its plan."""
    return str(plan["batch"])


# -- custody through the API -----------------------------------------------------------------


def test_an_operator_custody_change_validates_and_is_audited(
    spec: dict[str, Any], openapi: OpenAPI, served: Served
) -> None:
    board = custody_board(served)
    name = "bkp-stor-01"
    assert board["states"][name] == "running"
    mark = json.loads(call(served, "GET", "/api/v1/snapshot", served.wall)[2])
    body = {"how": "advance", "servers": [name]}
    answer = call(served, "POST", "/api/v1/custody", served.lead, body)
    assert answer[0] == 200, answer
    changes = check(openapi, served, "POST", "/api/v1/custody", answer, body=body)["changes"]
    assert [(c["server"], c["after"], c["operator"]) for c in changes] == [
        (name, "shut-down", "token:lead")
    ]
    assert custody_board(served)["states"][name] == "shut-down"
    resume = f"{mark['instance']}:{mark['seq']}"
    events = read_events(served, served.wall, last_event_id=resume, until="custody")
    event_validator(spec, "custody").validate(events[-1].data)
    # Put it back (a correction needs a reason): the board is as before for the other tests.
    fix = {"how": "correct", "servers": [name], "to": "running", "reason": "test"}
    answer = call(served, "POST", "/api/v1/custody", served.lead, fix)
    assert answer[0] == 200, answer
    check(openapi, served, "POST", "/api/v1/custody", answer, body=fix)
    assert custody_board(served)["states"] == board["states"]
    rows = [r for r in audit_rows(served.data) if r["server"] == name]
    assert rows and {r["operator"] for r in rows} == {"token:lead"}


# -- 5. a read-only service --------------------------------------------------------------------


def test_a_read_only_service_refuses_every_write_even_to_an_operator(
    openapi: OpenAPI, sim: RunningSim, served: Served, tmp_path: Path
) -> None:
    writes = all_writes(tmp_path)
    bodies = write_bodies(served)
    with start_service(sim, tmp_path / "ro", "--read-only") as service:
        ro = Served(service, tmp_path / "ro" / "data")
        status, _, text = call(ro, "GET", "/api/v1/service", ro.wall)
        assert status == 200 and json.loads(text)["read_only"] is True
        board = custody_board(ro)
        before = received(sim)
        for method, route in writes:
            path = route.replace("{batch}", "0123456789ab")
            for token, who in ((ro.lead, "operator"), (ro.wall, "viewer")):
                answer = call(ro, method, path, token, bodies[(method, route)])
                assert answer[0] == 403, (who, method, path, answer)
                check(openapi, ro, method, path, answer, body=bodies[(method, route)])
        time.sleep(1.0)
        after = received(sim)
        assert after.resets == before.resets
        assert after.writes == before.writes
        assert after.hosts == before.hosts
        assert custody_board(ro) == board
        assert not [r for r in audit_rows(ro.data) if r["operator"].startswith("token:")]
    log = service.log.read_text()
    assert "(read-only)" in log
    assert ro.lead not in log and ro.wall not in log


# -- 6. bad input ---------------------------------------------------------------------------------


BAD_BATCHES: list[tuple[str, bytes | None, Any, str]] = [
    ("malformed JSON", b'{"verb": "off", "servers": [', None, "not JSON"),
    ("not an object", None, ["off"], "JSON object"),
    ("unknown verb", None, {"verb": "explode", "servers": [TARGET]}, "verb"),
    ("unknown server", None, {"verb": "off", "servers": [TARGET, "web-999"]}, "servers"),
    ("servers not a list", None, {"verb": "off", "servers": TARGET}, "servers"),
    ("servers and selector", None, {"verb": "off", "servers": [TARGET], "selector": "web-*"},
     "selector"),
    ("unknown option", None, {"verb": "off", "servers": [TARGET], "options": {"hurry": True}},
     "options"),
    ("option of a wrong type", None,
     {"verb": "off", "servers": [TARGET], "options": {"power_timeout_s": "soon"}},
     "options.power_timeout_s"),
    ("selector syntax error", None, {"verb": "off", "selector": "role=(web"}, "selector"),
    ("selector matching nothing", None, {"verb": "off", "selector": "role=nothing"}, "selector"),
    ("expect not a list", None,
     {"verb": "off", "servers": [TARGET], "expect": {"touched": TARGET}}, "expect.touched"),
    ("batch not a plan id", None,
     {"verb": "off", "servers": [TARGET], "batch": "../x", "expect": {"touched": []}}, "batch"),
]  # fmt: skip


def test_a_run_without_the_plan_it_was_shown_is_400_and_sends_nothing(
    openapi: OpenAPI, sim: RunningSim, served: Served
) -> None:
    """No ``expect``: no plan was read, so nothing runs (a mistyped curl switches nothing off)."""
    before, rows = received(sim), audit_rows(served.data)
    body = {"verb": "off", "servers": [TARGET]}
    answer = call(served, "POST", "/api/v1/batches", served.lead, body)
    assert answer[0] == 400 and "expect.touched" in json.loads(answer[2])["error"], answer
    check(openapi, served, "POST", "/api/v1/batches", answer)
    time.sleep(0.5)
    after = received(sim)
    assert after.resets == before.resets and after.writes == before.writes
    assert audit_rows(served.data) == rows


@pytest.mark.parametrize("path", ["/api/v1/batches/plan", "/api/v1/batches"])
def test_a_bad_batch_request_is_400_naming_the_field_and_sends_nothing(
    openapi: OpenAPI, sim: RunningSim, served: Served, path: str
) -> None:
    before, rows = received(sim), audit_rows(served.data)
    for what, raw, body, field in BAD_BATCHES:
        answer = call(served, "POST", path, served.lead, body, raw=raw)
        assert answer[0] == 400, (what, answer)
        error = json.loads(answer[2])["error"]
        assert field in error, (what, error)
        assert "Traceback" not in error
        check(openapi, served, "POST", path, answer)
        if raw is None and what not in ("unknown server", "selector syntax error",
                                        "selector matching nothing"):  # fmt: skip
            # The document's request schema refuses it too (names and syntax it cannot know).
            with pytest.raises(InvalidRequestBody):
                validate_request(openapi, served, path, body)
    validate_request(openapi, served, path, {"verb": "off", "selector": "role=web-viewer"})
    assert audit_rows(served.data) == rows  # nothing planned, nothing refused: nothing to record
    after = received(sim)
    assert after.resets == before.resets and after.writes == before.writes
    assert call(served, "GET", "/api/v1/service", served.wall)[0] == 200  # still serving


def test_bad_custody_and_audit_requests_are_400_naming_the_field(
    openapi: OpenAPI, served: Served
) -> None:
    board = custody_board(served)
    for body, field in [
        ({"how": "teleport", "servers": [TARGET]}, "how"),
        ({"how": "advance", "servers": []}, "servers"),
        ({"how": "advance", "servers": [TARGET], "to": 3}, "to"),
        ({"how": "correct", "servers": [TARGET], "to": "running", "reason": 1}, "reason"),
    ]:
        answer = call(served, "POST", "/api/v1/custody", served.lead, body)
        assert answer[0] == 400 and field in json.loads(answer[2])["error"], (body, answer)
        check(openapi, served, "POST", "/api/v1/custody", answer)
    for body in [
        {"how": "advance", "servers": ["web-999"]},  # not on the board
        {"how": "advance", "servers": [TARGET], "to": "verified"},  # skips steps
        {"how": "correct", "servers": [TARGET], "to": "sideways", "reason": "x"},
    ]:
        answer = call(served, "POST", "/api/v1/custody", served.lead, body)
        assert answer[0] == 422, (body, answer)
        check(openapi, served, "POST", "/api/v1/custody", answer)
    assert custody_board(served) == board
    for query, field in [({"limit": "many"}, "limit"), ({"limit": "0"}, "limit"),
                         ({"since": "yesterdayish"}, "since")]:  # fmt: skip
        answer = call(served, "GET", "/api/v1/audit" + query_string(query), served.wall)
        assert answer[0] == 400 and field in json.loads(answer[2])["error"], (query, answer)
        check(openapi, served, "GET", "/api/v1/audit", answer)


def write_tokens(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_bad_command_lines_exit_2_naming_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pacs_tui.cli import main

    good = "x" * 40
    inventory = Path(__file__).parent / "inventories" / "good" / "minimal.yaml"
    cases: dict[str, tuple[list[str], list[str]]] = {}

    def case(name: str, tokens: Path, listen: str, *expected: str, extra: tuple[str, ...] = ()):
        args = ["serve", "--inventory", str(inventory), "--tokens", str(tokens),
                "--listen", listen, *extra]  # fmt: skip
        cases[name] = (args, list(expected))

    ok = write_tokens(
        tmp_path / "ok.yaml", f"tokens:\n- {{name: a, role: viewer, token: {good}}}\n"
    )
    open_file = write_tokens(tmp_path / "open.yaml", ok.read_text(), 0o644)
    case("mode 0644", open_file, "127.0.0.1:1", str(open_file), "chmod 600", "0644")
    not_yaml = write_tokens(tmp_path / "bad.yaml", "tokens:\n  - name: [a\n    role: viewer\n")
    case("bad YAML", not_yaml, "127.0.0.1:1", f"{not_yaml}:3:", "not YAML")
    short = write_tokens(tmp_path / "short.yaml",
                         "tokens:\n- {name: lead, role: operator, token: abc}\n")  # fmt: skip
    case("short token", short, "127.0.0.1:1", str(short), "tokens[1]", "lead", "32")
    twice = write_tokens(
        tmp_path / "twice.yaml",
        f"tokens:\n- {{name: a, role: viewer, token: {good}}}\n"
        f"- {{name: a, role: operator, token: {'y' * 40}}}\n",
    )
    case("duplicate name", twice, "127.0.0.1:1", str(twice), "tokens[2]", "'a'", "twice")
    role = write_tokens(tmp_path / "role.yaml",
                        f"tokens:\n- {{name: b, role: admin, token: {good}}}\n")  # fmt: skip
    case("unknown role", role, "127.0.0.1:1", str(role), "tokens[1]", "viewer or operator")
    case("missing file", tmp_path / "none.yaml", "127.0.0.1:1", str(tmp_path / "none.yaml"))
    case("listen without port", ok, "127.0.0.1", "--listen", "ADDR:PORT")
    case("listen port out of range", ok, "127.0.0.1:70000", "--listen", "70000")
    case("listen port not a number", ok, "127.0.0.1:http", "--listen", "'http'")
    case("TLS certificate without key", ok, "127.0.0.1:1", "--tls-cert", "--tls-key",
         extra=("--tls-cert", str(ok)))  # fmt: skip
    case("TLS certificate not PEM", ok, "127.0.0.1:1", "--tls-cert",
         extra=("--tls-cert", str(ok), "--tls-key", str(ok)))  # fmt: skip

    # The first two as the real command (its own process: exit status, no traceback on
    # stderr); the rest through the same entry point in this process, to spare 2 cores.
    env = {**os.environ, "PACS_TUI_DATA_DIR": str(tmp_path / "data")}
    pipes: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "env": env}
    running = {
        name: subprocess.Popen([*PACS_TUI, *cases[name][0]], text=True, **pipes)
        for name in ("mode 0644", "bad YAML")
    }
    results: dict[str, tuple[int, str, str]] = {}
    for name, process in running.items():
        try:
            out, err = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        results[name] = (process.returncode, out, err)
    for name, (args, _) in cases.items():
        if name not in results:
            code = main(args)  # a traceback here would fail the test as an exception
            out, err = capsys.readouterr()
            results[name] = (code, out, err)
    for name, (code, out, err) in results.items():
        assert code == 2, (name, out, err)
        assert "Traceback" not in out + err, (name, err)
        assert err.startswith("pacs-tui serve: error: "), (name, err)
        for text in cases[name][1]:
            assert text in err, (name, text, err)
        assert good not in out + err  # a token is never echoed, even from a bad file
    assert stat.S_IMODE(open_file.stat().st_mode) == 0o644  # refused, not "fixed" behind a back


def test_unknown_routes_and_methods_answer_json_errors(served: Served) -> None:
    """A script reading ``error`` gets it for aiohttp's own refusals too (404, 405)."""
    status, head, text = call(served, "DELETE", "/api/v1/snapshot", served.wall)
    assert status == 405 and head["Content-Type"].startswith("application/json"), (status, text)
    assert json.loads(text)["error"] and "GET" in head.get("Allow", "")
    status, head, text = call(served, "GET", "/api/v1/no-such-thing", served.wall)
    assert status == 404 and json.loads(text)["error"], (status, text)
    status, _, text = call(served, "GET", "/api/v1/no-such-thing")
    assert status == 401  # who asks is checked first: no route is revealed to strangers


# -- tokens stay secret ---------------------------------------------------------------------------


def test_no_token_in_the_log_any_answer_or_the_audit(served: Served) -> None:
    # Whatever ran before, ask once more with every kind of credential.
    for path in ("/api/v1/service", "/api/v1/batches/plan"):
        for headers, _ in credentials(served).values():
            call(served, "GET" if path.endswith("service") else "POST", path, headers=headers)
    call(served, "GET", "/api/v1/snapshot", served.lead)
    assert len(ANSWERS) >= 16
    tokens = [served.lead, served.wall, WRONG]
    log = served.service.log.read_text()
    assert "listening on" in log  # the log is the right one, and has something in it
    rows = audit_rows(served.data)
    assert rows
    audit_text = json.dumps(rows)
    for token in tokens:
        assert token not in log
        assert not [a for a in ANSWERS if token in a]
        assert token not in audit_text
    # The tokens file is the one place they are, and it is the owner's alone.
    assert stat.S_IMODE(served.service.tokens_file.stat().st_mode) == 0o600


# -- a real Prometheus scrapes the service itself ----------------------------------------


async def test_a_real_prometheus_scrapes_the_service(served: Served, tmp_path: Path) -> None:
    """Acceptance: Prometheus scrapes ``pacs-tui serve``'s own ``/metrics`` with a viewer
    token from a file, and what it stored is the fleet the service sees."""
    from prometheus_peer import scraping

    token_file = tmp_path / "wall.token"
    token_file.write_text(served.wall + "\n")
    token_file.chmod(0o600)
    status, _, _ = call(served, "GET", "/metrics", None)
    assert status == 401  # no token, no metrics
    async with scraping(f"{served.service.url}/metrics", token_file, tmp_path / "prom") as prom:
        await prom.wait_for("pacs_tui_servers", lambda v: v == 12.0, timeout=30)
        assert await prom.value('up{job="pacs-tui"}') == 1.0
        target = await prom.target()
        assert target["health"] == "up" and target["lastError"] == "", target
        # Every server has exactly one power state set, as the service reads it.
        assert await prom.value("count(sum by (server) (pacs_tui_power_state))") == 12.0
        assert await prom.value("sum(pacs_tui_power_state)") == 12.0
        assert await prom.value("sum(pacs_tui_probe_up)") is not None
