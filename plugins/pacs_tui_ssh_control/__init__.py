"""Built-in action: stop/start systemd units and shut the OS down over SSH."""
