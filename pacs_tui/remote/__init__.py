"""Screens attached to ``pacs-tui serve``: the client side of the service's API.

``ServiceClient`` speaks the HTTP API (bearer token, JSON, Server-Sent
Events); ``ServiceMirror`` keeps a ``FleetState`` that follows the service's,
so the control room and the wall draw from it exactly as from their own
poller, and says how old its data is when the service is gone.
"""
