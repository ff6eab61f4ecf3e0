"""The simulated data center behind ``pacs-tui sim`` and ``make demo``.

A regular package (not a namespace one) so that the layer contracts in
``.importlinter`` can name it: only the CLI may import it, and it imports
neither the CLI nor the widgets.
"""
