"""Validation of an uploaded Flower app archive, treated as hostile input.

Nothing in the archive is executed or extracted to disk. Every entry is checked (name, type,
declared and real size, compression ratio) and every byte is read once through a bounded stream,
so a lying header cannot make us inflate more than the configured limit. ``pyproject.toml`` is
parsed with ``tomllib`` and the Python modules it names are parsed with ``ast`` (never imported).
"""

import ast
import hashlib
import posixpath
import stat
import tomllib
import zipfile
from dataclasses import dataclass, field
from typing import IO

from django.conf import settings

from core.exceptions import ValidationFailed

IGNORED_PREFIXES = ("__MACOSX/",)
IGNORED_NAMES = {".DS_Store"}
REQUIRED_MODULES = ("server_app.py", "client_app.py", "task.py")
READ_CHUNK = 64 * 1024


@dataclass
class ArchiveReport:
    checksum: str
    size: int
    unpacked_size: int
    files: list[str]
    app_root: str
    app_name: str
    app_version: str
    components: dict[str, str]
    app_config: dict = field(default_factory=dict)


def _reject(message: str, reason: str, http_status: int = 422, **extra) -> ValidationFailed:
    return ValidationFailed(message, details={"field": "file", "reason": reason, **extra}, http_status=http_status)


def _check_name(name: str) -> str:
    if not name or "\x00" in name:
        raise _reject("An archive entry has an empty or NUL-containing name", "bad_entry_name")
    if "\\" in name:
        raise _reject(f"Entry {name!r} uses backslashes; use a ZIP made with forward slashes", "bad_entry_name")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise _reject(f"Entry {name!r} has an absolute path", "absolute_path")
    parts = name.rstrip("/").split("/")
    if any(p == ".." for p in parts):
        raise _reject(f"Entry {name!r} escapes the archive's folder", "path_traversal")
    if any(p in ("", ".") for p in parts):
        raise _reject(f"Entry {name!r} has an empty or '.' path component", "bad_entry_name")
    return name


def _is_link(info: zipfile.ZipInfo) -> bool:
    # Unix mode bits live in the high word; an archive from elsewhere may set no file type at all.
    file_type = stat.S_IFMT(info.external_attr >> 16)
    return file_type not in (0, stat.S_IFREG, stat.S_IFDIR)


def _read_bounded(zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int) -> tuple[bytes, int]:
    """Inflate one entry, refusing to produce more than its declared size or the remaining budget."""
    chunks, total = [], 0
    limit = min(info.file_size, budget)
    try:
        with zf.open(info) as fh:
            while True:
                chunk = fh.read(READ_CHUNK)
                if not chunk:
                    break
                total += len(chunk)
                if total > limit:
                    if total > budget:
                        raise _reject("The archive unpacks to more than the allowed size", "too_large_unpacked",
                                      limit=settings.UPLOAD_MAX_UNPACKED_BYTES)
                    raise _reject(f"Entry {info.filename!r} is larger than its header says", "corrupt_entry")
                chunks.append(chunk)
    except zipfile.BadZipFile as exc:
        raise _reject(f"Entry {info.filename!r} is corrupt: {exc}", "corrupt_entry")
    except NotImplementedError:
        raise _reject(f"Entry {info.filename!r} uses an unsupported compression method", "unsupported_compression")
    except (EOFError, OSError, ValueError) as exc:
        raise _reject(f"Entry {info.filename!r} could not be read: {exc.__class__.__name__}", "corrupt_entry")
    return b"".join(chunks), total


def _module_path(dotted: str) -> list[str]:
    base = dotted.replace(".", "/")
    return [f"{base}.py", f"{base}/__init__.py"]


def _defines(source: bytes, attr: str) -> bool:
    tree = ast.parse(source)
    for node in tree.body:
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == attr:
            return True
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            if any((a.asname or a.name.split(".")[0]) == attr for a in node.names):
                return True
        for target in targets:
            if isinstance(target, ast.Name) and target.id == attr:
                return True
    return False


def validate_flower_archive(fileobj: IO[bytes], original_name: str = "") -> ArchiveReport:
    """Check an uploaded archive and describe the Flower app in it, or raise ``ValidationFailed``."""
    fileobj.seek(0, 2)
    size = fileobj.tell()
    fileobj.seek(0)
    if size == 0:
        raise _reject("The uploaded file is empty", "empty_file", http_status=400)
    if size > settings.UPLOAD_MAX_ARCHIVE_BYTES:
        raise _reject(f"The archive is {size} bytes; the limit is {settings.UPLOAD_MAX_ARCHIVE_BYTES}",
                      "too_large", http_status=400, limit=settings.UPLOAD_MAX_ARCHIVE_BYTES)
    digest = hashlib.sha256()
    for chunk in iter(lambda: fileobj.read(READ_CHUNK), b""):
        digest.update(chunk)
    fileobj.seek(0)

    if not zipfile.is_zipfile(fileobj):
        raise _reject("The file is not a ZIP archive", "not_a_zip", http_status=400)
    fileobj.seek(0)
    try:
        zf = zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        raise _reject(f"The ZIP archive is damaged: {exc}", "not_a_zip", http_status=400)

    with zf:
        infos = zf.infolist()
        file_infos = [i for i in infos if not i.is_dir()]
        if len(infos) > settings.UPLOAD_MAX_FILES:
            raise _reject(f"The archive holds {len(infos)} entries; the limit is {settings.UPLOAD_MAX_FILES}",
                          "too_many_files", limit=settings.UPLOAD_MAX_FILES)
        seen: set[str] = set()
        declared_total = 0
        for info in infos:
            _check_name(info.filename)
            if info.filename in seen:
                raise _reject(f"Entry {info.filename!r} appears twice", "duplicate_entry")
            seen.add(info.filename)
            if _is_link(info):
                raise _reject(f"Entry {info.filename!r} is a link or special file", "link_entry")
            if info.flag_bits & 0x1:
                raise _reject(f"Entry {info.filename!r} is encrypted", "encrypted_entry")
            declared_total += info.file_size
            if info.compress_size and info.file_size / info.compress_size > settings.UPLOAD_MAX_COMPRESSION_RATIO:
                raise _reject(
                    f"Entry {info.filename!r} has a compression ratio of "
                    f"{info.file_size // info.compress_size}:1, typical of a zip bomb",
                    "compression_ratio", limit=settings.UPLOAD_MAX_COMPRESSION_RATIO,
                )
        if declared_total > settings.UPLOAD_MAX_UNPACKED_BYTES:
            raise _reject(f"The archive unpacks to {declared_total} bytes; the limit is "
                          f"{settings.UPLOAD_MAX_UNPACKED_BYTES}", "too_large_unpacked",
                          limit=settings.UPLOAD_MAX_UNPACKED_BYTES)
        if not file_infos:
            raise _reject("The archive holds no files", "empty_archive")

        # Read every byte once, bounded: headers can lie about sizes, the stream cannot.
        contents: dict[str, bytes] = {}
        budget = settings.UPLOAD_MAX_UNPACKED_BYTES
        unpacked = 0
        for info in file_infos:
            data, n = _read_bounded(zf, info, budget - unpacked)
            unpacked += n
            if zipfile.crc32(data) & 0xFFFFFFFF != info.CRC:
                raise _reject(f"Entry {info.filename!r} fails its checksum", "corrupt_entry")
            contents[info.filename] = data

    names = [n for n in contents if not n.startswith(IGNORED_PREFIXES) and posixpath.basename(n) not in IGNORED_NAMES]
    root = _find_root(names)
    rel = {n[len(root):]: contents[n] for n in names if n.startswith(root)}

    try:
        pyproject = tomllib.loads(rel["pyproject.toml"].decode("utf-8"))
    except UnicodeDecodeError:
        raise _reject("pyproject.toml is not UTF-8 text", "bad_pyproject")
    except tomllib.TOMLDecodeError as exc:
        raise _reject(f"pyproject.toml does not parse: {exc}", "bad_pyproject")

    components = (((pyproject.get("tool") or {}).get("flwr") or {}).get("app") or {}).get("components")
    if not isinstance(components, dict):
        raise _reject("pyproject.toml declares no Flower app: [tool.flwr.app.components] is missing",
                      "not_a_flower_app")
    resolved: dict[str, str] = {}
    for component in ("serverapp", "clientapp"):
        ref = components.get(component)
        if not isinstance(ref, str) or ref.count(":") != 1:
            raise _reject(f"[tool.flwr.app.components] needs {component} = \"<module>:<object>\"",
                          "not_a_flower_app", component=component)
        module, attr = ref.split(":")
        if not module or not attr or not all(p.isidentifier() for p in module.split(".")) or not attr.isidentifier():
            raise _reject(f"{component} = {ref!r} is not a valid \"<module>:<object>\" reference",
                          "not_a_flower_app", component=component)
        path = next((p for p in _module_path(module) if p in rel), None)
        if path is None:
            raise _reject(f"{component} points to {module!r}, but {_module_path(module)[0]} is not in the archive",
                          "missing_file", missing=_module_path(module)[0])
        try:
            if not _defines(rel[path], attr):
                raise _reject(f"{path} does not define {attr!r}, which {component} points to",
                              "missing_object", component=component)
        except (SyntaxError, ValueError) as exc:
            raise _reject(f"{path} is not valid Python: {exc}", "syntax_error", file=path)
        resolved[component] = ref

    package_dirs = {posixpath.dirname(p) for ref in resolved.values()
                    for p in _module_path(ref.split(":")[0]) if p in rel}
    present = {posixpath.basename(p) for p in rel}
    missing = [m for m in REQUIRED_MODULES if m not in present]
    if missing:
        raise _reject(f"The Flower app is missing {', '.join(missing)}", "missing_file", missing=missing)
    for name, data in rel.items():
        if name.endswith(".py") and (posixpath.dirname(name) in package_dirs or "/" not in name):
            try:
                ast.parse(data, filename=name)
            except (SyntaxError, ValueError) as exc:
                raise _reject(f"{name} is not valid Python: {exc}", "syntax_error", file=name)

    project = pyproject.get("project") or {}
    app_config = (((pyproject.get("tool") or {}).get("flwr") or {}).get("app") or {}).get("config") or {}
    return ArchiveReport(
        checksum=digest.hexdigest(),
        size=size,
        unpacked_size=unpacked,
        files=sorted(rel),
        app_root=root.rstrip("/"),
        app_name=str(project.get("name", ""))[:200],
        app_version=str(project.get("version", ""))[:50],
        components=resolved,
        app_config=app_config if isinstance(app_config, dict) else {},
    )


def _find_root(names: list[str]) -> str:
    """The folder holding pyproject.toml: the archive's root, or its single top-level folder."""
    if "pyproject.toml" in names:
        return ""
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) == 1:
        top = next(iter(tops))
        if f"{top}/pyproject.toml" in names:
            return f"{top}/"
    raise _reject("The archive has no pyproject.toml at its root (or in its single top-level folder)",
                  "missing_file", missing=["pyproject.toml"])
