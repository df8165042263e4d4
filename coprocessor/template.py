"""Task templates: the `template.toml` manifest, ABI types and the content-hash template id."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_abi import encode, grammar
from eth_utils import keccak

from .errors import ManifestError

MANIFEST = "template.toml"
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
_ENTRY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
_IGNORED_PARTS = {"__pycache__", ".pytest_cache"}


@dataclass(frozen=True)
class Limits:
    """Resource limits a template runs under."""

    timeout_seconds: float = 5.0
    memory_mb: int = 512
    output_bytes: int = 16 * 1024


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
    template_id: bytes = b""

    @property
    def id_hex(self) -> str:
        """The template id as 0x-hex."""
        return "0x" + self.template_id.hex()


def bundle_files(folder: Path) -> list[Path]:
    """The files that make up a bundle: every regular file, minus caches and hidden files, sorted."""
    files = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if not path.is_file() or path.suffix == ".pyc":
            continue
        if any(part in _IGNORED_PARTS or part.startswith(".") for part in relative.parts):
            continue
        files.append(relative)
    return sorted(files, key=lambda p: p.as_posix().encode())


def bundle_hash(folder: Path) -> bytes:
    """keccak256 over each file's `path NUL length NUL content`, in byte order of paths.

    Any byte change in any file, or a renamed or added file, is a new hash.
    """
    encoded = bytearray()
    for relative in bundle_files(folder):
        content = (folder / relative).read_bytes()
        encoded += relative.as_posix().encode() + b"\0" + str(len(content)).encode() + b"\0" + content
    return keccak(bytes(encoded))


def _abi_type(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ManifestError(f"{where}: expected an ABI type string, got {value!r}")
    try:
        grammar.parse(value).validate()
    except Exception as exc:  # eth_abi raises several parse error types
        raise ManifestError(f"{where}: {value!r} is not a valid ABI type ({exc})") from None
    return grammar.normalize(value)


def _require(data: dict[str, Any], key: str, kind: type, path: Path) -> Any:
    if key not in data:
        raise ManifestError(f"{path}: missing required key `{key}`")
    if not isinstance(data[key], kind):
        raise ManifestError(f"{path}: `{key}` must be a {kind.__name__}, got {type(data[key]).__name__}")
    return data[key]


def load_template(folder: Path | str) -> Template:
    """Loads and validates the template in `folder`."""
    folder = Path(folder).resolve()
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise ManifestError(f"{folder}: no {MANIFEST} found")
    try:
        data = tomllib.loads(manifest_path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{manifest_path}: not valid TOML ({exc})") from None

    name = _require(data, "name", str, manifest_path)
    if not _NAME.match(name):
        raise ManifestError(f"{manifest_path}: name {name!r} must be lowercase letters, digits and dashes")
    entry = _require(data, "entry", str, manifest_path)
    if not _ENTRY.match(entry):
        raise ManifestError(f"{manifest_path}: entry {entry!r} must look like `module:function`")
    module_file = folder / (entry.split(":")[0].replace(".", "/") + ".py")
    if not module_file.is_file():
        raise ManifestError(f"{manifest_path}: entry module {module_file.name} not found in the template folder")
    inputs = _require(data, "inputs", list, manifest_path)
    outputs = _require(data, "outputs", list, manifest_path)
    if not outputs:
        raise ManifestError(f"{manifest_path}: `outputs` must name at least one ABI type")

    raw_limits = data.get("limits", {})
    if not isinstance(raw_limits, dict):
        raise ManifestError(f"{manifest_path}: [limits] must be a table")
    unknown = set(raw_limits) - set(Limits.__dataclass_fields__)
    if unknown:
        raise ManifestError(f"{manifest_path}: unknown limits {sorted(unknown)}")
    limits = Limits(**raw_limits)
    if not 0 < limits.timeout_seconds <= 60 or not 32 <= limits.memory_mb <= 4096 or limits.output_bytes <= 0:
        raise ManifestError(f"{manifest_path}: limits out of range (timeout 0-60 s, memory 32-4096 MB)")

    return Template(
        path=folder,
        name=name,
        version=_require(data, "version", str, manifest_path),
        description=data.get("description", ""),
        entry=entry,
        inputs=tuple(_abi_type(t, f"{manifest_path}: inputs[{i}]") for i, t in enumerate(inputs)),
        outputs=tuple(_abi_type(t, f"{manifest_path}: outputs[{i}]") for i, t in enumerate(outputs)),
        limits=limits,
        template_id=bundle_hash(folder),
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
