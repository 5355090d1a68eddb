"""Rows as a run leaves them, without running one: for lists, filters and query counts."""

import hashlib
import io

import factory
import numpy as np
from django.core.files.base import ContentFile
from django.utils import timezone

from projects.tests.factories import ProjectFactory
from training.models import Execution, ExecutionLog, Round, RoundClient


class ExecutionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Execution

    project = factory.SubFactory(ProjectFactory, configuration={})
    created_by = factory.LazyAttribute(lambda o: o.project.owner)
    name = factory.Sequence(lambda n: f"Run {n}")
    algorithm = "fedavg"
    model_type = "logistic"
    dataset = "iris"
    total_rounds = 3
    config = factory.LazyAttribute(lambda o: {"rounds": o.total_rounds, "clients": 3, "model_type": o.model_type,
                                              "dataset": o.dataset, "substitutions": []})


class RoundFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Round

    execution = factory.SubFactory(ExecutionFactory)
    number = factory.Sequence(lambda n: n + 1)
    status = "completed"
    participants = 3
    started_at = factory.LazyFunction(timezone.now)
    completed_at = factory.LazyFunction(timezone.now)
    duration_seconds = 1.5
    server_metrics = factory.LazyFunction(lambda: {"accuracy": 0.9, "loss": 0.3})


class RoundClientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RoundClient

    round = factory.SubFactory(RoundFactory)
    node_id = factory.Sequence(lambda n: n + 1)
    partition_id = 0
    phase = "train"
    num_examples = 40
    metrics = factory.LazyFunction(lambda: {"train_loss": 0.4})


class ExecutionLogFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ExecutionLog

    execution = factory.SubFactory(ExecutionFactory)
    timestamp = factory.LazyFunction(timezone.now)
    level = "INFO"
    message = factory.Sequence(lambda n: f"Round {n} completed")


def store_checkpoint(round_obj: Round, arrays: list[np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **{f"arr_{i}": a for i, a in enumerate(arrays)})
    payload = buffer.getvalue()
    round_obj.checkpoint.save(f"{round_obj.number:04d}.npz", ContentFile(payload), save=False)
    round_obj.checkpoint_checksum = hashlib.sha256(payload).hexdigest()
    round_obj.save()
    return payload
