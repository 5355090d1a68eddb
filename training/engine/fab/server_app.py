"""ServerApp of a deployed execution: the execution's app over a Grid that reports to Pollen."""

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from training.engine.callback import run_observed

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    run_observed(grid, context)
