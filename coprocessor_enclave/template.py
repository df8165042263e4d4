"""Task templates: the `template.toml` manifest, ABI types and the content-hash template id."""

from __future__ import annotations

import ast
import dataclasses
import os
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_abi import encode, grammar
from eth_abi.registry import registry

from . import abi

# Re-exported: defined beside the bundle code, which the job process loads without this module.
from .bundles import MAX_BUNDLE_BYTES as MAX_BUNDLE_BYTES
from .bundles import files_hash as files_hash
from .errors import ManifestError

MANIFEST = "template.toml"
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$")  # shown in logs and listings: nothing a terminal acts on
_ENTRY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
# Compiled Python and native modules: the import system would run them instead of the hashed source.
_BYTECODE = (".pyc", ".pyo", ".so", ".pyd")
# `host`, `host:port` or `host:*`; `*.example.com` for subdomains; `*` alone for any public host.
_HOST = re.compile(r"^(\*|(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*)(:([0-9]{1,5}|\*))?$")
_SECRET = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
_TEMPLATE_ID = re.compile(r"^0x[0-9a-f]{64}$")
_KEYS = {
    "name",
    "version",
    "description",
    "entry",
    "inputs",
    "outputs",
    "limits",
    "http",
    "secrets",
    "config",
    "encrypted_input",
    "calls",
    "callable",
}
MAX_DECLARED_CALLS = 8  # templates one template may call (`calls`)


@dataclass(frozen=True)
class Limits:
    """Resource limits a template runs under."""

    timeout_seconds: float = 5.0
    memory_mb: int = 512
    output_bytes: int = 16 * 1024
    log_bytes: int = 16 * 1024


@dataclass(frozen=True)
class HttpPolicy:
    """Where a template may send HTTP requests, and how much it may fetch."""

    hosts: tuple[str, ...] = ()
    max_requests: int = 8
    max_response_bytes: int = 1024 * 1024
    timeout_seconds: float = 5.0


@dataclass(frozen=True)
class Template:
    """A loaded template folder."""

    path: Path
    name: str
    version: str
    description: str
    entry: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    limits: Limits = field(default_factory=Limits)
    http: HttpPolicy = field(default_factory=HttpPolicy)
    secrets: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)
    # Its input arrives sealed to the template's input key (`keys.encrypt_input`): the enclave opens it,
    # and an input that does not open is answered INVALID_INPUT. Part of the id, like every manifest byte.
    encrypted_input: bool = False
    # Template ids this one may call with `ctx.call` (docs/templates.md). Part of the id, so what a template
    # can call is pinned with it, and no chain of declarations can loop back: a cycle would need a hash fixpoint.
    calls: tuple[bytes, ...] = ()
    # Whether other templates may call it (`ctx.call`): its author's consent, paid out of each caller's fee.
    callable: bool = False
    template_id: bytes = b""
    # The bytes the id was computed from, read once at load: workers run these, never the folder again.
    files: Mapping[str, bytes] = field(default_factory=dict, repr=False, compare=False)

    @property
    def id_hex(self) -> str:
        """The template id as 0x-hex."""
        return "0x" + self.template_id.hex()


def read_bundle(folder: Path) -> dict[str, bytes]:
    """Every file of a bundle, read once: `{posix relative path: content}`, sorted by path bytes.

    Refuses anything the id could not pin or a worker must not run: bytecode and native
    modules (Python prefers them over source), hidden files and folders, symbolic links
    (anywhere, dot-folders included), anything that is not a regular file or folder, and
    more than `MAX_BUNDLE_BYTES`. Folders are walked and files read through descriptors
    opened without following links and checked after opening, so a file swapped for a link
    or a FIFO while we read is refused rather than followed.
    """
    files: dict[str, bytes] = {}
    total = 0
    for directory, folders, names, dir_fd in os.fwalk(folder, follow_symlinks=False):
        base = Path(directory).relative_to(folder)
        for name in sorted(folders + names):
            relative = (base / name).as_posix()
            mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
            if stat.S_ISLNK(mode):  # its content would depend on where it points, outside the bundle
                raise ManifestError(f"{folder}: {relative} is a symbolic link; a bundle holds regular files only")
            if name.startswith("."):
                raise ManifestError(f"{folder}: {relative} is hidden; a bundle holds no hidden files or folders (remove it)")
            if name == "__pycache__" or name.endswith(_BYTECODE):
                raise ManifestError(
                    f"{folder}: {relative} is compiled code the template id would not show; remove it "
                    "(and run Python with -B, or PYTHONDONTWRITEBYTECODE=1, near templates)"
                )
            if name in names:
                files[relative] = _read_regular(folder, relative, name, dir_fd)
                total += len(files[relative])
                if total > MAX_BUNDLE_BYTES:
                    raise ManifestError(f"{folder}: the bundle is over {MAX_BUNDLE_BYTES} bytes")
    return dict(sorted(files.items(), key=lambda item: item[0].encode()))


def _read_regular(folder: Path, relative: str, name: str, dir_fd: int) -> bytes:
    """The content of `name` in `dir_fd`, which must be a regular file when opened (not followed, never blocking)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as exc:  # ELOOP: it became a link
        raise ManifestError(f"{folder}: {relative} cannot be read as a regular file ({exc.strerror})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ManifestError(f"{folder}: {relative} is not a regular file or folder")
        with os.fdopen(os.dup(fd), "rb") as file:
            return file.read(MAX_BUNDLE_BYTES + 1)
    finally:
        os.close(fd)


def bundle_hash(folder: Path) -> bytes:
    """The template id of the bundle in `folder`: `files_hash(read_bundle(folder))`."""
    return files_hash(read_bundle(folder))


def _check_entry_function(source: bytes, module_file: str, function: str, manifest_path: Path) -> None:
    """Refuses at load, not on the first request, an entry module that does not compile or does not
    define the entry function at its top level. Parsed, never run."""
    try:
        tree = ast.parse(source, filename=module_file)
    except SyntaxError as exc:
        raise ManifestError(f"{manifest_path}: {module_file} does not compile: {exc.msg} (line {exc.lineno})") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ManifestError(f"{manifest_path}: {module_file} cannot be parsed: {type(exc).__name__}") from None
    names: set[str] = set()
    pending: list[ast.stmt] = list(tree.body)
    while pending:  # top-level statements, and those inside top-level if/try/with blocks
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            if any(alias.name == "*" for alias in node.names):
                return  # names we cannot see: the run will tell
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            pending += [*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", [])]
            pending += [s for handler in getattr(node, "handlers", []) for s in handler.body]
    if function not in names:
        raise ManifestError(f"{manifest_path}: entry function `{function}` is not defined at the top level of {module_file}")


def _abi_type(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ManifestError(f"{where}: expected an ABI type string, got {value!r}")
    normalized = grammar.normalize(value)
    try:
        # Before parsing: the parser recurses, and the enclave walks and decodes outputs of these types.
        abi.check_type(normalized)
    except ValueError as exc:
        shown = value if len(value) <= 80 else value[:80] + "..."
        raise ManifestError(f"{where}: ABI type {shown!r} {exc}") from None
    try:
        grammar.parse(normalized).validate()
        # The grammar takes any word as a base type ("strin"); the codec registry knows the real ones.
        registry.get_encoder(normalized)
    except Exception as exc:  # eth_abi raises several parse and lookup error types
        detail = " ".join(str(exc).split())[:160]
        raise ManifestError(f"{where}: {value!r} is not an ABI type; {_ABI_TYPES_HINT} ({detail})") from None
    return str(normalized)


_ABI_TYPES_HINT = (
    "types are uint<M>, int<M> (M = 8..256 in steps of 8), address, bool, bytes<N> (N = 1..32), bytes, string,"
    " fixed<M>x<N>, ufixed<M>x<N>, tuples (t1,t2,...) and arrays t[] or t[k]"
)


def _require(data: dict[str, Any], key: str, kind: type, path: Path) -> Any:
    if key not in data:
        raise ManifestError(f"{path}: missing required key `{key}`")
    if not isinstance(data[key], kind):
        raise ManifestError(f"{path}: `{key}` must be a {kind.__name__}, got {type(data[key]).__name__}")
    return data[key]


def _table(data: dict[str, Any], key: str, kind: type, path: Path) -> Any:
    """Builds dataclass `kind` from table `key`, naming unknown keys and wrong value types."""
    raw = data.get(key, {})
    if not isinstance(raw, dict):
        raise ManifestError(f"{path}: [{key}] must be a table")
    fields = {f.name: f for f in dataclasses.fields(kind)}
    unknown = set(raw) - set(fields)
    if unknown:
        raise ManifestError(f"{path}: unknown keys in [{key}]: {sorted(unknown)} (known: {sorted(fields)})")
    defaults = kind()
    for name, value in raw.items():
        expected = type(getattr(defaults, name))
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) if expected is float else isinstance(value, expected)
        if expected is tuple:
            ok = isinstance(value, list)
        if not ok:
            kind_name = "list" if expected is tuple else "number" if expected is float else expected.__name__
            raise ManifestError(f"{path}: [{key}] {name} must be a {kind_name}, got {value!r}")
    return kind(**raw)


def load_template(folder: Path | str) -> Template:
    """Loads and validates the template in `folder`."""
    folder = Path(folder).resolve()
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise ManifestError(f"{folder}: no {MANIFEST} found")
    files = read_bundle(folder)  # from here on only these bytes count, not what the folder holds later
    try:
        data = tomllib.loads(files[MANIFEST].decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{manifest_path}: not valid TOML ({exc})") from None

    name = _require(data, "name", str, manifest_path)
    if not _NAME.match(name):
        raise ManifestError(f"{manifest_path}: name {name!r} must be lowercase letters, digits and dashes")
    entry = _require(data, "entry", str, manifest_path)
    if not _ENTRY.match(entry):
        raise ManifestError(f"{manifest_path}: entry {entry!r} must look like `module:function`")
    module_file = entry.split(":")[0].replace(".", "/") + ".py"
    if module_file not in files:
        raise ManifestError(f"{manifest_path}: entry module {module_file} not found in the template folder")
    _check_entry_function(files[module_file], module_file, entry.split(":")[1], manifest_path)
    inputs = _require(data, "inputs", list, manifest_path)
    outputs = _require(data, "outputs", list, manifest_path)
    if not outputs:
        raise ManifestError(f"{manifest_path}: `outputs` must name at least one ABI type")

    version = _require(data, "version", str, manifest_path)
    if not _VERSION.match(version):
        raise ManifestError(f"{manifest_path}: version {version!r} must be letters, digits and . + _ - (like 1.2.0)")
    description = data.get("description", "")
    if not isinstance(description, str) or len(description) > 512 or not description.isprintable():
        raise ManifestError(f"{manifest_path}: description must be one line of printable text, at most 512 characters")
    unknown = set(data) - _KEYS
    if unknown:
        raise ManifestError(f"{manifest_path}: unknown keys {sorted(unknown)} (known: {sorted(_KEYS)})")
    limits = _table(data, "limits", Limits, manifest_path)
    if not 0 < limits.timeout_seconds <= 60 or not 32 <= limits.memory_mb <= 4096:
        raise ManifestError(f"{manifest_path}: [limits] out of range (timeout_seconds 0-60, memory_mb 32-4096)")
    if not 0 < limits.output_bytes <= 1024 * 1024 or not 0 <= limits.log_bytes <= 1024 * 1024:
        raise ManifestError(f"{manifest_path}: [limits] out of range (output_bytes 1-1048576, log_bytes 0-1048576)")
    http = _table(data, "http", HttpPolicy, manifest_path)
    if not isinstance(http.hosts, (list, tuple)) or not all(isinstance(h, str) and _HOST.match(h) for h in http.hosts):
        raise ManifestError(f'{manifest_path}: [http] hosts must be a list like ["api.example.com", "*.example.org", "127.0.0.1:8080"]')
    # An unset HTTP timeout is the template's own timeout when that is shorter.
    timeout = http.timeout_seconds if "timeout_seconds" in data.get("http", {}) else min(5.0, limits.timeout_seconds)
    http = HttpPolicy(tuple(http.hosts), http.max_requests, http.max_response_bytes, timeout)
    if not 0 <= http.max_requests <= 64 or not 0 < http.max_response_bytes <= 8 * 1024 * 1024:
        raise ManifestError(f"{manifest_path}: [http] out of range (max_requests 0-64, max_response_bytes 1-8388608)")
    if not 0 < http.timeout_seconds <= limits.timeout_seconds:
        raise ManifestError(f"{manifest_path}: [http] timeout_seconds must be above 0 and at most [limits] timeout_seconds")
    secrets = data.get("secrets", [])
    if not isinstance(secrets, list) or not all(isinstance(n, str) and _SECRET.match(n) for n in secrets):
        raise ManifestError(f'{manifest_path}: `secrets` must be a list of names like "OPENAI_API_KEY"')
    config = data.get("config", {})
    if not isinstance(config, dict):
        raise ManifestError(f"{manifest_path}: [config] must be a table")
    encrypted_input = data.get("encrypted_input", False)
    if not isinstance(encrypted_input, bool):
        raise ManifestError(f"{manifest_path}: `encrypted_input` must be true or false")
    callable_ = data.get("callable", False)
    if not isinstance(callable_, bool):
        raise ManifestError(f"{manifest_path}: `callable` must be true or false")
    calls = data.get("calls", [])
    if (
        not isinstance(calls, list)
        or len(calls) > MAX_DECLARED_CALLS
        or not all(isinstance(c, str) and _TEMPLATE_ID.match(c) for c in calls)
    ):
        raise ManifestError(
            f'{manifest_path}: `calls` must list at most {MAX_DECLARED_CALLS} template ids like "0x1f0c..." (64 hex digits)'
        )

    return Template(
        path=folder,
        name=name,
        version=version,
        description=description,
        entry=entry,
        inputs=tuple(_abi_type(t, f"{manifest_path}: inputs[{i}]") for i, t in enumerate(inputs)),
        outputs=tuple(_abi_type(t, f"{manifest_path}: outputs[{i}]") for i, t in enumerate(outputs)),
        limits=limits,
        http=http,
        secrets=tuple(secrets),
        config=config,
        encrypted_input=encrypted_input,
        calls=tuple(bytes.fromhex(c[2:]) for c in calls),
        callable=callable_,
        template_id=files_hash(files),
        files=files,
    )


def load_templates(roots: list[Path]) -> dict[bytes, Template]:
    """Every template under `roots` (a root may itself be a template folder), by template id."""
    found: dict[bytes, Template] = {}
    for root in roots:
        folders = [root] if (root / MANIFEST).is_file() else sorted(p.parent for p in root.glob(f"*/{MANIFEST}"))
        for folder in folders:
            template = load_template(folder)
            found[template.template_id] = template
    return found


def find_template(templates: dict[bytes, Template], key: str) -> Template:
    """A template by name or 0x id."""
    for template in templates.values():
        if key in (template.name, template.id_hex):
            return template
    known = ", ".join(sorted(t.name for t in templates.values())) or "none"
    raise ManifestError(f"unknown template {key!r} (known: {known})")


def encode_args(template: Template, args: list[Any]) -> bytes:
    """ABI-encodes JSON-style `args` (0x-strings for bytes types) as the template's inputs."""
    if len(args) != len(template.inputs):
        raise ManifestError(f"{template.name} takes {len(template.inputs)} inputs {list(template.inputs)}, got {len(args)}")

    def convert(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("0x") and len(value) % 2 == 0:
            return bytes.fromhex(value[2:])
        if isinstance(value, list):
            return [convert(v) for v in value]
        return value

    try:
        return encode(list(template.inputs), [convert(a) for a in args])
    except Exception as exc:
        raise ManifestError(f"arguments do not encode as {list(template.inputs)}: {exc}") from None


def to_jsonable(value: Any) -> Any:
    """A decoded ABI value as JSON-style data (bytes as 0x-hex): the inverse of `encode_args`' conversion."""
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value
