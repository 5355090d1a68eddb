"""``POST /api/v1/projects/{id}/upload``: Flower-app archives, treated as hostile input."""

import hashlib
import io
import os
import stat
import uuid
import warnings
import zipfile
from pathlib import Path

import pytest

from projects.models import Project, ProjectUpload
from projects.tests.api.test_projects import assert_error
from projects.tests.archives import PYPROJECT, SERVER_APP, flower_files, flower_zip, make_zip, patch_entry
from projects.tests.conftest import API, media_files
from projects.tests.factories import ProjectFactory

PACKAGE_FILES = ["mypkg/__init__.py", "mypkg/client_app.py", "mypkg/server_app.py", "mypkg/task.py"]


@pytest.fixture
def project(owner):
    return ProjectFactory(owner=owner, name="Flower")


# ---- a good app ------------------------------------------------------------------------------------

@pytest.mark.parametrize("root", ["quickstart-numpy/", ""])
def test_upload_a_flower_app(api, owner, project, root):
    archive = flower_zip(root)
    r = api.upload(project.pk, archive, name="quickstart-numpy.zip")

    assert r.status_code == 201, r.content
    body = r.json()
    assert body["success"] is True and body["message"]
    data = body["data"]
    upload = ProjectUpload.objects.get()
    # seed 000's fields
    assert data["project_id"] == str(project.pk)
    assert data["upload_id"] == str(upload.pk)
    assert data["status"] == "uploaded"
    assert data["validation_status"] == "valid"
    assert data["files"] == ["README.md", *PACKAGE_FILES, "pyproject.toml"]
    # and what validation learnt
    assert data["checksum"] == hashlib.sha256(archive).hexdigest()
    assert data["size"] == len(archive)
    assert data["unpacked_size"] == sum(len(c.encode()) for c in flower_files(root).values())
    assert data["original_name"] == "quickstart-numpy.zip"
    assert data["app_root"] == root.rstrip("/")
    assert data["app_name"] == "mypkg" and data["app_version"] == "1.0.0"
    assert data["components"] == {"serverapp": "mypkg.server_app:app", "clientapp": "mypkg.client_app:app"}
    assert data["app_config"] == {"num-server-rounds": 3, "local-epochs": 1}
    assert data["uploaded_by"] == "owner"

    # stored as sent, under MEDIA_ROOT
    stored = media_files()
    assert len(stored) == 1
    assert stored[0].read_bytes() == archive
    assert Path(upload.archive.path) == stored[0]
    assert str(project.pk) in upload.archive.name
    assert upload.uploaded_by == owner and upload.checksum == data["checksum"]


def test_upload_list_detail_and_download(api, project):
    first, second = flower_zip(), flower_zip("")
    id1 = api.upload(project.pk, first, name="first.zip").json()["data"]["upload_id"]
    id2 = api.upload(project.pk, second, name="second.zip").json()["data"]["upload_id"]
    base = f"{API}/{project.pk}/uploads"

    body = api.get(base).json()
    assert body["success"] is True
    assert [u["upload_id"] for u in body["data"]] == [id2, id1]
    assert body["pagination"]["total"] == 2
    assert api.get(f"{base}/", {"limit": 1}).json()["pagination"]["pages"] == 2

    detail = api.get(f"{base}/{id1}").json()["data"]
    assert detail["upload_id"] == id1
    assert detail["original_name"] == "first.zip"
    assert detail["checksum"] == hashlib.sha256(first).hexdigest()

    r = api.get(f"{base}/{id1}/download")
    assert r.status_code == 200
    assert b"".join(r.streaming_content) == first
    assert r["X-Checksum-SHA256"] == hashlib.sha256(first).hexdigest()
    assert r["Content-Type"] == "application/zip"
    assert "first.zip" in r["Content-Disposition"] and "attachment" in r["Content-Disposition"]

    r = api.get(f"{base}/{id2}/download")
    assert b"".join(r.streaming_content) == second


def test_upload_with_a_component_package_and_finder_litter(api, project):
    """A component may point at a package (``__init__.py``); .DS_Store files are left out."""
    pyproject = PYPROJECT.replace('"mypkg.server_app:app"', '"mypkg.server:app"')
    files = flower_files("app/", {"pyproject.toml": pyproject, "mypkg/server_app.py": None,
                                  "mypkg/server/__init__.py": SERVER_APP, "mypkg/.DS_Store": b"\x00\x01"})
    files["app/server_app.py"] = "# a stray top-level module named like the component\n"
    r = api.upload(project.pk, make_zip(files))
    assert r.status_code == 201, r.content
    data = r.json()["data"]
    assert data["components"]["serverapp"] == "mypkg.server:app"
    assert "mypkg/server/__init__.py" in data["files"]
    assert "mypkg/.DS_Store" not in data["files"]


def test_upload_with_macosx_folder_beside_the_app(api, project):
    files = flower_files("app/")
    files["__MACOSX/app/._pyproject.toml"] = b"\x00\x05\x16\x07"
    r = api.upload(project.pk, make_zip(files))
    assert r.status_code == 201, r.content
    assert not any(f.startswith("__MACOSX") for f in r.json()["data"]["files"])


def test_upload_touches_the_project(api, project):
    before = Project.objects.get(pk=project.pk).updated_at
    assert api.upload(project.pk, flower_zip()).status_code == 201
    assert Project.objects.get(pk=project.pk).updated_at > before


def test_nothing_in_the_archive_runs(api, project):
    marker = Path(f"/tmp/pollen-pwned-{uuid.uuid4().hex}")
    payload = f"open({str(marker)!r}, 'w').write('pwned')\n"
    archive = flower_zip(overrides={
        "mypkg/server_app.py": payload + SERVER_APP,
        "mypkg/client_app.py": payload + flower_files()["quickstart-numpy/mypkg/client_app.py"],
        "mypkg/task.py": payload + "def get_dummy_model():\n    return 1\n",
        "mypkg/__init__.py": payload,
        "setup.py": payload + "from setuptools import setup\nsetup()\n",
        "conftest.py": payload,
    })
    try:
        r = api.upload(project.pk, archive)
        assert r.status_code == 201, r.content
        assert not marker.exists()
        # the stored archive is the inert bytes that were sent; nothing was unpacked beside it
        assert [p.read_bytes() for p in media_files()] == [archive]
    finally:
        marker.unlink(missing_ok=True)


# ---- bad and hostile archives ------------------------------------------------------------------------

def _symlink_zip():
    files = flower_files()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in files.items():
            zf.writestr(name, content)
        link = zipfile.ZipInfo("quickstart-numpy/mypkg/data")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    return buf.getvalue()


def _device_zip():
    files = flower_files()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in files.items():
            zf.writestr(name, content)
        fifo = zipfile.ZipInfo("quickstart-numpy/pipe")
        fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
        zf.writestr(fifo, "")
    return buf.getvalue()


def _duplicate():
    """A second ``task.py`` after the first: which one an extractor keeps depends on the tool."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate we write on purpose
        with zipfile.ZipFile(buf, "w") as zf:
            for name, content in flower_files().items():
                zf.writestr(name, content)
            zf.writestr("quickstart-numpy/mypkg/task.py", "import os\nos.system('id')\n")
    return buf.getvalue()


def _with(extra: dict, root="quickstart-numpy/", overrides=None):
    return make_zip({**flower_files(root, overrides), **extra})


def _lying_bomb():
    """5 MB of zeros whose headers claim 1,000 bytes: the ratio check sees 1000:5000 and passes."""
    data = _with({"quickstart-numpy/mypkg/weights.bin": b"\0" * (5 * 1024 * 1024)})
    return patch_entry(data, "quickstart-numpy/mypkg/weights.bin", file_size=1000)


def _encrypted():
    data = flower_zip()
    return patch_entry(data, "quickstart-numpy/mypkg/task.py", set_flags=0x1)


def _truncated():
    data = flower_zip()
    return data[: len(data) // 2]


def _missing_pyproject_tables(text):
    return {"pyproject.toml": PYPROJECT.split("[tool.flwr.app.components]")[0] + text}


BAD_ARCHIVES = {
    # case: (archive bytes or a callable, status, reason, words the message must contain)
    "not a zip": (b"This is a plain text file, not an archive.\n" * 20, 400, "not_a_zip", "not a ZIP"),
    "empty file": (b"", 400, "empty_file", "empty"),
    "truncated zip": (_truncated, 400, "not_a_zip", "ZIP"),
    "dot-dot escape": (lambda: _with({"quickstart-numpy/../../evil.py": "x = 1\n"}), 422, "path_traversal",
                       "escapes"),
    "dot-dot at the start": (lambda: make_zip({"../evil.py": "x", **flower_files("")}), 422, "path_traversal",
                             "../evil.py"),
    "absolute path": (lambda: _with({"/etc/passwd": "root:x:0:0::/root:/bin/sh\n"}), 422, "absolute_path",
                      "/etc/passwd"),
    "windows drive path": (lambda: _with({"C:/Windows/evil.py": "x"}), 422, "absolute_path", "absolute"),
    "backslash path": (lambda: _with({"quickstart-numpy\\..\\evil.py": "x"}), 422, "bad_entry_name", "backslash"),
    "symlink": (_symlink_zip, 422, "link_entry", "mypkg/data"),
    "fifo": (_device_zip, 422, "link_entry", "special"),
    "zip bomb ratio": (lambda: _with({"quickstart-numpy/mypkg/weights.bin": b"\0" * (5 * 1024 * 1024)}), 422,
                       "compression_ratio", "zip bomb"),
    "header lies about size": (_lying_bomb, 422, "corrupt_entry", "weights.bin"),
    "encrypted entry": (_encrypted, 422, "encrypted_entry", "encrypted"),
    "duplicate entry": (_duplicate, 422, "duplicate_entry", "twice"),
    "no files, only folders": (lambda: make_zip({"app/": b"", "app/mypkg/": b""}), 422, "empty_archive",
                               "no files"),
    "missing pyproject.toml": (lambda: make_zip(flower_files(overrides={"pyproject.toml": None})), 422,
                               "missing_file", "pyproject.toml"),
    "pyproject two folders down": (lambda: make_zip(flower_files("outer/inner/")), 422, "missing_file",
                                   "pyproject.toml"),
    "two top folders": (lambda: _with({"other/readme.txt": "hi"}), 422, "missing_file", "pyproject.toml"),
    "pyproject does not parse": (lambda: make_zip(flower_files(overrides={
        "pyproject.toml": "[project\nname = 'mypkg'\n"})), 422, "bad_pyproject", "does not parse"),
    "pyproject not utf-8": (lambda: make_zip(flower_files(overrides={
        "pyproject.toml": PYPROJECT.encode("utf-16")})), 422, "bad_pyproject", "UTF-8"),
    "no components table": (lambda: make_zip(flower_files(overrides=_missing_pyproject_tables(
        "[tool.flwr.app.config]\nnum-server-rounds = 3\n"))), 422, "not_a_flower_app",
        "[tool.flwr.app.components]"),
    "components without clientapp": (lambda: make_zip(flower_files(overrides=_missing_pyproject_tables(
        '[tool.flwr.app.components]\nserverapp = "mypkg.server_app:app"\n'))), 422, "not_a_flower_app",
        "clientapp"),
    "component not a reference": (lambda: make_zip(flower_files(overrides=_missing_pyproject_tables(
        '[tool.flwr.app.components]\nserverapp = "mypkg/server_app.py"\nclientapp = "mypkg.client_app:app"\n'))),
        422, "not_a_flower_app", "serverapp"),
    "component module is missing": (lambda: make_zip(flower_files(overrides={"mypkg/server_app.py": None})), 422,
                                    "missing_file", "mypkg/server_app.py"),
    "component object not defined": (lambda: make_zip(flower_files(overrides={
        "mypkg/client_app.py": "from flwr.client import ClientApp\n\nclient = ClientApp()\n"})), 422,
        "missing_object", "'app'"),
    "component only in a comment": (lambda: make_zip(flower_files(overrides={
        "mypkg/server_app.py": "# app = ServerApp()\ndef make():\n    app = 1\n    return app\n"})), 422,
        "missing_object", "server_app.py"),
    "missing task.py": (lambda: make_zip(flower_files(overrides={"mypkg/task.py": None})), 422, "missing_file",
                        "task.py"),
    "syntax error in a component": (lambda: make_zip(flower_files(overrides={
        "mypkg/server_app.py": SERVER_APP + "\ndef broken(:\n"})), 422, "syntax_error", "server_app.py"),
    "syntax error in task.py": (lambda: make_zip(flower_files(overrides={
        "mypkg/task.py": "def get_dummy_model()\n    return 1\n"})), 422, "syntax_error", "mypkg/task.py"),
    "nul byte in python": (lambda: make_zip(flower_files(overrides={
        "mypkg/task.py": b"x = 1\x00\n"})), 422, "syntax_error", "task.py"),
}


def assert_nothing_stored():
    assert not ProjectUpload.objects.exists()
    assert media_files() == []


@pytest.mark.parametrize("case", list(BAD_ARCHIVES))
def test_bad_archive_is_refused_and_nothing_is_stored(api, project, case):
    archive, status, reason, words = BAD_ARCHIVES[case]
    if callable(archive):
        archive = archive()
    r = api.upload(project.pk, archive)
    error = assert_error(r, status, "VALIDATION_ERROR")
    assert error["details"]["field"] == "file"
    assert error["details"]["reason"] == reason
    assert words in error["message"], error["message"]
    assert_nothing_stored()


def test_missing_file_field(api, project):
    r = api.upload(project.pk, flower_zip(), field="archive")
    error = assert_error(r, 400, "VALIDATION_ERROR")
    assert "file" in error["details"]
    assert error["message"].startswith("file")
    assert_nothing_stored()


def test_json_body_instead_of_multipart(api, project):
    r = api.post(f"{API}/{project.pk}/upload", {"file": "UEsDBA=="})
    assert r.status_code in (400, 415)
    assert r.json()["success"] is False
    assert_nothing_stored()


def test_too_many_files(api, project, settings):
    settings.UPLOAD_MAX_FILES = 6
    r = api.upload(project.pk, flower_zip())  # 6 files and 2 folders
    error = assert_error(r, 422, "VALIDATION_ERROR")
    assert error["details"]["reason"] == "too_many_files"
    assert "8 entries" in error["message"] and "6" in error["message"]
    assert_nothing_stored()
    settings.UPLOAD_MAX_FILES = 8
    assert api.upload(project.pk, flower_zip()).status_code == 201


def test_too_large_unpacked(api, project, settings):
    settings.UPLOAD_MAX_UNPACKED_BYTES = 5000
    big = os.urandom(3200).hex()  # 6,400 bytes that barely compress
    r = api.upload(project.pk, _with({"quickstart-numpy/mypkg/data.txt": big}))
    error = assert_error(r, 422, "VALIDATION_ERROR")
    assert error["details"]["reason"] == "too_large_unpacked"
    assert "unpacks to" in error["message"] and "5000" in error["message"]
    assert_nothing_stored()
    assert api.upload(project.pk, flower_zip()).status_code == 201  # the app alone fits


def test_entries_understating_their_sizes_are_refused(api, project, settings):
    """Eight entries that each claim 10 bytes cannot slip 25 KB past a 20 KB limit."""
    settings.UPLOAD_MAX_UNPACKED_BYTES = 20_000
    payload = os.urandom(1600).hex()  # 3,200 bytes each
    data = _with({f"quickstart-numpy/mypkg/d{i}.txt": payload for i in range(8)})
    for i in range(8):
        data = patch_entry(data, f"quickstart-numpy/mypkg/d{i}.txt", file_size=10)
    r = api.upload(project.pk, data)
    error = assert_error(r, 422, "VALIDATION_ERROR")
    assert error["details"]["reason"] == "corrupt_entry"
    assert_nothing_stored()


def test_archive_larger_than_the_limit(api, project, settings):
    archive = flower_zip()
    settings.UPLOAD_MAX_ARCHIVE_BYTES = len(archive) - 1
    r = api.upload(project.pk, archive)
    error = assert_error(r, 400, "VALIDATION_ERROR")
    assert error["details"]["reason"] == "too_large"
    assert str(len(archive)) in error["message"]
    assert_nothing_stored()
    settings.UPLOAD_MAX_ARCHIVE_BYTES = len(archive)
    assert api.upload(project.pk, archive).status_code == 201


def test_archive_spooled_to_disk_is_validated_the_same(api, project, settings):
    """Above FILE_UPLOAD_MAX_MEMORY_SIZE Django hands over a temporary file instead of memory."""
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 100
    archive = flower_zip()
    r = api.upload(project.pk, archive)
    assert r.status_code == 201, r.content
    assert media_files()[0].read_bytes() == archive
    r = api.upload(project.pk, _symlink_zip())
    assert r.status_code == 422
    assert ProjectUpload.objects.count() == 1 and len(media_files()) == 1


def test_failed_upload_after_a_good_one_leaves_the_good_one_alone(api, project):
    good = flower_zip()
    assert api.upload(project.pk, good).status_code == 201
    assert api.upload(project.pk, b"junk").status_code == 400
    assert ProjectUpload.objects.count() == 1
    assert [p.read_bytes() for p in media_files()] == [good]
