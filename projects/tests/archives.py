"""Flower-app archives built in memory, good and hostile, for the upload tests."""

import io
import struct
import warnings
import zipfile

PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "mypkg"
version = "1.0.0"
description = "Federated learning with NumPy and Flower"
license = "Apache-2.0"
dependencies = [
    "flwr[simulation]>=1.12.0",
    "numpy>=1.26.0",
]

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "flwrlabs"

[tool.flwr.app.components]
serverapp = "mypkg.server_app:app"
clientapp = "mypkg.client_app:app"

[tool.flwr.app.config]
num-server-rounds = 3
local-epochs = 1

[tool.flwr.federations]
default = "local-simulation"

[tool.flwr.federations.local-simulation]
options.num-supernodes = 10
"""

SERVER_APP = '''\
"""mypkg: A Flower / NumPy app."""

from flwr.common import Context, ndarrays_to_parameters
from flwr.server import ServerApp, ServerAppComponents, ServerConfig
from flwr.server.strategy import FedAvg

from mypkg.task import get_dummy_model


def server_fn(context: Context):
    num_rounds = context.run_config["num-server-rounds"]
    parameters = ndarrays_to_parameters([get_dummy_model()])
    strategy = FedAvg(fraction_fit=1.0, fraction_evaluate=1.0, min_available_clients=2,
                      initial_parameters=parameters)
    config = ServerConfig(num_rounds=num_rounds)
    return ServerAppComponents(strategy=strategy, config=config)


app = ServerApp(server_fn=server_fn)
'''

CLIENT_APP = '''\
"""mypkg: A Flower / NumPy app."""

from flwr.client import ClientApp, NumPyClient
from flwr.common import Context

from mypkg.task import get_dummy_model


class FlowerClient(NumPyClient):
    def fit(self, parameters, config):
        model = get_dummy_model()
        return [model], 1, {}

    def evaluate(self, parameters, config):
        return float(0.0), 1, {"accuracy": float(1.0)}


def client_fn(context: Context):
    return FlowerClient().to_client()


app = ClientApp(client_fn=client_fn)
'''

TASK = '''\
"""mypkg: A Flower / NumPy app."""

import numpy as np


def get_dummy_model():
    return np.ones((1, 1))
'''

INIT = '"""mypkg: A Flower / NumPy app."""\n'


def flower_files(root: str = "quickstart-numpy/", overrides: dict | None = None) -> dict[str, str | bytes]:
    """Flower's own layout: pyproject.toml at ``root`` and the package ``mypkg`` beside it.

    ``overrides`` maps a path below ``root`` to new content, or to None to leave the file out.
    """
    files: dict[str, str | bytes | None] = {
        "pyproject.toml": PYPROJECT,
        "README.md": "# mypkg\n\nA Flower app.\n",
        "mypkg/__init__.py": INIT,
        "mypkg/server_app.py": SERVER_APP,
        "mypkg/client_app.py": CLIENT_APP,
        "mypkg/task.py": TASK,
    }
    files.update(overrides or {})
    return {f"{root}{name}": content for name, content in files.items() if content is not None}


def make_zip(files: dict[str, str | bytes], *, compression: int = zipfile.ZIP_DEFLATED,
             dirs: bool = False) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are written on purpose by some tests
        with zipfile.ZipFile(buf, "w", compression=compression) as zf:
            if dirs:
                seen = set()
                for name in files:
                    parts = name.split("/")[:-1]
                    for i in range(1, len(parts) + 1):
                        d = "/".join(parts[:i]) + "/"
                        if d not in seen:
                            seen.add(d)
                            zf.writestr(d, b"")
            for name, content in files.items():
                zf.writestr(name, content)
    return buf.getvalue()


def flower_zip(root: str = "quickstart-numpy/", overrides: dict | None = None) -> bytes:
    return make_zip(flower_files(root, overrides), dirs=True)


def _entries(data: bytes):
    """(local header offset, central directory offset, name) for each entry."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
        cd_start = zf.start_dir
    out, pos = [], cd_start
    for info in infos:
        assert data[pos:pos + 4] == b"PK\x01\x02"
        name_len, extra_len, comment_len = struct.unpack("<HHH", data[pos + 28:pos + 34])
        out.append((info.header_offset, pos, info.filename))
        pos += 46 + name_len + extra_len + comment_len
    return out


def patch_entry(data: bytes, name: str, *, file_size: int | None = None, set_flags: int = 0) -> bytes:
    """Rewrite an entry's headers (local and central) to lie about its size or flags."""
    buf = bytearray(data)
    for local, central, entry in _entries(data):
        if entry != name:
            continue
        assert buf[local:local + 4] == b"PK\x03\x04"
        if file_size is not None:
            struct.pack_into("<I", buf, local + 22, file_size)
            struct.pack_into("<I", buf, central + 24, file_size)
        if set_flags:
            for off in (local + 6, central + 8):
                (flags,) = struct.unpack_from("<H", buf, off)
                struct.pack_into("<H", buf, off, flags | set_flags)
        return bytes(buf)
    raise KeyError(name)
