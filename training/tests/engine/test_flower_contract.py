"""What Pollen relies on inside Flower 1.41, pinned: an upgrade that changes any of it fails here
first, with the name of the assumption, instead of somewhere in a training run."""

import inspect

import flwr
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg, Strategy

from training.engine.grid import server_identity


def test_the_pinned_flower_release():
    assert flwr.__version__ == "1.41.0"


def test_the_grid_interface_is_the_one_our_grids_implement():
    abstract = set(Grid.__abstractmethods__)
    assert abstract == {"set_run", "run", "create_message", "get_node_ids", "push_messages", "pull_messages",
                        "send_and_receive"}
    assert list(inspect.signature(Grid.send_and_receive).parameters) == ["self", "messages", "timeout"]


def test_strategies_drive_rounds_through_send_and_receive_with_the_round_in_the_config():
    start = inspect.signature(Strategy.start).parameters
    assert {"grid", "initial_arrays", "num_rounds", "train_config", "evaluate_fn"} <= set(start)
    assert "send_and_receive" in inspect.getsource(Strategy.start)
    server_identity(99)  # a message takes its sender from Flower's process-global identity
    messages = list(FedAvg().configure_train(3, ArrayRecord([]), ConfigRecord({}), _TwoNodes()))
    assert messages and all(m.content.config_records["config"]["server-round"] == 3 for m in messages)
    assert {m.metadata.message_type for m in messages} == {"train"}


class _TwoNodes(Grid):
    def set_run(self, run): ...
    run = None

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None):
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self):
        return [1, 2]

    def push_messages(self, messages): ...
    def pull_messages(self, message_ids): ...
    def send_and_receive(self, messages, *, timeout=None): ...


def test_message_identity_and_metadata_we_set_and_read():
    from flwr.common.constant import SUPERLINK_NODE_ID
    from flwr.supercore.run import Run
    from flwr.supercore.task_identity import TaskIdentity

    server_identity(41)
    assert (TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id) == (1, 41, SUPERLINK_NODE_ID)
    assert Run.create_empty(5).run_id == 5
    message = Message(RecordDict(), 7, "train", group_id="1")
    message.metadata.__dict__["_message_id"] = "abc"
    assert message.metadata.message_id == "abc"
    assert {"src_node_id", "dst_node_id", "created_at", "group_id"} <= {
        name for name in dir(message.metadata) if not name.startswith("_")}


def test_legacy_replies_keep_metrics_where_the_grid_reads_them():
    from flwr.common import Code, FitRes, Status, ndarrays_to_parameters
    from flwr.compat.common.recorddict_compat import fitres_to_recorddict

    record = fitres_to_recorddict(FitRes(Status(Code.OK, ""), ndarrays_to_parameters([]), 12, {"train_loss": 0.5}),
                                  keep_input=True)
    assert record.config_records["fitres.metrics"]["train_loss"] == 0.5
    assert isinstance(record.metric_records["fitres.num_examples"], MetricRecord)
    assert record.metric_records["fitres.num_examples"]["num_examples"] == 12


def test_secagg_plus_pieces():
    from flwr.client.mod import secaggplus_mod  # noqa: F401
    from flwr.server import LegacyContext  # noqa: F401
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow  # noqa: F401

    params = inspect.signature(SecAggPlusWorkflow.__init__).parameters
    assert {"num_shares", "reconstruction_threshold", "clipping_range", "quantization_range"} <= set(params)


def test_control_api_and_fab_building_for_deployed_runs():
    from flwr.cli.build import build_fab_from_files
    from flwr.common.constant import SubStatus
    from flwr.proto.control_pb2 import ListRunsRequest, RegisterNodeRequest, StartRunRequest, StopRunRequest
    from flwr.supercore.control.control_http_client import ControlHttpClient

    for name in ("StartRun", "ListRuns", "StopRun", "StreamLogs", "RegisterNode", "ListNodes"):
        assert callable(getattr(ControlHttpClient, name)), name
    assert {"fab", "override_config", "federation"} <= set(StartRunRequest.DESCRIPTOR.fields_by_name)
    assert set(StopRunRequest.DESCRIPTOR.fields_by_name) == {"run_id"}
    assert "run_id" in ListRunsRequest.DESCRIPTOR.fields_by_name
    assert "public_key" in RegisterNodeRequest.DESCRIPTOR.fields_by_name
    assert (SubStatus.COMPLETED, SubStatus.FAILED, SubStatus.STOPPED) == ("completed", "failed", "stopped")
    assert "files" in inspect.signature(build_fab_from_files).parameters
