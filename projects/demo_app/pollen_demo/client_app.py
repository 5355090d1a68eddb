"""ClientApp: trains and evaluates on the node's own partition."""

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from pollen_demo.task import evaluate as evaluate_model
from pollen_demo.task import load_partition
from pollen_demo.task import train as train_model

app = ClientApp()


def _data(context: Context):
    return load_partition(int(context.node_config.get("partition-id", 0)),
                          int(context.node_config.get("num-partitions", 1)))


@app.train()
def train(msg: Message, context: Context) -> Message:
    (x, y), _ = _data(context)
    weights = msg.content["arrays"].to_numpy_ndarrays()
    config = msg.content.get("config")
    lr = float(config["lr"]) if config and "lr" in config else float(context.run_config["learning-rate"])
    new = train_model(weights, x, y, int(context.run_config["local-epochs"]), lr)
    loss, accuracy = evaluate_model(new, x, y)
    metrics = MetricRecord({"train_loss": loss, "train_accuracy": accuracy, "num-examples": len(y)})
    return Message(content=RecordDict({"arrays": ArrayRecord(new), "metrics": metrics}), reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    _, (x, y) = _data(context)
    loss, accuracy = evaluate_model(msg.content["arrays"].to_numpy_ndarrays(), x, y)
    metrics = MetricRecord({"eval_loss": loss, "eval_accuracy": accuracy, "num-examples": len(y)})
    return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)
