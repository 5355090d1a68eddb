"""Seed 002's device protocol: registration, rounds, model downloads, update uploads and aggregation."""
