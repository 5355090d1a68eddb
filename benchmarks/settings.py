"""Pollen's own settings, plus the benchmark's baseline view in the URLconf."""

from config.settings import *  # noqa: F401,F403

ROOT_URLCONF = "benchmarks.urls"
