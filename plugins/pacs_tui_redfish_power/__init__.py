"""Built-in probe: Redfish power state of a server's BMC."""
