"""Pollen's demo Flower app."""
