"""``pacs-tui serve``: one poller, many screens.

The service is the only process that talks to BMCs, archives and hosts: it
owns the ``FleetMonitor``, runs batches, keeps the audit log and the custody
board, and serves its state over HTTP (a snapshot with a sequence number,
Server-Sent Events that resume from ``Last-Event-ID``, Prometheus
``/metrics``). Control rooms and walls attach to it as thin screens.
"""
