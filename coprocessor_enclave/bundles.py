"""Template code served from memory: the exact bytes the template id was computed from.

A worker never imports a template from its folder. The enclave reads each bundle once at
load (`template.read_bundle`) and sends a template's zygote its own bundle only (`pack`); the
zygote checks it against the template id (`unpack`), and its children import the modules
through `BundleFinder`, which knows only `.py` sources of that bundle. So a file changed on
disk after loading, or bytecode beside the sources, never runs, and no process holds another
template's code. The sources may come compiled (`compile_bundle`, by a confined child of the
zygote that runs none of them): the same code objects `BundleFinder` would make from them.
"""

from __future__ import annotations

import base64
import importlib.machinery
import marshal
import re
import sys
from collections.abc import Mapping, Sequence
from types import CodeType, ModuleType
from typing import Any, cast

from .abicodec import covers, keccak
from .errors import ManifestError

MAX_BUNDLE_BYTES = 8 * 1024 * 1024  # a template's files in all

# Where a bundle's modules say they come from (tracebacks, `__file__`); nothing exists there on disk.
ORIGIN = "/template"


def files_hash(files: Mapping[str, bytes]) -> bytes:
    """keccak256 over each file's `path NUL length NUL content`, in byte order of paths: the template id.

    Any byte change in any file, or a renamed or added file, is a new hash.
    """
    encoded = bytearray()
    for relative in sorted(files, key=str.encode):
        content = files[relative]
        encoded += relative.encode() + b"\0" + str(len(content)).encode() + b"\0" + content
    return keccak(bytes(encoded))


# What a zygote may import before forking jobs, when the enclave names it for a template: heavy
# modules of ours and the libraries they bring, never anything a template names freely.
PRELOADS = frozenset(
    {
        "eth_abi",
        "eth_utils",
        "eth_hash",
        "eth_keys",
        "eth_typing",
        "coprocessor_enclave.chainread",
        "coprocessor_enclave.protocol",
        "coprocessor_enclave.template",
    }
)
_IMPORTED = re.compile(rb"^[ \t]*(?:from|import)[ \t]+([A-Za-z_][A-Za-z0-9_.]*)", re.MULTILINE)
_READS_CHAIN = re.compile(rb"\.chain\b|chainread")


def preloads(files: Mapping[str, bytes], types: Sequence[str]) -> tuple[str, ...]:
    """The heavy modules a template's jobs will import, for its zygote to import once (`PRELOADS` only).

    Read from the sources' import lines (a template that imports otherwise only runs slower) and
    from its types (eth_abi serves the ones `abicodec` leaves to it). `.chain` in a source brings
    the verified chain reads (py-evm: 0.5 s to import, too much for a job's clock). The template's
    own tests (`tests/`, `test_*.py`) are in its bundle but never run in a job: not read.
    """
    wanted = set() if covers(types) else {"eth_abi"}
    for path, content in files.items():
        name = path.rsplit("/", 1)[-1]
        if not path.endswith(".py") or path.startswith("tests/") or name.startswith("test_") or name == "conftest.py":
            continue
        for name in _IMPORTED.findall(content):
            top = name.decode().split(".")[0]
            if top == "coprocessor":
                wanted.add("coprocessor_enclave." + name.decode().removeprefix("coprocessor.").split(".")[0])
            else:
                wanted.add(top)
        if _READS_CHAIN.search(content):
            wanted.add("coprocessor_enclave.chainread")
    return tuple(sorted(wanted & PRELOADS))


def pack(files: Mapping[str, bytes]) -> dict[str, str]:
    """A bundle as a job frame carries it: base64 contents by path."""
    return {path: base64.b64encode(content).decode() for path, content in files.items()}


def decode(packed: Mapping[str, str]) -> dict[str, bytes]:
    """The bundle of a job frame (`pack`), unchecked: see `unpack`."""
    return {path: base64.b64decode(content) for path, content in packed.items()}


def unpack(packed: Mapping[str, str], template_id: str) -> dict[str, bytes]:
    """The bundle of a job frame, checked against `template_id` (`0x` hex); raises if it does not hash to it."""
    files = decode(packed)
    if "0x" + files_hash(files).hex() != template_id:
        raise ManifestError(f"the job's bundle does not hash to its template id {template_id}")
    return files


def compile_bundle(files: Mapping[str, bytes]) -> bytes:
    """Every `.py` source of a bundle compiled as `BundleFinder` compiles it, marshalled into one blob for `BundleFinder`.

    Compiling parses the sources and runs none of them. A source that does not compile is left
    out: the job compiles it itself and meets the same error. Only the process that will run the
    code reads the blob (`marshal` is not for untrusted data; there it holds nothing the
    template's own code could not do).
    """
    compiled = {}
    for relative, source in files.items():
        if relative.endswith(".py"):
            try:
                compiled[relative] = marshal.dumps(_compile(source, f"{ORIGIN}/{relative}"))
            except Exception:  # SyntaxError, ValueError (NUL bytes), RecursionError, MemoryError
                continue
    return marshal.dumps(compiled)


def _compile(source: bytes, origin: str) -> CodeType:
    return compile(source, origin, "exec", dont_inherit=True)


class BundleFinder:
    """Finds and loads a bundle's modules (`a.b` is `a/b.py` or `a/b/__init__.py`) from memory.

    A meta path finder and loader by protocol, not by `importlib.abc`, which imports `importlib.resources`,
    `tempfile` and `random`, whose after-fork reseed would cost every job process page faults."""

    def __init__(self, files: Mapping[str, bytes], compiled: bytes = b"") -> None:
        self._files = files
        self._compiled: dict[str, bytes] | None = None
        if compiled:
            try:
                table = marshal.loads(compiled)
                if isinstance(table, dict):
                    self._compiled = table
            except Exception:  # then every module is compiled here
                pass

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        base = fullname.replace(".", "/")
        for relative, package in ((f"{base}/__init__.py", True), (f"{base}.py", False)):
            if relative in self._files:
                spec = importlib.machinery.ModuleSpec(fullname, cast(Any, self), origin=f"{ORIGIN}/{relative}", is_package=package)
                if package:
                    spec.submodule_search_locations = [f"{ORIGIN}/{base}"]
                spec.has_location = True  # sets __file__ to the origin, for tracebacks and familiar code
                return spec
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # the default module object

    def exec_module(self, module: ModuleType) -> None:
        spec = module.__spec__
        assert spec is not None and spec.origin is not None
        relative = spec.origin.removeprefix(ORIGIN + "/")
        code = None
        if self._compiled is not None and isinstance(self._compiled.get(relative), bytes):
            try:
                code = marshal.loads(self._compiled[relative])
            except Exception:
                code = None
        if not isinstance(code, CodeType) or code.co_filename != spec.origin:
            code = _compile(self._files[relative], spec.origin)
        exec(code, module.__dict__)  # noqa: S102 - the template's code


def install(files: Mapping[str, bytes], compiled: bytes = b"") -> None:
    """Makes the bundle's modules importable in this process, ahead of every other finder (`compiled`: from `compile_bundle`)."""
    sys.meta_path.insert(0, BundleFinder(files, compiled))
