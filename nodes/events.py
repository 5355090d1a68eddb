"""Event payloads and audiences for nodes: ``node.status``, ``client.joined``, ``client.left``."""

from collections import defaultdict

from core.realtime import broadcast_many_on_commit, user_group
from nodes.choices import NodeStatus
from nodes.models import Node
from projects.models import ProjectMember


def audiences(nodes: list[Node]) -> dict:
    """Each node's groups: whoever registered it plus its project's owner and members (one query)."""
    project_ids = {n.project_id for n in nodes if n.project_id}
    members: dict = defaultdict(set)
    if project_ids:
        for project_id, user_id in ProjectMember.objects.filter(project_id__in=project_ids).values_list(
                "project_id", "user_id"):
            members[project_id].add(user_id)
    result = {}
    for node in nodes:
        ids = {node.registered_by_id, *members.get(node.project_id, ())}
        if node.project_id:
            ids.add(node.project.owner_id)
        result[node.pk] = sorted(user_group(i) for i in ids if i)
    return result


def node_data(node: Node, previous_status: str | None = None) -> dict:
    return {
        "node_id": str(node.pk),
        "client_id": str(node.pk),
        "name": node.name,
        "type": node.type,
        "status": node.status,
        "previous_status": previous_status,
        "last_seen": node.last_seen,
        "project_id": str(node.project_id) if node.project_id else None,
        "execution_id": str(node.current_execution_id) if node.current_execution_id else None,
        "role": node.role or None,
    }


def node_events(node: Node, previous_status: str | None) -> list[tuple[str, dict]]:
    """``node.status`` and, when the node came or went, ``client.joined`` / ``client.left``."""
    data = node_data(node, previous_status)
    events = [("node.status", data)]
    if previous_status is not None and previous_status != node.status:
        if node.status == NodeStatus.OFFLINE:
            events.append(("client.left", data))
        elif previous_status == NodeStatus.OFFLINE:
            events.append(("client.joined", data))
    return events


def broadcast_node(node: Node, previous_status: str | None = None, groups: list[str] | None = None) -> None:
    broadcast_many_on_commit(node_events(node, previous_status),
                             groups if groups is not None else audiences([node])[node.pk])
