"""Built-in probe: network reachability (TCP connect, ICMP when permitted)."""
