"""The model registry: each execution's aggregated models as registered models and versions
(seed 001 AggregatedModel; seed 004 Model Management and Model Operations).

``services`` writes (publishing rounds, rollback, retraining, evaluation), ``selectors`` reads with
project visibility, ``filters`` serves the list endpoints; ``training.export`` converts versions.
"""

from training.registry.services import publish_round, version_publish

__all__ = ["publish_round", "version_publish"]
