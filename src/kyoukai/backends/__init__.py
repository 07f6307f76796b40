"""Servers and adapters that carry HTTP to and from the I/O-blind application."""
