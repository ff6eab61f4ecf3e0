"""A filter letter reaches the grid within the keystroke, before any frame is drawn."""

from __future__ import annotations

from pacs_tui_widgets.filter_bar import FilterBar
from ui_pilot import SIZE, make_app


async def test_the_grid_is_filtered_as_the_input_changes() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        grid = app.grid
        await pilot.press("slash")
        bar = app.query_one(FilterBar)
        # No await between the change and the check: no message, no frame in between.
        bar.input.value = "arch"
        assert grid.rows == ["arch-001", "arch-007", "arch-013", "arch-019"]
        bar.input.value = "role=storage&("  # a bad selector: the old rows stay...
        assert grid.rows == ["arch-001", "arch-007", "arch-013", "arch-019"]
        await pilot.pause()
        assert bar.has_class("-error")  # ...and the app points at it, on the bar's message
        bar.input.value = "role=storage"
        assert grid.rows == ["stor-006", "stor-012", "stor-018"]
        await pilot.pause()
        assert not bar.has_class("-error")
        await pilot.press("enter")
        assert grid.view.filter_text == "role=storage" and grid.has_focus
