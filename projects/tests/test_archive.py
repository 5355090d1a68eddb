"""``validate_flower_archive`` called directly: what it accepts and what it reports."""

import hashlib
import io
import zipfile

import pytest

from core.exceptions import ValidationFailed
from projects.archive import validate_flower_archive
from projects.tests.archives import PYPROJECT, flower_files, flower_zip, make_zip


def _validate(data: bytes):
    return validate_flower_archive(io.BytesIO(data), "app.zip")


def test_report():
    data = flower_zip("quickstart-numpy/")
    report = _validate(data)
    assert report.checksum == hashlib.sha256(data).hexdigest()
    assert report.size == len(data)
    assert report.app_root == "quickstart-numpy"
    assert report.app_name == "mypkg" and report.app_version == "1.0.0"
    assert report.components == {"serverapp": "mypkg.server_app:app", "clientapp": "mypkg.client_app:app"}
    assert report.app_config == {"num-server-rounds": 3, "local-epochs": 1}
    assert "mypkg/task.py" in report.files and "pyproject.toml" in report.files


@pytest.mark.parametrize("server_app", [
    "from flwr.server import ServerApp\napp: ServerApp = ServerApp()\n",
    "from flwr.server import ServerApp\napp = other = ServerApp()\n",
    "def app(driver, context):\n    pass\n",
    "async def app(grid, context):\n    pass\n",
    "class app:\n    pass\n",
    "from mypkg.real_server import app\n",
    "from mypkg.real_server import server as app\n",
])
def test_component_object_may_be_defined_in_any_top_level_way(server_app):
    report = _validate(flower_zip(overrides={"mypkg/server_app.py": server_app,
                                             "mypkg/real_server.py": "server = app = 1\n"}))
    assert report.components["serverapp"] == "mypkg.server_app:app"


@pytest.mark.parametrize("server_app", [
    "def make():\n    app = 1\n",
    "if False:\n    pass\napplication = 1\n",
    "",
])
def test_component_object_must_be_a_top_level_name(server_app):
    with pytest.raises(ValidationFailed) as exc:
        _validate(flower_zip(overrides={"mypkg/server_app.py": server_app}))
    assert exc.value.details["reason"] == "missing_object"


@pytest.mark.parametrize("ref", ["mypkg.server_app", "mypkg.server_app:app:x", "mypkg..server_app:app",
                                 "mypkg.server-app:app", "mypkg.server_app:", ":app", "os.system('id'):app"])
def test_malformed_component_references(ref):
    pyproject = PYPROJECT.replace('"mypkg.server_app:app"', f'"{ref}"')
    with pytest.raises(ValidationFailed) as exc:
        _validate(flower_zip(overrides={"pyproject.toml": pyproject}))
    assert exc.value.details["reason"] == "not_a_flower_app"


def test_components_as_a_list_is_not_a_flower_app():
    pyproject = PYPROJECT.replace("[tool.flwr.app.components]\n", "[tool.flwr.app]\ncomponents = []\n[x]\n")
    pyproject = pyproject.replace('[tool.flwr.app]\npublisher = "flwrlabs"\n\n', "")
    with pytest.raises(ValidationFailed) as exc:
        _validate(flower_zip(overrides={"pyproject.toml": pyproject}))
    assert exc.value.details["reason"] == "not_a_flower_app"


def test_stored_entries_are_accepted():
    report = _validate(make_zip(flower_files(), compression=zipfile.ZIP_STORED))
    assert report.unpacked_size == sum(len(c.encode()) for c in flower_files().values())


def test_the_archive_is_read_from_the_start_whatever_the_file_position():
    fh = io.BytesIO(flower_zip())
    fh.seek(0, 2)
    assert validate_flower_archive(fh, "app.zip").app_name == "mypkg"


def test_compression_ratio_limit_is_a_setting(settings):
    settings.UPLOAD_MAX_COMPRESSION_RATIO = 2000  # 1 MB of zeros deflates about 1000:1
    _validate(make_zip({**flower_files(), "quickstart-numpy/mypkg/zeros.bin": b"\0" * (1024 * 1024)}))
    settings.UPLOAD_MAX_COMPRESSION_RATIO = 100
    with pytest.raises(ValidationFailed):
        _validate(make_zip({**flower_files(), "quickstart-numpy/mypkg/zeros.bin": b"\0" * (1024 * 1024)}))
