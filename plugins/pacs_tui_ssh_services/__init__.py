"""Built-in probe: systemd units of a server checked over SSH."""
