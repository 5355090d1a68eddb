"""ClientApp of a deployed execution of Pollen's built-in models: each SuperNode trains on the
partition its node config names (``partition-id``, ``num-partitions``)."""

from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from training.engine.secure import client_app_for

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    return client_app_for(context.run_config)(msg, context)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    return client_app_for(context.run_config)(msg, context)
