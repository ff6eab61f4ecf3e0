"""Measuring a site's WAN links from where pacs-tui runs: TCP connects, C-ECHOs, one C-FIND.

Per link, ``samples`` rounds, paced ``pace_s`` apart (start to start), each
one TCP connect to the link's ``tcp`` endpoint then one C-ECHO association
with its ``dicom`` AE (PS3.7 §9.3.5), one after the other: a link is never
measured by two of our own connections at once, so the figures are the
link's, not our queueing. At most ``parallel`` links are measured at a
time. Each sample runs inside a loop-lag window (``pacs_tui.loop_lag``): a
timeout our own late event loop explains is counted ``unreliable``, never
lost, and a latency over its limit only because of our lag makes the link
``unknown``, never ``degraded``.

A link whose first ``EARLY_STOP`` rounds all failed is ``unreachable``
without waiting for the rest (a dead link would otherwise cost samples ×
timeouts). After the echoes, one Study Root C-FIND at STUDY level (PS3.4
C.4.1) asks for a StudyInstanceUID that no archive holds: a query every
gateway can answer, with at most one match, so the answer is bounded.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pacs_tui.dicom.client import c_echo, c_find_studies
from pacs_tui.inventory.model import Inventory, LinkDicom, LinkTcp, Site, SiteLink
from pacs_tui.links.series import SampleSeries
from pacs_tui.links.verdict import (
    DEFAULT_THRESHOLDS,
    FindCheck,
    LinkReport,
    Thresholds,
    judge_link,
)
from pacs_tui.loop_lag import lag_explains_timeout, measure_loop_lag

DEFAULT_SAMPLES = 10
DEFAULT_PACE_S = 0.1
DEFAULT_TIMEOUT_S = 3.0  # one TCP connect, or one whole C-ECHO association
DEFAULT_FIND_TIMEOUT_S = 10.0
DEFAULT_PARALLEL = 4
EARLY_STOP = 3
# A UUID-derived UID (PS3.5 §B.2) made once for pacs-tui's preflight: no study has it.
PROBE_STUDY_UID = "2.25.241093572906144226478917612359201348871"


@dataclass(frozen=True)
class Sampling:
    """How to sample: counts, pacing and deadlines in seconds."""

    samples: int = DEFAULT_SAMPLES
    pace_s: float = DEFAULT_PACE_S
    timeout_s: float = DEFAULT_TIMEOUT_S
    find_timeout_s: float = DEFAULT_FIND_TIMEOUT_S
    parallel: int = DEFAULT_PARALLEL


def site_links(inventory: Inventory) -> list[tuple[Site, SiteLink]]:
    """Every (site, link) of the inventory, in file order."""
    return [(site, link) for site in inventory.sites.values() for link in site.links]


class _Series:
    """Collects one kind's samples as they come."""

    def __init__(self) -> None:
        self.attempted = 0
        self.values: list[float] = []
        self.failures: list[str] = []
        self.unreliable = 0
        self.lag_ms = 0.0

    def answered(self, latency_ms: float, lag_ms: float) -> None:
        self.attempted += 1
        self.values.append(latency_ms)
        self.lag_ms = max(self.lag_ms, lag_ms)

    def failed(self, why: str, *, timed_out: bool, lag_ms: float, timeout_s: float) -> None:
        self.attempted += 1
        if timed_out and lag_explains_timeout(lag_ms, timeout_s):
            self.unreliable += 1
        else:
            self.failures.append(why)

    def series(self) -> SampleSeries:
        return SampleSeries(
            self.attempted, tuple(self.values), tuple(self.failures), self.unreliable, self.lag_ms
        )


async def _resolve(host: str, timeout_s: float) -> tuple[int, str]:
    """(address family, IP literal) of ``host``; ``OSError`` when it does not resolve."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
            return family, host
        except OSError:
            continue
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout_s):
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    if not infos:
        raise socket.gaierror(f"{host} has no address")
    return infos[0][0], str(infos[0][4][0])


async def tcp_sample(address: tuple[int, str], port: int, timeout_s: float) -> tuple[float, str]:
    """One TCP connect to an IP literal: (ms, "") when it connected, (ms, why) when not.

    A bare non-blocking socket (the kernel's handshake, ~0.3 ms CPU); closed at
    once, nothing sent. ``why`` starts with ``timeout`` for a timeout.
    """
    family, ip = address
    loop = asyncio.get_running_loop()
    sock = socket.socket(family, socket.SOCK_STREAM)
    started = time.perf_counter()
    try:
        sock.setblocking(False)
        async with asyncio.timeout(timeout_s):
            await loop.sock_connect(sock, (ip, port))
        return (time.perf_counter() - started) * 1000.0, ""
    except TimeoutError:
        return (time.perf_counter() - started) * 1000.0, f"timeout after {timeout_s:g} s"
    except OSError as exc:
        # asyncio's sock_connect words its errors "Connect call failed (...)": the errno says more.
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        return (time.perf_counter() - started) * 1000.0, why.lower()
    finally:
        sock.close()


async def measure_link(
    site: Site, link: SiteLink, sampling: Sampling, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> LinkReport:
    """Measure one link (see the module) and judge it; never raises for network failures."""
    began = time.perf_counter()
    tcp = _Series() if link.tcp is not None else None
    echo = _Series() if link.dicom is not None else None
    tcp_address: tuple[int, str] | str | None = None
    if link.tcp is not None:
        try:
            tcp_address = await _resolve(link.tcp.host, sampling.timeout_s)
        except (OSError, TimeoutError) as exc:
            tcp_address = f"cannot resolve {link.tcp.host}: {exc}"
    loop = asyncio.get_running_loop()
    for round_no in range(sampling.samples):
        started = loop.time()
        if tcp is not None and link.tcp is not None:
            await _tcp_round(tcp, tcp_address, link.tcp, sampling.timeout_s)
        if echo is not None and link.dicom is not None:
            await _echo_round(echo, link.dicom, sampling.timeout_s)
        if round_no + 1 >= EARLY_STOP and _all_lost(tcp, echo):
            break
        if round_no + 1 < sampling.samples:
            await asyncio.sleep(max(0.0, started + sampling.pace_s - loop.time()))
    find = None
    if link.dicom is not None and link.dicom.find:
        if echo is not None and echo.values:
            find = await _find(link.dicom, sampling.find_timeout_s)
        else:
            find = FindCheck("skipped", None, "not sent: no C-ECHO was answered")
    tcp_series = None if tcp is None else tcp.series()
    echo_series = None if echo is None else echo.series()
    verdict, reasons = judge_link(link, tcp_series, echo_series, find, thresholds)
    return LinkReport(
        site=site.name,
        site_kind=site.kind,
        link=link,
        tcp=tcp_series,
        echo=echo_series,
        find=find,
        verdict=verdict,
        reasons=reasons,
        elapsed_s=time.perf_counter() - began,
        thresholds=thresholds,
    )


def _all_lost(*series: _Series | None) -> bool:
    taken = [s for s in series if s is not None]
    return bool(taken) and all(not s.values and not s.unreliable for s in taken)


async def _tcp_round(
    series: _Series, address: tuple[int, str] | str | None, endpoint: LinkTcp, timeout_s: float
) -> None:
    if not isinstance(address, tuple):
        series.failed(str(address), timed_out=False, lag_ms=0.0, timeout_s=timeout_s)
        return
    with measure_loop_lag() as lag:
        latency_ms, why = await tcp_sample(address, endpoint.port, timeout_s)
    if why:
        series.failed(
            why, timed_out=why.startswith("timeout"), lag_ms=lag.late_ms, timeout_s=timeout_s
        )
    else:
        series.answered(latency_ms, lag.late_ms)


async def _echo_round(series: _Series, dicom: LinkDicom, timeout_s: float) -> None:
    with measure_loop_lag() as lag:
        outcome = await c_echo(
            dicom.host,
            dicom.port,
            called_ae=dicom.ae_title,
            calling_ae=dicom.calling_ae_title,
            timeout=timeout_s,
        )
    if outcome.state == "ok":
        series.answered(outcome.latency_ms, lag.late_ms)
    else:
        series.failed(
            f"{outcome.state}: {outcome.detail}",
            timed_out=outcome.state == "timeout",
            lag_ms=lag.late_ms,
            timeout_s=timeout_s,
        )


async def _find(dicom: LinkDicom, timeout_s: float) -> FindCheck:
    """One bounded C-FIND; ``ok`` only on a complete answer (final status Success)."""
    outcome = await c_find_studies(
        dicom.host,
        dicom.port,
        called_ae=dicom.ae_title,
        calling_ae=dicom.calling_ae_title,
        query={"StudyInstanceUID": PROBE_STUDY_UID},
        timeout=timeout_s,
        idle_timeout=timeout_s,
        limit=1,
    )
    if outcome.state == "ok" and outcome.complete:
        return FindCheck("ok", outcome.latency_ms, outcome.detail)
    return FindCheck("unknown", outcome.latency_ms, f"{outcome.state}: {outcome.detail}")


async def measure_links(
    pairs: Iterable[tuple[Site, SiteLink]],
    sampling: Sampling | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> list[LinkReport]:
    """Measure every (site, link), at most ``sampling.parallel`` at once; reports in input order."""
    how = sampling or Sampling()
    limit = asyncio.Semaphore(max(1, how.parallel))

    async def one(site: Site, link: SiteLink) -> LinkReport:
        async with limit:
            return await measure_link(site, link, how, thresholds)

    chosen: Sequence[tuple[Site, SiteLink]] = list(pairs)
    return list(await asyncio.gather(*(one(site, link) for site, link in chosen)))
