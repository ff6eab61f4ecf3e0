"""Reading inventory files: YAML (with optional CSV includes) or a bare CSV."""

from __future__ import annotations

from pathlib import Path

from pacs_tui.inventory.located import LocatedList, read_csv, read_yaml
from pacs_tui.inventory.model import Fleet
from pacs_tui.inventory.problems import InventoryError, Problem, SourceLocation
from pacs_tui.inventory.schema import build_fleet


def load_inventory(path: str | Path) -> Fleet:
    """Load and validate the inventory at ``path`` (``.yaml``/``.yml`` or ``.csv``).

    Raises :class:`InventoryError` listing every problem with file and line.
    Warnings of a usable inventory are in ``Fleet.warnings``.
    """
    path = Path(path)
    text, problem = _read_text(path, SourceLocation(str(path)))
    if text is None:
        raise InventoryError([problem] if problem else [])
    return parse_inventory(text, source=str(path), base_dir=path.resolve().parent, files=[path])


def parse_inventory(
    text: str,
    *,
    source: str = "<string>",
    base_dir: Path | None = None,
    csv: bool | None = None,
    files: list[Path] | None = None,
) -> Fleet:
    """Validate inventory ``text``; ``source`` names it in messages.

    ``csv`` forces the format; by default a ``source`` ending in ``.csv`` is CSV.
    Relative paths (``servers_from``, ``file:`` references, CA files) are taken
    from ``base_dir``, the current directory when None.
    """
    base = (base_dir or Path.cwd()).resolve()
    sources = list(files or [])
    is_csv = source.lower().endswith(".csv") if csv is None else csv
    data: object
    if is_csv:
        data, problems = read_csv(text, source)
    else:
        data, problems = read_yaml(text, source)

    def load_extra(name: str, where: SourceLocation) -> tuple[LocatedList | None, list[Problem]]:
        extra = Path(name).expanduser()
        extra = extra if extra.is_absolute() else base / extra
        if extra.suffix.lower() != ".csv":
            return None, [Problem(where, f"servers_from: {name!r} is not a .csv file")]
        body, problem = _read_text(extra, where)
        if body is None:
            return None, [problem] if problem else []
        sources.append(extra)
        return read_csv(body, str(extra))

    if data is None and any(p.severity == "error" for p in problems):
        raise InventoryError(problems)
    fleet, found = build_fleet(
        [(data, SourceLocation(source, 1))],
        base_dir=base,
        load_extra=None if is_csv else load_extra,
        problems=problems,
        sources=sources,
    )
    if fleet is None:
        raise InventoryError(found)
    return fleet


def _read_text(path: Path, where: SourceLocation) -> tuple[str | None, Problem | None]:
    try:
        return path.read_text(encoding="utf-8-sig"), None  # -sig: spreadsheets add a BOM
    except FileNotFoundError:
        return None, Problem(where, f"{path}: no such file")
    except IsADirectoryError:
        return None, Problem(where, f"{path}: is a directory")
    except UnicodeDecodeError as exc:
        return None, Problem(where, f"{path}: not UTF-8 text (byte {exc.start})")
    except OSError as exc:
        return None, Problem(where, f"{path}: {exc.strerror}")
