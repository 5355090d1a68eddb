import logging

from celery import shared_task

logger = logging.getLogger("pollen.nodes")


@shared_task(name="nodes.tasks.nodes_mark_offline")
def nodes_mark_offline() -> int:
    """Mark nodes that missed their heartbeats offline, and prune metrics past their retention."""
    from nodes import services

    marked = services.nodes_mark_offline()
    if marked:
        logger.info("Marked %d nodes offline", marked)
    services.node_metrics_prune()
    return marked
