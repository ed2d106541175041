"""Model files: ``save`` and :func:`load_model`.

``save`` writes ONE ``.npz`` (readable by ``numpy.load``, no pickle)
holding the configuration as JSON text (entry ``__rnnrs_model__``), the
weights (``weights/<layer>/<weight>``) and the optimizer state
(``optimizer/<slot>/<layer>/<weight>``, ``optimizer/iterations``) and what
layers keep besides weights (``state/<layer>/<key>``: a ``Dropout``'s
random generator, so that training continues identically; a stateful
``RNN``'s kept state is not saved, as in Keras: a loaded model starts from
zero states). Every
model kind is saved this way: a :class:`~rnnrs.Sequential` (and the
ready-made models) as its list of layers, a functional :class:`~rnnrs.Model`
as its layers and graph (which layer each call used and which tensors it
read). Classes are rebuilt only from the registry of
:mod:`rnnrs.saving.registry`.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from typing import IO, Any, Callable, Mapping, Optional, Union

import numpy as np

from .._validate import positive_int
from ..optimizers import OPTIMIZERS, Optimizer
from ..schedules import schedule_from_config
from .registry import classes
from .serialize import (
    MAX_DEPTH,
    Archive,
    cell_from_config,
    construct,
    constructor_kwargs,
    registered_from_config,
    short,
)


def default_name(class_name: str) -> str:
    """``SequenceClassifier`` → ``sequence_classifier``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower()


FORMAT = "rnnrs.model"
FORMAT_VERSION = 1
CONFIG_KEY = "__rnnrs_model__"


def save_model(model: Any, path: Union[str, "os.PathLike[str]"]) -> None:
    """Writes ``model`` to ``path``: see :meth:`rnnrs.Model.save`."""
    target = checked_path(path)
    if os.path.isdir(target):
        raise ValueError(f"path: expected a file path to write the model to, got the directory {target!r}")
    folder = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"path: expected a file in an existing directory, got {target!r} (no {folder!r})")
    if not model.built:
        raise ValueError("save: expected a built model (call build(input_size) or fit it), got an unbuilt one")
    from .._version import __version__

    config = {"format": FORMAT, "format_version": FORMAT_VERSION, "rnnrs_version": __version__, **model.get_config()}
    arrays: dict[str, np.ndarray] = {CONFIG_KEY: np.array(json.dumps(config))}
    arrays.update({f"weights/{k}": v for k, v in model.get_weights().items()})
    if model.optimizer is not None:
        arrays.update({f"optimizer/{k}": v for k, v in model.optimizer.get_state().items()})
    arrays.update({f"state/{k}": v for k, v in model._layer_states().items()})
    broken = sorted(k for k, v in arrays.items() if v.dtype.kind == "f" and not np.isfinite(v).all())
    if broken:
        raise ValueError(f"save: expected finite weights and optimizer state, got NaN or inf in {broken}")
    write_atomically(target, lambda f: np.savez_compressed(f, **arrays))  # type: ignore[arg-type]


def write_atomically(path: str, write: Callable[[IO[bytes]], Any]) -> None:
    """Calls ``write`` on a temporary file in ``path``'s directory, then
    renames it to ``path``: a crash never leaves half a file there."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".rnnrs-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


#: Most members (arrays) a model file may hold.
MAX_MEMBERS = 100_000
#: Largest configuration member (the JSON text as a NumPy unicode array), in bytes.
MAX_CONFIG_BYTES = 4 << 20
#: Deepest JSON nesting read: three levels per nested cell (a MultiRNNCell's
#: ``{"config": {"cells": [...]}}``) and the model's own few.
MAX_JSON_DEPTH = 3 * MAX_DEPTH + 16
#: The default budget of ``load_model``: the arrays of a file of ``n`` bytes
#: may declare at most ``BUDGET_BASE + BUDGET_PER_BYTE * n`` bytes uncompressed.
BUDGET_BASE = 16 << 20
BUDGET_PER_BYTE = 8

_WHAT = "path: expected an rnnrs model file (an .npz written by Model.save)"


def checked_path(path: Any) -> str:
    """``path`` (a str or ``os.PathLike`` of str, not empty) as a string
    path; ``TypeError`` / ``ValueError`` naming ``path`` otherwise."""
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a str or os.PathLike file path, got {type(path).__name__}")
    target = os.fspath(path)
    if not isinstance(target, str):
        raise TypeError(f"path: expected a str or os.PathLike file path, got one giving {type(target).__name__}")
    if not target:
        raise ValueError("path: expected a file path, got an empty string")
    return target


def load_model(path: Union[str, "os.PathLike[str]"], *, max_bytes: Optional[int] = None) -> Any:
    """Reads a model written by ``save``: its class, layers, weights, loss,
    metrics and optimizer (with its state, so training can resume).

    The file is not trusted. What is read, in this order, each step before
    the next:

    1. The zip directory: only ``.npy`` members, uniquely named, stored or
       deflated (what NumPy writes), unencrypted; only the configuration
       (``__rnnrs_model__``), ``weights/...`` and ``optimizer/...``; the sum
       of the members' declared uncompressed sizes within the budget (below).
       Nothing is decompressed yet.
    2. The configuration: a JSON text of at most 4 MiB without NaN or
       infinities; the format and its version; classes only from the fixed
       lists of models, layers, optimizers, learning-rate schedules
       (``rnnrs.schedules.SCHEDULES``) and the package's public cell classes
       (never any other name of the package); cells nested at most 64
       levels; every constructor argument a number, string, bool, None or a
       flat list of them (an optimizer's ``learning_rate`` may instead be a
       schedule's ``{"class_name", "config"}`` of such arguments), checked by
       the constructor. No code from the file
       runs and nothing is unpickled.
    3. Each array's ``.npy`` header (its first kilobytes only): a float array
       of the model's float size (any byte order) whose shape is exactly the
       one the configuration implies (so a file declaring ``input_size=10**7``
       is refused before any weight exists), and whose member declares exactly
       the header plus that many bytes; optimizer slots shaped like their
       weights, the step counter an integer scalar.
    4. The arrays (without pickle): a damaged stream or checksum is refused;
       NaN or infinite weights or optimizer slots are refused (``save``
       refuses to write them).

    Memory: the model is built from the stored arrays (never randomly
    initialised first), so rejecting a file costs at most the budget plus
    what the zip directory takes; the budget is 16 MiB plus 8 times the
    file's size by default (a deflated ``.npz`` of trained float weights
    expands about 1.1 times), so a small file that would decompress to
    gigabytes is refused before anything is decompressed.

    Args:
        path: the file (any name; ``save`` writes exactly there).
        max_bytes: the budget in bytes for the arrays' total uncompressed
            size, for a file you trust that compresses unusually well (e.g.
            mostly zeros); None (default): 16 MiB + 8 × the file's size.

    Raises:
        FileNotFoundError / PermissionError: the file cannot be opened.
        ValueError: the file is not a valid rnnrs model (the message starts
            with ``path:`` and says which member or configuration entry is
            wrong and how), or it exceeds the budget.
        TypeError: ``path`` or ``max_bytes`` of the wrong type.
    """
    target = checked_path(path)
    if max_bytes is not None:
        max_bytes = positive_int("max_bytes", max_bytes)
    if os.path.isdir(target):
        raise ValueError(f"{_WHAT}, got {target!r}, which is a directory")
    with open(target, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        budget = BUDGET_BASE + BUDGET_PER_BYTE * size if max_bytes is None else max_bytes
        try:
            return _read_model(f, budget, max_bytes is None)
        except ValueError as e:
            raise ValueError(f"{_WHAT}, got {target!r}: {e}") from None
        except (MemoryError, RecursionError):
            raise
        except Exception as e:  # the file is untrusted: no other exception type escapes
            raise ValueError(f"{_WHAT}, got {target!r}, which cannot be read ({type(e).__name__}: {e})") from e


def _read_model(f: Any, budget: int, default_budget: bool) -> Any:

    archive = Archive(f, MAX_MEMBERS)
    try:
        members = archive.members
        if CONFIG_KEY not in members:
            raise ValueError(
                f"an .npz archive without an rnnrs model configuration ({CONFIG_KEY!r}), "
                f"got members {short(sorted(members)[:8])}"
            )
        stray = sorted(k for k in members if k != CONFIG_KEY and not k.startswith(("weights/", "optimizer/", "state/")))
        if stray:
            raise ValueError(
                f"members {CONFIG_KEY!r}, 'weights/...', 'optimizer/...' and 'state/...', got {short(stray)}"
            )
        total = sum(archive.size(k) for k in members)
        if total > budget:
            how = (
                f"{BUDGET_BASE >> 20} MiB + {BUDGET_PER_BYTE} x the file's size; pass max_bytes= for a file you trust"
                if default_budget
                else "max_bytes"
            )
            raise ValueError(
                f"arrays of at most {budget} bytes uncompressed ({how}), got members declaring {total} bytes"
            )
        config = _read_config(archive)
        cls = _model_class(config)
        compiled = _compiled_from_config(config)
        optimizer = None if compiled is None else compiled[0]
        if hasattr(cls, "_from_layers"):  # a stack of layers (Sequential and the ready-made models)
            model, input_size = _sequential_from_config(cls, config)
            weights, state = _read_arrays(archive, model.dtype, _weight_shapes(model, input_size), optimizer)
            if state and optimizer is None:
                raise ValueError(
                    f"optimizer state only for a compiled model, got {short(sorted(state))} without 'compile'"
                )
            model.set_weights(weights)
            if not model.built:
                unbuilt = [layer.name for layer in model.layers if not layer.built]
                raise ValueError(f"weights for every layer, got none or too few for {unbuilt}")
            model.build(input_size)
        else:  # a graph (Model)
            inputs, layers = _graph_parts(config)
            weights, state = _read_arrays(archive, _graph_dtype(inputs, layers), None, optimizer)
            if state and optimizer is None:
                raise ValueError(
                    f"optimizer state only for a compiled model, got {short(sorted(state))} without 'compile'"
                )
            model = _graph_from_config(cls, config, inputs, layers, weights)
        names = set(model.get_weights())
        if names != set(weights):
            raise ValueError(f"weights {short(sorted(names))}, got {short(sorted(weights))}")
        layer_states = _read_layer_states(archive)
        try:
            model._set_layer_states(layer_states)
        except (TypeError, ValueError) as e:
            raise ValueError(f"state/...: {e}") from None
        if compiled is None:
            model.optimizer, model.loss, model.metrics = None, None, []
        else:
            optimizer, loss, metrics, loss_weights = compiled
            if state:
                optimizer.set_state(state)
            try:
                model.compile(optimizer, loss, metrics, loss_weights)
            except (TypeError, ValueError) as e:
                raise ValueError(f"compile: {e}") from None
        return model
    finally:
        archive.close()


def _json_depth(text: str) -> int:
    """How deeply ``[`` and ``{`` nest in JSON text (outside strings), without recursion."""
    skeleton = re.sub(r'"(?:[^"\\]|\\.)*"', "", text).encode("utf-8", "replace")
    codes = np.frombuffer(skeleton, dtype=np.uint8)
    steps = np.isin(codes, (ord("["), ord("{"))).astype(np.int64) - np.isin(codes, (ord("]"), ord("}")))
    return int(np.cumsum(steps).max(initial=0))


def _no_constant(name: str) -> Any:
    raise ValueError(f"configuration: expected finite numbers, got {name}")


def _read_config(archive: Any) -> dict[str, Any]:
    head = archive.header(CONFIG_KEY)
    if head.dtype.kind != "U" or head.shape != ():
        raise ValueError(
            f"{CONFIG_KEY}: expected the configuration as JSON text (a 0-d unicode array), "
            f"got a {head.dtype} array of shape {head.shape}"
        )
    if head.nbytes > MAX_CONFIG_BYTES:
        raise ValueError(f"{CONFIG_KEY}: expected at most {MAX_CONFIG_BYTES} bytes of configuration, got {head.nbytes}")
    text = str(archive.read(CONFIG_KEY)[()])
    depth = _json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise ValueError(
            f"configuration: expected JSON nested at most {MAX_JSON_DEPTH} levels (cells at most {MAX_DEPTH}), "
            f"got {depth} levels"
        )
    try:
        config = json.loads(text, parse_constant=_no_constant)
    except ValueError as e:
        raise ValueError(f"configuration: expected valid JSON, got {e}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        got = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise ValueError(f"configuration: expected format {FORMAT!r}, got {short(got)}")
    version = config.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise ValueError(
            f"format_version: expected an rnnrs model file of format version 1 to {FORMAT_VERSION}, got version "
            f"{version!r:.40} (written by rnnrs {str(config.get('rnnrs_version'))[:40]}; upgrade rnnrs)"
        )
    return config


def _model_class(config: Mapping[str, Any]) -> Any:
    models = classes("model")
    class_name = config.get("class_name")
    cls = models.get(class_name) if isinstance(class_name, str) else None
    if cls is None:
        raise ValueError(
            f"class_name: expected a model class among {sorted(models)}, got {short(config.get('class_name'))}"
        )
    name = config.get("name")
    if name is not None and not isinstance(name, str):
        raise ValueError(f"name: expected a string or None, got {short(name)}")
    return cls


def _layer_from_config(config: Any, where: str, depth: int = 0) -> Any:
    """The (unbuilt) layer a ``{"class_name", "config"}`` describes: a
    registered layer class; a cell under ``"cell"``, layers under ``"layer"``
    and ``"backward_layer"`` (wrappers), the rest constructor arguments."""
    layers = classes("layer")
    if depth >= MAX_DEPTH:
        raise ValueError(f"{where}: expected layers nested at most {MAX_DEPTH} levels deep, got deeper nesting")
    if not isinstance(config, Mapping) or config.get("class_name") not in layers:
        raise ValueError(f"{where}: expected a layer among {sorted(layers)}, got {short(config)}")
    raw = config.get("config", {})
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}.config: expected a mapping of constructor arguments, got {short(raw)}")
    nested: dict[str, Any] = {}
    plain: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "cell":
            nested[key] = cell_from_config(value, f"{where}.config.cell")
        elif key in ("layer", "backward_layer") and value is not None:
            nested[key] = _layer_from_config(value, f"{where}.config.{key}", depth + 1)
        else:
            plain[key] = value
    kwargs = constructor_kwargs(plain, where)
    kwargs.update(nested)
    return construct(layers[config["class_name"]], kwargs, where)


def _sequential_from_config(cls: Any, config: Mapping[str, Any]) -> tuple[Any, Optional[int]]:
    """The unbuilt stack of layers and its input size."""
    raw_layers = config.get("layers")
    if not isinstance(raw_layers, list) or not raw_layers or len(raw_layers) > MAX_MEMBERS:
        raise ValueError(f"layers: expected a non-empty list of layer configurations, got {short(raw_layers)}")
    layers = [_layer_from_config(c, f"layers[{i}]") for i, c in enumerate(raw_layers)]
    model = cls._from_layers(layers, config.get("name") or default_name(cls.__name__))
    input_size = config.get("input_size")
    if model._takes_ids():
        if input_size is not None:
            raise ValueError(f"input_size: expected None for a model reading ids (Embedding), got {short(input_size)}")
    elif isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 1:
        raise ValueError(f"input_size: expected an integer >= 1, got {short(input_size)}")
    return model, input_size


def _graph_parts(config: Mapping[str, Any]) -> tuple[list[Any], list[Any]]:
    """A graph's input layers and its (unbuilt) layers."""
    from ..layers import InputLayer

    raw_inputs, raw_layers = config.get("inputs"), config.get("layers")
    if not isinstance(raw_inputs, list) or not raw_inputs or len(raw_inputs) > MAX_MEMBERS:
        raise ValueError(f"inputs: expected a non-empty list of input configurations, got {short(raw_inputs)}")
    if not isinstance(raw_layers, list) or len(raw_layers) > MAX_MEMBERS:
        raise ValueError(f"layers: expected a list of layer configurations, got {short(raw_layers)}")
    inputs = [
        construct(InputLayer, constructor_kwargs(c, f"inputs[{i}]"), f"inputs[{i}]") for i, c in enumerate(raw_inputs)
    ]
    layers = [_layer_from_config(c, f"layers[{i}]") for i, c in enumerate(raw_layers)]
    names = [layer.name for layer in inputs + layers]
    if len(set(names)) != len(names):
        raise ValueError(f"layers: expected distinct names for the inputs and layers, got {short(names)}")
    return inputs, layers


def _graph_dtype(inputs: list[Any], layers: list[Any]) -> np.dtype[Any]:
    for layer in inputs + layers:
        dtype = layer.dtype
        if dtype is not None and dtype.kind == "f":
            found: np.dtype[Any] = np.dtype(dtype)
            return found
    return np.dtype(np.float32)


def _graph_from_config(
    cls: Any, config: Mapping[str, Any], inputs: list[Any], layers: list[Any], weights: Mapping[str, np.ndarray]
) -> Any:
    """The graph rebuilt from its configuration, every layer built from the
    stored weights first (so replaying the calls allocates nothing new)."""
    from ..layers import Node, SymbolicTensor

    by_layer: dict[str, dict[str, np.ndarray]] = {}
    names = {layer.name: layer for layer in layers}
    for key, value in weights.items():
        prefix, _, rest = key.partition("/")
        if prefix not in names or not rest:
            raise ValueError(
                f"weights: expected names '<layer>/<weight>' with layer in {short(sorted(names))}, got {key!r}"
            )
        by_layer.setdefault(prefix, {})[rest] = value
    for prefix, part in by_layer.items():
        try:
            names[prefix].set_weights(part)
        except (TypeError, ValueError) as e:
            raise ValueError(f"weights/{prefix}: {e}") from None
    unbuilt = [layer.name for layer in layers if not layer.built]
    if unbuilt:
        raise ValueError(f"weights for every layer, got none or too few for {unbuilt}")
    sources: list[Any] = []
    for layer in inputs:
        node = Node(layer, [])
        source = SymbolicTensor(layer.spec, node, 0)
        node.outputs = [source]
        sources.append(source)
    made: list[list[Any]] = []
    raw_nodes = config.get("nodes")
    if not isinstance(raw_nodes, list) or len(raw_nodes) > MAX_MEMBERS:
        raise ValueError(f"nodes: expected a list of layer calls, got {short(raw_nodes)}")

    def find(ref: Any, where: str) -> Any:
        if (
            isinstance(ref, list)
            and len(ref) == 3
            and ref[0] in ("input", "node")
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in ref[1:])
        ):
            pool = sources if ref[0] == "input" else made
            if ref[1] < len(pool):
                outs = [pool[ref[1]]] if ref[0] == "input" else pool[ref[1]]
                if ref[2] < len(outs):
                    return outs[ref[2]]
        raise ValueError(
            f"{where}: expected ['input', i, 0] or ['node', j, k] naming an earlier tensor, got {short(ref)}"
        )

    for j, raw in enumerate(raw_nodes):
        where = f"nodes[{j}]"
        if not isinstance(raw, Mapping) or not isinstance(raw.get("inputs"), list):
            raise ValueError(f"{where}: expected {{'layer': index, 'inputs': [...]}}, got {short(raw)}")
        index = raw.get("layer")
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(layers):
            raise ValueError(f"{where}.layer: expected a layer index below {len(layers)}, got {short(index)}")
        ins = [find(r, f"{where}.inputs[{i}]") for i, r in enumerate(raw["inputs"])]
        if not ins:
            raise ValueError(f"{where}.inputs: expected at least one input, got none")
        try:
            out = layers[index](ins if len(ins) > 1 else ins[0])
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: {e}") from None
        made.append(out if isinstance(out, list) else [out])
    raw_outputs = config.get("outputs")
    if not isinstance(raw_outputs, list) or not raw_outputs:
        raise ValueError(f"outputs: expected a non-empty list of tensor references, got {short(raw_outputs)}")
    outputs = [find(r, f"outputs[{i}]") for i, r in enumerate(raw_outputs)]
    try:
        model = cls(sources, outputs, name=config.get("name"))
    except (TypeError, ValueError) as e:
        raise ValueError(f"graph: {e}") from None
    if [layer.name for layer in model.layers] != [layer.name for layer in layers]:
        raise ValueError("layers: expected every layer to be used by the graph, in order, got unused or reordered ones")
    return model


def _compiled_from_config(config: Mapping[str, Any]) -> Optional[tuple[Optimizer, Any, list[Any], Any]]:
    """``(optimizer, loss, metrics, loss_weights)`` (None when not compiled)."""
    from ..trainers.compile_utils import LOSS_CLASSES, METRIC_CLASSES

    compiled = config.get("compile")
    if compiled is None:
        return None
    if not isinstance(compiled, Mapping):
        raise ValueError(f"compile: expected a mapping (loss, metrics, optimizer) or None, got {short(compiled)}")
    loss, metrics, opt = compiled.get("loss"), compiled.get("metrics"), compiled.get("optimizer")

    def one_loss(value: Any, where: str) -> Any:
        if isinstance(value, Mapping):
            return registered_from_config(value, LOSS_CLASSES, where)
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a loss name or a loss object's config, got {short(value)}")
        return value

    if isinstance(loss, list):
        loss = [one_loss(v, f"compile.loss[{i}]") for i, v in enumerate(loss)]
    else:
        loss = one_loss(loss, "compile.loss")
    if metrics is None:
        metrics = []
    if not isinstance(metrics, list) or not all(isinstance(m, (str, Mapping)) for m in metrics):
        raise ValueError(f"compile.metrics: expected a list of metric names or configs, got {short(metrics)}")
    metrics = [
        m if isinstance(m, str) else registered_from_config(m, METRIC_CLASSES, f"compile.metrics[{i}]")
        for i, m in enumerate(metrics)
    ]
    loss_weights = compiled.get("loss_weights")
    if loss_weights is not None and (
        not isinstance(loss_weights, list) or not all(isinstance(w, (int, float)) for w in loss_weights)
    ):
        raise ValueError(f"compile.loss_weights: expected None or a list of numbers, got {short(loss_weights)}")
    if (
        not isinstance(opt, Mapping)
        or not isinstance(opt.get("class_name"), str)
        or opt["class_name"] not in OPTIMIZERS
    ):
        raise ValueError(f"compile.optimizer: expected a class among {sorted(OPTIMIZERS)}, got {short(opt)}")
    raw_opt = opt.get("config", {})
    schedule = None
    if isinstance(raw_opt, Mapping) and isinstance(raw_opt.get("learning_rate"), Mapping):
        schedule = schedule_from_config(raw_opt["learning_rate"], "compile.optimizer.config.learning_rate")
        raw_opt = {k: v for k, v in raw_opt.items() if k != "learning_rate"}
    kwargs = constructor_kwargs(raw_opt, "compile.optimizer.config")
    if schedule is not None:
        kwargs["learning_rate"] = schedule
    optimizer: Optimizer = construct(OPTIMIZERS[opt["class_name"]], kwargs, "compile.optimizer")
    return optimizer, loss, metrics, loss_weights


def _weight_shapes(model: Any, input_size: Optional[int]) -> Optional[dict[str, tuple[int, ...]]]:
    """Every weight's shape a stack of layers' configuration implies, computed
    without allocating (None when a layer's input shape cannot be known
    before building, e.g. after a layer of unknown output size: checked
    after)."""
    from ..layers import IDS, Dense, Embedding, Spec
    from ..layers.recurrent import RNN

    shapes: dict[str, tuple[int, ...]] = {}
    spec = Spec((None, None), IDS) if model._takes_ids() else Spec((None, None, input_size), model.dtype)
    try:
        for layer in model.layers:
            if not isinstance(layer, (Embedding, Dense, RNN)):
                return None
            own = layer.weight_shapes([spec])
            shapes.update({f"{layer.name}/{k}": tuple(int(n) for n in s) for k, s in own.items()})
            size = layer.output_size()
            if isinstance(layer, RNN) and not layer.return_sequences:
                spec = Spec((None, size), model.dtype)
            else:
                spec = Spec(
                    spec.shape[:-1] + (size,) if not isinstance(layer, Embedding) else (None, None, size), model.dtype
                )
    except NotImplementedError:
        return None
    return shapes


def _read_arrays(
    archive: Any,
    dtype: np.dtype[Any],
    expected: Optional[Mapping[str, tuple[int, ...]]],
    optimizer: Optional[Optimizer],
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Checks every array's header against the configuration (``expected``
    shapes when known), then reads them."""
    stored = {k[len("weights/") :]: k for k in archive.members if k.startswith("weights/")}
    if expected is not None and set(stored) != set(expected):
        missing, extra = sorted(set(expected) - set(stored)), sorted(set(stored) - set(expected))
        raise ValueError(f"weights {short(sorted(expected))}, got {short(missing)} missing and {short(extra)} unknown")
    shapes: dict[str, tuple[int, ...]] = {}
    for name, key in stored.items():
        head = archive.header(key)
        if head.dtype.kind != "f" or head.dtype.itemsize != dtype.itemsize or head.dtype.fields is not None:
            raise ValueError(f"{key}: expected a {dtype.name} array (the model's dtype), got dtype {head.dtype}")
        if expected is not None and head.shape != expected[name]:
            raise ValueError(f"{key}: expected shape {expected[name]} (from the configuration), got {head.shape}")
        shapes[name] = head.shape
    slots = () if optimizer is None else optimizer.slot_names
    state_keys = {k[len("optimizer/") :]: k for k in archive.members if k.startswith("optimizer/")}
    for name, key in state_keys.items():
        head = archive.header(key)
        if name == "iterations":
            if head.dtype.kind not in "iu" or head.dtype.itemsize > 8 or head.shape != ():
                raise ValueError(f"{key}: expected an integer scalar, got a {head.dtype} array of shape {head.shape}")
            continue
        slot, _, weight = name.partition("/")
        if slot not in slots or weight not in shapes:
            raise ValueError(
                f"{key}: expected 'optimizer/<slot>/<weight>' with slot in {list(slots)} and a stored weight, "
                f"got an unknown entry"
            )
        if head.dtype.kind != "f" or head.dtype.itemsize != dtype.itemsize or head.dtype.fields is not None:
            raise ValueError(f"{key}: expected a {dtype.name} array (the model's dtype), got dtype {head.dtype}")
        if head.shape != shapes[weight]:
            raise ValueError(f"{key}: expected shape {shapes[weight]} (its weight's), got {head.shape}")
    if state_keys and "iterations" not in state_keys:
        raise ValueError("optimizer/iterations: expected the optimizer's step counter with its state, got none")
    weights = {name: _finite(key, archive.read(key)) for name, key in stored.items()}
    state = {name: _finite(key, archive.read(key)) for name, key in state_keys.items()}
    return weights, state


#: Most entries one layer's saved state may hold (a generator's position is 6).
MAX_STATE_SIZE = 1024


def _read_layer_states(archive: Any) -> dict[str, np.ndarray]:
    """The ``state/<layer>/<key>`` members: small unsigned 64-bit arrays
    (checked from their headers first; the layers check their values)."""
    states = {}
    for key in archive.members:
        if not key.startswith("state/"):
            continue
        head = archive.header(key)
        if head.dtype.kind != "u" or head.dtype.itemsize != 8 or head.dtype.fields is not None:
            raise ValueError(f"{key}: expected a uint64 array (a layer's state), got dtype {head.dtype}")
        if int(np.prod(head.shape)) > MAX_STATE_SIZE:
            raise ValueError(f"{key}: expected at most {MAX_STATE_SIZE} entries, got shape {head.shape}")
        arr = archive.read(key)
        states[key[len("state/") :]] = arr.astype(np.uint64) if not arr.dtype.isnative else arr
    return states


def _finite(key: str, arr: np.ndarray) -> np.ndarray:
    """``arr`` in native byte order; ``ValueError`` for NaN or inf."""
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{key}: expected finite values, got NaN or inf (models with such weights are refused)")
    return arr
