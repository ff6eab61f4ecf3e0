"""Built-in action: power resets through a server's Redfish BMC."""
