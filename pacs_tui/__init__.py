"""pacs-tui: a terminal control room for moving and running hospital PACS data centers.

The ``pacs_tui`` package is the core: inventory, credentials, state, scheduler,
batch engine, audit and the embedded simulator. It never imports Textual; the
control room lives in ``pacs_tui_widgets`` (folder ``widgets/``).
"""

__version__ = "0.1.0"
