"""Derive `router/workflows/wrapper_node_schema.json` from kijai/ComfyUI-WanVideoWrapper's source, read statically:
`python -m hvr.tools.wrapper_schema --git-dir DIR [--commit SHA] [--check]`.

Core ComfyUI has no nodes for FantasyTalking, SkyReels-V2 diffusion forcing or LongCat-Video, so the builders of
`router/workflows/wrapper.py` use the wrapper's. No /object_info of a ComfyUI with the wrapper installed is at hand,
so this reads the wrapper's Python at a pinned commit (a bare git directory, `git show <commit>:<path>`) without
importing it: the modules `__init__.py` registers, each module's `NODE_CLASS_MAPPINGS`, and for each selected class
the dict literal its `INPUT_TYPES` returns (or, for a V3 node, the `io.Schema(...)` its `define_schema` returns),
its `RETURN_TYPES` and `OUTPUT_NODE`. Names are resolved through module-level assignments and relative imports. A
combo built from `folder_paths.get_filename_list("<folder>")` becomes a model-`folder` input as the core deriver
(`hvr/tools/node_schema.py`) writes it: literal values beside the list are its `options`, and GGUF folders are
dropped (hvr names no .gguf file). The output has the format of `node_schema.json` (same renderer), so one
`NodeSchema` reads both.

What a static read cannot see: inputs a node adds at run time (none of the selected classes does) and types ComfyUI
would coerce. The freshness test (tests/workflows/test_wrapper_graphs.py) rereads the pinned commit when a copy of
the repository is present and is skipped otherwise.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hvr.tools.node_schema import write_or_check
from router.workflows.schema import WRAPPER_SCHEMA_FILE

REPO = "kijai/ComfyUI-WanVideoWrapper"
# The last upstream (kijai) commit read, 2026-05-24T16:07:12+03:00 "Don't count .disabled as duplicate". The
# `fetch` of kijai/ComfyUI-WanVideoWrapper returned a 2025-03-04 snapshot without these families; the commit was
# read from the fork rookiestar28/ComfyUI-WanVideoWrapper, whose main branch holds it unchanged (its own commits
# come after it).
PINNED_COMMIT = "088128b224242e110d3906c6750e9a3a348a659b"
PINNED_DATE = "2026-05-24"
PACKAGE = "ComfyUI-WanVideoWrapper"
SOURCE = f"custom_nodes.{PACKAGE}"  # the python_module ComfyUI reports for a class of a custom node package
# The classes the builders use, and their close relatives (the other loaders, samplers and embeds of the same
# families), so a builder change mostly finds its class here already.
CLASSES = (
    # loading, text, image conditioning, decoding
    "WanVideoModelLoader", "WanVideoVAELoader", "WanVideoBlockSwap", "WanVideoLoraSelect", "WanVideoSetLoRAs",
    "LoadWanVideoT5TextEncoder", "WanVideoTextEncode", "WanVideoTextEncodeCached", "WanVideoTextEmbedBridge",
    "WanVideoClipVisionEncode", "WanVideoImageToVideoEncode", "WanVideoEmptyEmbeds", "WanVideoEncode",
    "WanVideoDecode",
    # samplers
    "WanVideoSampler", "WanVideoSamplerSettings", "WanVideoSamplerFromSettings", "WanVideoSamplerv2",
    "WanVideoSchedulerv2", "WanVideoDiffusionForcingSampler",
    # FantasyTalking
    "DownloadAndLoadWav2VecModel", "FantasyTalkingModelLoader", "FantasyTalkingWav2VecEmbeds",
    # LongCat-Avatar (its audio embeds are MultiTalk's)
    "Wav2VecModelLoader", "MultiTalkWav2VecEmbeds", "WanVideoLongCatAvatarExtendEmbeds",
    "LongCatAvatarWhisperEmbeds",
)
# comfy_api's io types, as the schema (and /object_info) names them.
V3_TYPES = {
    "Int": "INT", "Float": "FLOAT", "String": "STRING", "Boolean": "BOOLEAN", "Combo": "COMBO", "Image": "IMAGE",
    "Mask": "MASK", "Latent": "LATENT", "Conditioning": "CONDITIONING", "Audio": "AUDIO", "Video": "VIDEO",
    "Model": "MODEL", "Vae": "VAE", "Clip": "CLIP", "ClipVision": "CLIP_VISION", "Sigmas": "SIGMAS",
}


class DeriveError(ValueError):
    """The source has something this reader can't say as a literal; the message names the class and input."""


@dataclass(frozen=True)
class Folder:
    """The files of model folders (`folder_paths.get_filename_list`), with literal values listed beside them."""

    folders: tuple[str, ...]
    named: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Unknown:
    """A value that is no literal; `text` is its source, for the error."""

    text: str


class Source:
    """The wrapper's files at one commit of a bare git directory."""

    def __init__(self, git_dir: Path, commit: str) -> None:
        self.git_dir = git_dir
        self.commit = commit
        self._modules: dict[str, Module] = {}

    def read(self, path: str) -> str | None:
        done = subprocess.run(["git", f"--git-dir={self.git_dir}", "show", f"{self.commit}:{path}"],
                              capture_output=True, text=True, check=False)
        return done.stdout if done.returncode == 0 else None

    def commit_date(self) -> str:
        done = subprocess.run(["git", f"--git-dir={self.git_dir}", "log", "-1", "--format=%cI", self.commit],
                              capture_output=True, text=True, check=True)
        return done.stdout.strip()

    def module(self, dotted: str) -> Module | None:
        """A module of the package by its dotted path ("nodes", "multitalk.nodes"), or None if there is none."""
        if dotted not in self._modules:
            path = dotted.replace(".", "/")
            text = self.read(f"{path}.py")
            if text is None:
                text = self.read(f"{path}/__init__.py")
                path = f"{path}/__init__"
            if text is None:
                return None
            self._modules[dotted] = Module(self, dotted, f"{path}.py", ast.parse(text))
        return self._modules[dotted]


@dataclass
class Module:
    source: Source
    dotted: str
    path: str
    tree: ast.Module
    _names: dict[str, ast.expr] = field(default_factory=dict)
    _imports: dict[str, tuple[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        package = self.dotted.split(".")[:-1] if not self.path.endswith("__init__.py") else self.dotted.split(".")
        for node in self.tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                self._names[node.targets[0].id] = node.value
            elif isinstance(node, ast.ImportFrom) and node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
                for alias in node.names:
                    self._imports[alias.asname or alias.name] = (target, alias.name)

    def classes(self) -> dict[str, ast.ClassDef]:
        return {node.name: node for node in self.tree.body if isinstance(node, ast.ClassDef)}

    def mappings(self) -> dict[str, str]:
        """NODE_CLASS_MAPPINGS: node name -> class name (a dict literal of names, as every module here has)."""
        value = self._names.get("NODE_CLASS_MAPPINGS")
        if not isinstance(value, ast.Dict):
            return {}
        return {key.value: item.id for key, item in zip(value.keys, value.values, strict=True)
                if isinstance(key, ast.Constant) and isinstance(key.value, str) and isinstance(item, ast.Name)}

    def resolve(self, name: str) -> Any:
        """A module-level name as a literal (following relative imports), else Unknown."""
        if name in self._names:
            return self.evaluate(self._names[name])
        if name in self._imports:
            target, attribute = self._imports[name]
            module = self.source.module(target)
            if module is not None:
                return module.resolve(attribute)
        return Unknown(name)

    def find_class(self, name: str) -> tuple[Module, ast.ClassDef] | None:
        if name in self.classes():
            return self, self.classes()[name]
        if name in self._imports:
            target, attribute = self._imports[name]
            module = self.source.module(target)
            return module.find_class(attribute) if module is not None else None
        return None

    def evaluate(self, node: ast.expr, local: Mapping[str, ast.expr] | None = None) -> Any:
        """A literal expression's value; Folder for model-folder lists, Unknown for anything else."""
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.List | ast.Tuple):
            items = [self.evaluate(item, local) for item in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.Dict):
            result: dict[Any, Any] = {}
            for key, value in zip(node.keys, node.values, strict=True):
                if key is None:  # `**other`
                    merged = self.evaluate(value, local)
                    if not isinstance(merged, dict):
                        return Unknown(ast.unparse(node))
                    result |= merged
                    continue
                result[self.evaluate(key, local)] = self.evaluate(value, local)
            return result
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            operand = self.evaluate(node.operand, local)
            return -operand if isinstance(operand, int | float) else Unknown(ast.unparse(node))
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return _concat(self.evaluate(node.left, local), self.evaluate(node.right, local), ast.unparse(node))
        if isinstance(node, ast.Call) and _is_filename_list(node):
            folder = node.args[0]
            if isinstance(folder, ast.Constant) and isinstance(folder.value, str):
                return Folder((folder.value,))
        if isinstance(node, ast.Name):
            if local is not None and node.id in local:
                return self.evaluate(local[node.id], local)
            return self.resolve(node.id)
        return Unknown(ast.unparse(node))


def _is_filename_list(node: ast.Call) -> bool:
    func = node.func
    return (isinstance(func, ast.Attribute) and func.attr == "get_filename_list" and isinstance(func.value, ast.Name)
            and func.value.id == "folder_paths" and len(node.args) == 1)


def _concat(left: Any, right: Any, text: str) -> Any:
    if isinstance(left, list) and isinstance(right, list):
        return left + right
    if isinstance(left, Folder | list) and isinstance(right, Folder | list):
        folders = [*(left.folders if isinstance(left, Folder) else ()),
                   *(right.folders if isinstance(right, Folder) else ())]
        named = [*(left.named if isinstance(left, Folder) else left),
                 *(right.named if isinstance(right, Folder) else right)]
        return Folder(tuple(folders), tuple(named))
    if isinstance(left, str) and isinstance(right, str):
        return left + right
    return Unknown(text)


def _classmethod_return(cls: ast.ClassDef, name: str) -> tuple[ast.expr, dict[str, ast.expr]] | None:
    """What a method's last top-level `return` gives, with the method's simple local assignments."""
    for item in cls.body:
        if isinstance(item, ast.FunctionDef) and item.name == name:
            local: dict[str, ast.expr] = {}
            returned: ast.expr | None = None
            for statement in item.body:
                if isinstance(statement, ast.Assign) and len(statement.targets) == 1 and \
                        isinstance(statement.targets[0], ast.Name):
                    local[statement.targets[0].id] = statement.value
                elif isinstance(statement, ast.Return) and statement.value is not None:
                    returned = statement.value
            return (returned, local) if returned is not None else None
    return None


def _class_constant(module: Module, cls: ast.ClassDef, name: str) -> Any:
    for item in cls.body:
        if isinstance(item, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in item.targets):
            return module.evaluate(item.value)
    return None


def _with_bases(module: Module, cls: ast.ClassDef) -> Iterable[tuple[Module, ast.ClassDef]]:
    """The class, then its bases (found in this module or through its imports), nearest first."""
    yield module, cls
    for base in cls.bases:
        if isinstance(base, ast.Name):
            found = module.find_class(base.id)
            if found is not None:
                yield from _with_bases(*found)


# --- one class -------------------------------------------------------------------------------------------------


def class_entry(node_name: str, module: Module, cls: ast.ClassDef) -> dict[str, Any]:
    """The schema entry of one node class, in node_schema.json's format."""
    chain = list(_with_bases(module, cls))
    for owner_module, owner in chain:
        schema = _classmethod_return(owner, "define_schema")
        if schema is not None:
            return _v3_entry(node_name, owner_module, schema[0])
    entry: dict[str, Any] = {"source": SOURCE, "custom_node": PACKAGE}
    if any(_class_constant(m, c, "OUTPUT_NODE") is True for m, c in chain):
        entry["output_node"] = True
    declared = next(((m, found) for m, c in chain if (found := _classmethod_return(c, "INPUT_TYPES")) is not None),
                    None)
    if declared is None:
        raise DeriveError(f"{node_name}: no INPUT_TYPES")
    owner_module, (returned, local) = declared
    value = owner_module.evaluate(returned, local)
    if not isinstance(value, dict):
        raise DeriveError(f"{node_name}.INPUT_TYPES returns no dict literal: {ast.unparse(returned)[:80]}")
    entry["inputs"] = _inputs(node_name, value)
    outputs = next((value for m, c in chain if (value := _class_constant(m, c, "RETURN_TYPES")) is not None), None)
    if not isinstance(outputs, tuple | list):
        raise DeriveError(f"{node_name}: RETURN_TYPES is no tuple literal")
    entry["outputs"] = [_output_type(node_name, item) for item in outputs]
    return entry


def _output_type(node_name: str, item: Any) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, list):
        return "COMBO"  # a list of values is a combo output (ComfyUI sends the list itself in /object_info)
    raise DeriveError(f"{node_name}: an output type that is no literal ({item})")


def _inputs(node_name: str, declared: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    inputs: dict[str, dict[str, Any]] = {}
    for section in ("required", "optional"):
        specs = declared.get(section) or {}
        if not isinstance(specs, dict):
            raise DeriveError(f"{node_name}: INPUT_TYPES[{section!r}] is no dict literal")
        for name, spec in specs.items():
            if not isinstance(spec, tuple | list) or not spec:
                raise DeriveError(f"{node_name}.{name}: no (type, config) tuple")
            config = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            entry = _input(node_name, name, spec[0], config)
            if section == "optional":
                entry["required"] = False
            inputs[name] = entry
    return inputs


def _input(node_name: str, name: str, kind: Any, config: Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(kind, Folder):
        folders = [folder for folder in kind.folders if not folder.endswith("_gguf")]
        if len(folders) != 1:
            raise DeriveError(f"{node_name}.{name}: lists the files of {list(kind.folders)}; the schema names one "
                              f"folder")
        named = [value for value in kind.named if isinstance(value, str)]
        return {"type": "COMBO", "folder": folders[0]} | ({"options": named} if named else {})
    if isinstance(kind, list):
        if any(isinstance(value, Unknown) for value in kind):
            raise DeriveError(f"{node_name}.{name}: a combo value is no literal")
        return {"type": "COMBO", "options": list(kind)}
    if isinstance(kind, Unknown):
        raise DeriveError(f"{node_name}.{name}: its type is no literal ({kind.text})")
    if not isinstance(kind, str):
        raise DeriveError(f"{node_name}.{name}: its type is no string ({kind!r})")
    entry: dict[str, Any] = {"type": kind}
    if kind in ("INT", "FLOAT"):
        for bound in ("min", "max"):
            if bound in config:
                if not isinstance(config[bound], int | float) or isinstance(config[bound], bool):
                    raise DeriveError(f"{node_name}.{name}: {bound} is no number literal")
                entry[bound] = config[bound]
    return entry


def _v3_entry(node_name: str, module: Module, returned: ast.expr) -> dict[str, Any]:
    if not (isinstance(returned, ast.Call) and isinstance(returned.func, ast.Attribute)
            and returned.func.attr == "Schema"):
        raise DeriveError(f"{node_name}.define_schema returns no io.Schema(...)")
    kwargs = {keyword.arg: keyword.value for keyword in returned.keywords if keyword.arg}
    entry: dict[str, Any] = {"source": SOURCE, "custom_node": PACKAGE}
    output_node = kwargs.get("is_output_node")
    if output_node is not None and module.evaluate(output_node) is True:
        entry["output_node"] = True
    inputs: dict[str, dict[str, Any]] = {}
    for call in _calls(node_name, kwargs.get("inputs"), "Input"):
        kind = _v3_type(node_name, call)
        options = {k.arg: module.evaluate(k.value) for k in call.keywords if k.arg}
        args = [module.evaluate(arg) for arg in call.args]
        if not args or not isinstance(args[0], str):
            raise DeriveError(f"{node_name}: an input without a literal name")
        name = args[0]
        if kind == "COMBO":
            values = options.get("options", args[1] if len(args) > 1 else None)
            spec = _input(node_name, name, values, {})
        else:
            spec = _input(node_name, name, kind, options)
        if options.get("optional") is True:
            spec["required"] = False
        inputs[name] = spec
    entry["inputs"] = inputs
    entry["outputs"] = [_v3_type(node_name, call) for call in _calls(node_name, kwargs.get("outputs"), "Output")]
    return entry


def _calls(node_name: str, listed: ast.expr | None, method: str) -> list[ast.Call]:
    if listed is None:
        return []
    if not isinstance(listed, ast.List):
        raise DeriveError(f"{node_name}: io.Schema's {method.lower()}s are no list literal")
    calls = []
    for item in listed.elts:
        if not (isinstance(item, ast.Call) and isinstance(item.func, ast.Attribute) and item.func.attr == method):
            raise DeriveError(f"{node_name}: {ast.unparse(item)[:60]} is no io.<Type>.{method}(...)")
        calls.append(item)
    return calls


def _v3_type(node_name: str, call: ast.Call) -> str:
    """`io.Int.Input(...)` -> INT; `io.Custom("X").Input(...)` -> X."""
    owner = call.func.value if isinstance(call.func, ast.Attribute) else None
    if isinstance(owner, ast.Attribute) and owner.attr in V3_TYPES:
        return V3_TYPES[owner.attr]
    if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Attribute) and owner.func.attr == "Custom" \
            and owner.args and isinstance(owner.args[0], ast.Constant) and isinstance(owner.args[0].value, str):
        return owner.args[0].value
    raise DeriveError(f"{node_name}: no type this reader knows in {ast.unparse(call)[:60]} (add it to V3_TYPES)")


# --- the package -----------------------------------------------------------------------------------------------


def registered_modules(source: Source) -> list[str]:
    """The modules `__init__.py` registers (REQUIRED_MODULES and OPTIONAL_MODULES), as dotted paths."""
    init = source.module("__init__")
    if init is None:
        raise DeriveError(f"no __init__.py at {source.commit}")
    modules: list[str] = []
    for listing in ("REQUIRED_MODULES", "OPTIONAL_MODULES"):
        value = init.resolve(listing)
        if not isinstance(value, list):
            raise DeriveError(f"__init__.py: {listing} is no list literal")
        modules += [item[0].lstrip(".") for item in value if isinstance(item, tuple | list) and item]
    return modules


def derive(source: Source, classes: Iterable[str] = CLASSES) -> dict[str, Any]:
    found: dict[str, tuple[Module, ast.ClassDef]] = {}
    for dotted in registered_modules(source):
        module = source.module(dotted)
        if module is None:
            continue
        for node_name, class_name in module.mappings().items():
            located = module.find_class(class_name)
            if located is not None:
                found.setdefault(node_name, located)
    wanted = sorted(set(classes))
    missing = [name for name in wanted if name not in found]
    if missing:
        raise DeriveError(f"not registered at {source.commit[:8]}: {', '.join(missing)}")
    return {
        "$comment": [
            f"ComfyUI node schema of {REPO} (ComfyUI-WanVideoWrapper) at commit {source.commit} "
            f"({PINNED_DATE if source.commit == PINNED_COMMIT else source.commit_date()}): the classes the wrapper "
            "builders (router/workflows/wrapper.py) use and their close relatives.",
            "Derived by hvr/tools/wrapper_schema.py from the wrapper's source, read statically (INPUT_TYPES / "
            "define_schema, RETURN_TYPES, NODE_CLASS_MAPPINGS), not from a running server's /object_info. Do not "
            "edit: regenerate with `python -m hvr.tools.wrapper_schema --git-dir <bare clone>`.",
            "Same format as node_schema.json (its $comment explains the input kinds); `default_schema()` merges the "
            "two.",
        ],
        "nodes": {name: class_entry(name, *found[name]) for name in wanted},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hvr.tools.wrapper_schema", description=__doc__.split("\n")[0])
    parser.add_argument("--git-dir", type=Path, required=True,
                        help=f"a bare git directory of {REPO} (or a fork) holding --commit")
    parser.add_argument("--commit", default=PINNED_COMMIT, help="the commit to read (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=WRAPPER_SCHEMA_FILE, help="where to write (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if --out is not current")
    args = parser.parse_args(argv)
    source = Source(args.git_dir, args.commit)
    if source.read("__init__.py") is None:
        print(f"wrapper_schema: {args.git_dir} has no commit {args.commit}", file=sys.stderr)
        return 2
    try:
        schema = derive(source)
    except DeriveError as exc:
        print(f"wrapper_schema: {exc}", file=sys.stderr)
        return 2
    return write_or_check(schema, args.out, check=args.check, tool="hvr.tools.wrapper_schema")


if __name__ == "__main__":
    sys.exit(main())
