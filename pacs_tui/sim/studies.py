"""A deterministic synthetic study index, cheap at archive scale.

Nothing is stored per study. The number of studies per day and modality is
derived from the seed (weekdays busier than weekends, a little noise), and a
study's identifiers are derived from (seed, day, modality, ordinal) when asked
for. A ten-year archive of millions of studies costs a few hundred kilobytes
of per-day counts; a C-FIND generates only the identifiers it returns.

A ``replica`` is the remote-backup copy: same seed, same studies, optionally
lacking whole days (a replication that has not caught up), which is what the
move-weekend comparison has to notice.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import PYDICOM_ROOT_UID

from pacs_tui.dicom.element_codec import encode_elements, tag_of
from pacs_tui.sim.study_plants import StudyPlants

# Shares of a hospital group's daily studies per modality (CR/DX plain film
# dominates, then CT and ultrasound); they sum to 1.
DEFAULT_MODALITY_MIX: Mapping[str, float] = {
    "CR": 0.22,
    "DX": 0.10,
    "CT": 0.20,
    "US": 0.15,
    "MR": 0.11,
    "MG": 0.08,
    "XA": 0.04,
    "NM": 0.05,
    "PT": 0.05,
}
# Monday..Sunday: elective work happens on weekdays (mean over a week is 1).
_WEEKDAY_FACTOR = (1.2, 1.2, 1.2, 1.2, 1.2, 0.5, 0.5)
_NOISE = 0.3  # each day's count varies by up to +-15 %

UID_ROOT = f"{PYDICOM_ROOT_UID}77"  # the study UIDs of this simulator live under this arc

_DESCRIPTIONS = {
    "CR": ("CHEST PA AND LATERAL", "KNEE 2 VIEWS", "HAND LEFT", "PELVIS AP"),
    "DX": ("CHEST AP PORTABLE", "ABDOMEN SUPINE", "SPINE LUMBAR"),
    "CT": ("CT HEAD WO CONTRAST", "CT CHEST ABDOMEN PELVIS W", "CT ANGIO PULMONARY"),
    "US": ("US ABDOMEN COMPLETE", "US OBSTETRIC", "US THYROID"),
    "MR": ("MR BRAIN WO W CONTRAST", "MR KNEE RIGHT", "MR LUMBAR SPINE"),
    "MG": ("MAMMO SCREENING BILATERAL", "MAMMO DIAGNOSTIC LEFT"),
    "XA": ("CORONARY ANGIOGRAPHY", "CEREBRAL ANGIOGRAPHY"),
    "NM": ("NM BONE SCAN WHOLE BODY", "NM MYOCARDIAL PERFUSION"),
    "PT": ("PET CT WHOLE BODY FDG", "PET CT BRAIN"),
}
# (series min, series max, instances per series min, max) per modality.
_SIZES = {
    "CR": (1, 2, 1, 2),
    "DX": (1, 2, 1, 2),
    "CT": (3, 6, 80, 400),
    "US": (1, 3, 10, 60),
    "MR": (6, 12, 30, 200),
    "MG": (1, 2, 4, 4),
    "XA": (2, 8, 30, 120),
    "NM": (2, 5, 1, 100),
    "PT": (3, 6, 100, 350),
}
_FAMILY = ("MEIER", "MUELLER", "SCHMIDT", "NGUYEN", "GARCIA", "ROSSI", "SILVA", "KOWALSKI")
_GIVEN = ("ANNA", "BEN", "CLARA", "DAVID", "EVA", "FELIX", "GRETA", "HUGO", "IDA", "JONAS")

_MASK = (1 << 64) - 1


def _mix64(z: int) -> int:
    # splitmix64's finaliser: a stable hash (Python's hash() is salted per process).
    z = (z + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def _hash(*parts: int) -> int:
    h = 0
    for part in parts:
        h = _mix64(h ^ (part & _MASK))
    return h


def _unit(*parts: int) -> float:
    """A deterministic number in [0, 1)."""
    return _hash(*parts) / 2.0**64


@dataclass(frozen=True)
class Study:
    """One synthetic study's study-level attributes."""

    study_uid: str
    study_date: date
    study_time: str  # HHMMSS
    modality: str
    patient_id: str
    patient_name: str
    accession_number: str
    description: str
    series: int
    instances: int

    def attributes(self) -> dict[str, str | int]:
        """Study-level attributes by DICOM keyword."""
        return {
            "StudyInstanceUID": self.study_uid,
            "StudyDate": self.study_date.strftime("%Y%m%d"),
            "StudyTime": self.study_time,
            "ModalitiesInStudy": self.modality,
            "PatientID": self.patient_id,
            "PatientName": self.patient_name,
            "AccessionNumber": self.accession_number,
            "StudyDescription": self.description,
            "NumberOfStudyRelatedSeries": self.series,
            "NumberOfStudyRelatedInstances": self.instances,
        }


class QueryError(ValueError):
    """A C-FIND identifier the index cannot evaluate (bad date range, wrong level)."""


@dataclass(frozen=True)
class _Query:
    first: date
    last: date
    modalities: tuple[str, ...]
    patient_id: re.Pattern[str] | None
    accession: re.Pattern[str] | None
    uids: tuple[str, ...] | None
    times: tuple[str, str] | None = None  # StudyTime range, HHMMSS inclusive


class StudyIndex:
    """Synthetic studies between ``first_day`` and ``last_day`` (inclusive)."""

    def __init__(
        self,
        seed: int,
        first_day: date,
        last_day: date,
        studies_per_day: float,
        modalities: Mapping[str, float] | None = None,
        *,
        missing_days: Iterable[date] = (),
        plants: StudyPlants | None = None,
    ) -> None:
        if last_day < first_day:
            raise ValueError("last_day is before first_day")
        if studies_per_day < 0:
            raise ValueError("studies_per_day must be >= 0")
        mix = dict(DEFAULT_MODALITY_MIX if modalities is None else modalities)
        total = sum(mix.values())
        if not mix or total <= 0 or any(v < 0 for v in mix.values()):
            raise ValueError("modalities must map modality codes to non-negative shares")
        self.seed = seed
        self.first_day = first_day
        self.last_day = last_day
        self.studies_per_day = studies_per_day
        self.modalities: dict[str, float] = {m: share / total for m, share in mix.items()}
        self.missing_days = frozenset(missing_days)
        # Per-study differences (partial, swapped, received); replica() copies them.
        self.plants = plants if plants is not None else StudyPlants()
        self._codes = tuple(self.modalities)
        self._days = (last_day - first_day).days + 1
        # Cumulative counts per modality, built on first use: count() is O(1).
        self._cumulative: dict[str, list[int]] | None = None

    # -- volumes ---------------------------------------------------------------

    def day_count(self, day: date, modality: str) -> int:
        """Studies of ``modality`` on ``day`` (0 outside the range or on a missing day).

        Planted per-study differences are not counted here; C-FIND sees them.
        """
        if day in self.missing_days:
            return 0
        return self._base_count(day, modality)

    def _base_count(self, day: date, modality: str) -> int:
        """Studies generated for ``day`` whether or not the day is missing here."""
        if not self.first_day <= day <= self.last_day:
            return 0
        share = self.modalities.get(modality)
        if share is None:
            return 0
        index = self._codes.index(modality)
        mean = self.studies_per_day * share * _WEEKDAY_FACTOR[day.weekday()]
        noise = 1.0 - _NOISE / 2 + _NOISE * _unit(self.seed, day.toordinal(), index)
        return round(mean * noise)

    def count(
        self,
        date_from: date | None = None,
        date_to: date | None = None,
        modality: str | None = None,
    ) -> int:
        """Studies between the two days (inclusive; None = open end), of one or all modalities."""
        first = max(date_from or self.first_day, self.first_day)
        last = min(date_to or self.last_day, self.last_day)
        if last < first:
            return 0
        cumulative = self._cumulative_counts()
        start = (first - self.first_day).days
        stop = (last - self.first_day).days + 1
        codes = self._codes if modality is None else (modality,)
        return sum(cumulative[m][stop] - cumulative[m][start] for m in codes if m in cumulative)

    def _cumulative_counts(self) -> dict[str, list[int]]:
        if self._cumulative is None:
            table: dict[str, list[int]] = {}
            for code in self._codes:
                running = [0]
                day = self.first_day
                for _ in range(self._days):
                    running.append(running[-1] + self.day_count(day, code))
                    day += timedelta(days=1)
                table[code] = running
            self._cumulative = table
        return self._cumulative

    def replica(self, missing_days: Iterable[date] = ()) -> StudyIndex:
        """The remote-backup copy: the same studies, lacking ``missing_days``."""
        return StudyIndex(
            self.seed,
            self.first_day,
            self.last_day,
            self.studies_per_day,
            self.modalities,
            missing_days=self.missing_days | frozenset(missing_days),
            plants=self.plants.copy(),
        )

    # -- studies ---------------------------------------------------------------

    def study(self, day: date, modality: str, ordinal: int) -> Study:
        """The ``ordinal``-th (0-based) study of ``modality`` on ``day``; IndexError if none."""
        per_day = self.day_count(day, modality)
        if not 0 <= ordinal < per_day:
            raise IndexError(f"no study {ordinal} of {modality} on {day}")
        return self._make(day, modality, ordinal, per_day)

    def _make(self, day: date, modality: str, ordinal: int, per_day: int) -> Study:
        m = self._codes.index(modality)
        h = _hash(self.seed, day.toordinal(), m, ordinal)
        # Spread studies over 07:00-21:00 in ordinal order, with a little jitter.
        seconds = 7 * 3600 + (14 * 3600 * ordinal) // max(per_day, 1) + h % 60
        smin, smax, imin, imax = _SIZES.get(modality, (1, 3, 1, 50))
        series = smin + (h >> 8) % (smax - smin + 1)
        per_series = imin + (h >> 16) % (imax - imin + 1)
        descriptions = _DESCRIPTIONS.get(modality, (f"{modality} STUDY",))
        yyyymmdd = day.strftime("%Y%m%d")
        return Study(
            study_uid=f"{UID_ROOT}.{self.seed}.{yyyymmdd}.{m + 1}.{ordinal + 1}",
            study_date=day,
            study_time=f"{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}",
            modality=modality,
            patient_id=f"P{(h >> 24) % 10_000_000:07d}",
            patient_name=f"{_FAMILY[(h >> 48) % len(_FAMILY)]}^{_GIVEN[(h >> 52) % len(_GIVEN)]}",
            accession_number=f"A{yyyymmdd[2:]}{m + 1}{ordinal + 1:05d}",
            description=descriptions[(h >> 40) % len(descriptions)],
            series=series,
            instances=series * per_series,
        )

    def find_uid(self, uid: str) -> Study | None:
        """The study with this StudyInstanceUID as this index holds it (plants applied)."""
        study = self.generated(uid)
        if study is None:
            return self.plants.extra_study(uid)
        return self.plants.held(study, day_missing=study.study_date in self.missing_days)

    def generated(self, uid: str) -> Study | None:
        """The study this seed generates under ``uid`` (held here or not), if any."""
        prefix = f"{UID_ROOT}.{self.seed}."
        if not uid.startswith(prefix):
            return None
        parts = uid[len(prefix) :].split(".")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            return None
        try:
            day = date(int(parts[0][:4]), int(parts[0][4:6]), int(parts[0][6:8]))
        except ValueError:
            return None
        m, ordinal = int(parts[1]) - 1, int(parts[2]) - 1
        if not 0 <= m < len(self._codes):
            return None
        per_day = self._base_count(day, self._codes[m])
        if not 0 <= ordinal < per_day:
            return None
        return self._make(day, self._codes[m], ordinal, per_day)

    def studies(
        self,
        date_from: date | None = None,
        date_to: date | None = None,
        modality: str | None = None,
    ) -> Iterator[Study]:
        """Studies held, in date order (then modality, then time), generated lazily."""
        first = max(date_from or self.first_day, self.first_day)
        last = min(date_to or self.last_day, self.last_day)
        codes = self._codes if modality is None else (modality,)
        return self._held(first, last, codes)

    def _held(self, first: date, last: date, codes: tuple[str, ...]) -> Iterator[Study]:
        plants = self.plants
        day = first
        while day <= last:
            missing = day in self.missing_days
            if missing and not plants.received:
                day += timedelta(days=1)
                continue
            for code in codes:
                per_day = self._base_count(day, code)
                for ordinal in range(per_day):
                    study = self._make(day, code, ordinal, per_day)
                    if plants:
                        held = plants.held(study, day_missing=missing)
                        if held is not None:
                            yield held
                    elif not missing:
                        yield study
            for extra in plants.extra.get(day, ()):
                held = plants.held(extra)
                if held is not None and extra.modality in codes:
                    yield held
            day += timedelta(days=1)

    # -- C-FIND ----------------------------------------------------------------

    def match(self, identifier: Dataset, limit: int | None = None) -> Iterator[Dataset]:
        """The study-level C-FIND answers for ``identifier``, lazily, at most ``limit``.

        Matching keys: StudyDate (single day or range), ModalitiesInStudy (one
        or several codes), PatientID and AccessionNumber (``*``/``?``
        wildcards), StudyInstanceUID (a list). A query without StudyDate or
        UIDs walks the whole archive lazily, so callers should bound it. Every key of the identifier is
        returned, filled where the index knows it. Raises ``QueryError`` for a
        query it cannot evaluate.
        """
        query = self._parse(identifier)  # here, so a bad query fails before the first answer
        keys = [e.keyword for e in identifier if e.keyword]
        return self._answers(query, keys, identifier.get("SpecificCharacterSet"), limit)

    def match_encoded(self, identifier: Dataset, limit: int | None = None) -> Iterator[StudyAnswer]:
        """Like ``match``, as answers that encode themselves (the simulator's fast path)."""
        query = self._parse(identifier)
        layout = _layout(identifier)
        return (StudyAnswer(s, layout) for s in self._matching(query, limit))

    def _answers(
        self, query: _Query, keys: list[str], charset: object, limit: int | None
    ) -> Iterator[Dataset]:
        return (_answer(s, keys, charset) for s in self._matching(query, limit))

    def _matching(self, query: _Query, limit: int | None) -> Iterator[Study]:
        produced = 0
        for study in self._candidates(query):
            if limit is not None and produced >= limit:
                return
            if query.patient_id and not query.patient_id.fullmatch(study.patient_id):
                continue
            if query.accession and not query.accession.fullmatch(study.accession_number):
                continue
            if query.times and not query.times[0] <= study.study_time <= query.times[1]:
                continue
            produced += 1
            yield study

    def _candidates(self, query: _Query) -> Iterator[Study]:
        if query.uids is not None:
            for uid in query.uids:
                study = self.find_uid(uid)
                if (
                    study is not None
                    and query.first <= study.study_date <= query.last
                    and study.modality in query.modalities
                ):
                    yield study
            return
        yield from self._held(
            max(query.first, self.first_day), min(query.last, self.last_day), query.modalities
        )

    def _parse(self, identifier: Dataset) -> _Query:
        level = str(identifier.get("QueryRetrieveLevel", "STUDY") or "STUDY").strip()
        if level != "STUDY":
            raise QueryError(f"only STUDY level is supported, not {level}")
        first, last = _date_range(_text(identifier.get("StudyDate")), self.first_day, self.last_day)
        wanted = [m for m in _values(identifier.get("ModalitiesInStudy")) if m not in ("", "*")]
        modalities = self._codes if not wanted else tuple(c for c in self._codes if c in wanted)
        uids = [u for u in _values(identifier.get("StudyInstanceUID")) if u]
        return _Query(
            first=first,
            last=last,
            modalities=modalities,
            patient_id=_wildcard(_text(identifier.get("PatientID"))),
            accession=_wildcard(_text(identifier.get("AccessionNumber"))),
            uids=tuple(uids) if uids else None,
            times=_time_range(_text(identifier.get("StudyTime"))),
        )


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _values(value: object) -> list[str]:
    return [v.strip() for v in _text(value).split("\\")]


def _wildcard(pattern: str) -> re.Pattern[str] | None:
    """A compiled pattern for a DICOM wildcard match, None for universal matching."""
    if pattern in ("", "*"):
        return None
    parts = [".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern]
    return re.compile("".join(parts))


def _parse_day(text: str) -> date:
    try:
        return date(int(text[0:4]), int(text[4:6]), int(text[6:8]))
    except (ValueError, IndexError) as exc:
        raise QueryError(f"invalid date {text!r} (expected YYYYMMDD)") from exc


def _date_range(text: str, first: date, last: date) -> tuple[date, date]:
    """(from, to) for a DA matching value: ``D``, ``D1-D2``, ``-D``, ``D-`` or empty."""
    text = text.replace(".", "").strip()  # ACR-NEMA style 2026.01.31 is still seen
    if not text:
        return first, last
    if "-" not in text:
        if len(text) != 8:
            raise QueryError(f"invalid StudyDate {text!r}")
        day = _parse_day(text)
        return day, day
    low, _, high = text.partition("-")
    start = _parse_day(low) if low else first
    end = _parse_day(high) if high else last
    return start, end


def _clock(text: str, pad: str) -> str:
    """HHMMSS of a TM value (``HH``, ``HHMM``, ``HHMMSS[.F]``, ``HH:MM``), padded with ``pad``."""
    digits = text.split(".")[0].replace(":", "").strip()
    if not digits.isdigit() or len(digits) not in (2, 4, 6):
        raise QueryError(f"invalid StudyTime {text!r} (expected HHMMSS)")
    return digits + pad * (6 - len(digits))


def _time_range(text: str) -> tuple[str, str] | None:
    """(from, to) HHMMSS for a TM matching value (PS3.4 C.2.2.2.5), None when universal."""
    if not text or text == "*":
        return None
    if "-" not in text:
        exact = _clock(text, "0")
        return exact, _clock(text, "9") if len(text.split(".")[0]) < 6 else exact
    low, _, high = text.partition("-")
    return (_clock(low, "0") if low else "000000", _clock(high, "9") if high else "235959")


# (tag, VR, keyword, fixed value or None) per element of an answer, in tag order.
Layout = tuple[tuple[int, str, str, bytes | None], ...]


def _layout(identifier: Dataset) -> Layout:
    """Which elements each answer carries: the identifier's keys, STUDY level, its charset."""
    rows: dict[int, tuple[int, str, str, bytes | None]] = {}
    for element in identifier:
        keyword = element.keyword
        if not keyword or element.tag.group == 0x0002:
            continue
        tag, vr = tag_of(keyword)
        fixed = None
        if keyword == "SpecificCharacterSet":
            fixed = _text(element.value).encode("ascii", "replace")
        elif keyword == "QueryRetrieveLevel":
            fixed = b"STUDY"
        rows[tag] = (tag, vr, keyword, fixed)
    level = tag_of("QueryRetrieveLevel")[0]
    rows.setdefault(level, (level, "CS", "QueryRetrieveLevel", b"STUDY"))
    return tuple(rows[t] for t in sorted(rows))


class StudyAnswer:
    """One study's C-FIND answer, encoded only when the responder sends it."""

    __slots__ = ("layout", "study")

    def __init__(self, study: Study, layout: Layout) -> None:
        self.study = study
        self.layout = layout

    def encode_for(self, implicit_vr: bool) -> bytes:
        """The answer in Little Endian, Implicit or Explicit VR (PS3.5 7.1)."""
        values = self.study.attributes()
        items = []
        for tag, vr, keyword, fixed in self.layout:
            if fixed is None:
                value = values.get(keyword)
                fixed = b"" if value is None else str(value).encode("latin-1", "replace")
            items.append((tag, vr, fixed))
        return encode_elements(items, implicit_vr)


def _answer(study: Study, keys: list[str], charset: object) -> Dataset:
    values = study.attributes()
    answer = Dataset()
    if charset:
        answer.SpecificCharacterSet = charset
    answer.QueryRetrieveLevel = "STUDY"
    for keyword in keys:
        if keyword in ("QueryRetrieveLevel", "SpecificCharacterSet"):
            continue
        value = values.get(keyword)
        setattr(answer, keyword, "" if value is None else value)
    return answer
