"""Pytest configuration; peer helpers live in ``peers.py``."""
