"""Benchmarks: whole processes, real protocols on loopback. ``make bench`` runs them all."""
