"""Needle on one machine: embedded AWS from template.yaml, EDR simulators, demo and CLI. Never deployed."""
