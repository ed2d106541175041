"""TensorFlow 1.x's fully scoped variable names for rnnrs weights.

rnnrs names a cell's weights as TensorFlow 1.x does inside the cell's own
variable scope (``kernel``, ``gates/kernel``, ``cell_0/kernel``); a TF 1.x
graph puts them under the scopes of the run function and of every cell and
wrapper on the way. :func:`tf_scoped_names` is the one place that rule
lives (``get_weights(scope=...)``, ``set_weights(..., scope=...)`` and the
TF 1.x checkpoint converter use it). The rule, as TensorFlow 1.15 builds the
names (``<scope>/`` omitted when ``scope`` is ``""``):

- a cell: ``<scope>/<cell scope>/<weight>``, the cell scope being the cell's
  ``name`` or TF's default for its class: ``basic_rnn_cell``,
  ``basic_lstm_cell``, ``lstm_cell`` (peepholes ``w_i_diag`` ..., projection
  ``projection/kernel``), ``gru_cell``; a ``GRUCell(reset_after=True)`` is
  TF's ``CudnnCompatibleGRUCell``: ``cudnn_compatible_gru_cell/gates/...``,
  ``candidate/input_projection/kernel|bias``, ``candidate/hidden_projection/kernel|bias``;
- ``MultiRNNCell``: ``<scope>/multi_rnn_cell/cell_<i>/<layer i's names>``;
- ``OutputProjectionWrapper``: ``<scope>/output_projection_wrapper/kernel``
  and ``.../bias``, the wrapped cell under ``<scope>/output_projection_wrapper/``;
- ``DropoutWrapper`` and ``ResidualWrapper`` add no scope.

The scope of ``dynamic_rnn`` and ``static_rnn`` is ``rnn`` by default (their
``scope=`` argument otherwise); ``bidirectional_dynamic_rnn``'s cells are under
``bidirectional_rnn/fw`` and ``bidirectional_rnn/bw``. A graph that creates
several cells of one class at one scope makes TensorFlow number them
(``basic_lstm_cell_1``): give such cells a ``name``.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from .cells import RNNCell, check_mapping, check_name
from .gru import CUDNN_NAMES, GRUCell
from .wrappers import DropoutWrapper, MultiRNNCell, OutputProjectionWrapper, ResidualWrapper

#: The rnnrs name -> the ``CudnnCompatibleGRUCell`` name of the reset-after GRU's candidate weights.
_CUDNN_BY_KEY = {key: tf_name for tf_name, key in CUDNN_NAMES.items()}


def check_scope(scope: Any) -> str:
    """A variable scope prefix, the one rule of every ``scope=`` argument:
    a TensorFlow scope name (letters, digits and ``_.-/>``, not starting
    with ``_``, ``-`` or ``/``; one trailing ``/`` dropped; no empty part,
    so ``"a//"`` and ``"a//b"`` are refused) or ``""`` for none.
    ``TypeError`` for a non-string, ``ValueError`` naming ``scope``
    otherwise."""
    if not isinstance(scope, str):
        raise TypeError(f"scope: expected a string such as 'rnn' (or '' for none), got {type(scope).__name__}")
    name = scope[:-1] if scope.endswith("/") else scope
    if name == "":
        return ""
    try:
        check_name(name, "scope")
        if name.endswith("/") or "//" in name:
            raise ValueError("an empty part")
    except ValueError:
        raise ValueError(
            "scope: expected a TensorFlow scope name (letters, digits and '_.-/>', not starting with '_', '-' or "
            f"'/', no empty part as in 'a//b'; one trailing '/' is dropped) or '' for none, got {scope!r}"
        ) from None
    return name


def tf_scoped_names(cell: RNNCell, scope: str = "rnn") -> dict[str, str]:
    """``{rnnrs weight name: TensorFlow 1.x variable name}`` for every weight
    of ``cell`` (built or not) under the variable scope ``scope`` (``"rnn"``,
    ``"bidirectional_rnn/fw"``, ``""`` for none); the rule is in this
    module's docstring. ``TypeError`` for a cell class it does not know."""
    if not isinstance(cell, RNNCell):
        raise TypeError(f"cell: expected an rnnrs cell (e.g. BasicRNNCell), got {type(cell).__name__}")
    return _names(cell, check_scope(scope))


def _names(cell: RNNCell, scope: str) -> dict[str, str]:
    if isinstance(cell, (DropoutWrapper, ResidualWrapper)):
        return _names(cell.cell, scope)
    default = cell.TF_SCOPE
    if isinstance(cell, GRUCell) and cell.reset_after:
        default = "cudnn_compatible_gru_cell"
    own = getattr(cell, "name", None) or default
    if own is None:
        raise TypeError(f"cell: expected a cell class with TensorFlow 1.x names, got {type(cell).__name__}")
    where = f"{scope}/{own}" if scope else own
    if isinstance(cell, MultiRNNCell):
        return {
            f"cell_{i}/{key}": name
            for i, layer in enumerate(cell.cells)
            for key, name in _names(layer, f"{where}/cell_{i}").items()
        }
    if isinstance(cell, OutputProjectionWrapper):
        return {
            **_names(cell.cell, where),
            cell.KERNEL: f"{where}/kernel",
            cell.BIAS: f"{where}/bias",
        }
    aliases = _CUDNN_BY_KEY if isinstance(cell, GRUCell) else {}
    return {key: f"{where}/{aliases.get(key, key)}" for key in cell._weight_shapes(0)}


def from_tf_names(cell: RNNCell, mapping: Mapping[str, Any], scope: str) -> dict[str, Any]:
    """``mapping`` keyed by TensorFlow 1.x names under ``scope`` re-keyed by
    rnnrs names; ``ValueError`` listing the expected names for any other."""
    check_mapping(mapping)
    by_tf_name = {tf_name: key for key, tf_name in tf_scoped_names(cell, scope).items()}
    unknown = sorted(name for name in mapping if name not in by_tf_name)
    if unknown:
        raise ValueError(
            f"mapping: expected TensorFlow names under scope {scope!r} among {sorted(by_tf_name)}, "
            f"got unknown {unknown}"
        )
    return {by_tf_name[name]: value for name, value in mapping.items()}


def tf_message(cell: RNNCell, scope: str, message: str) -> str:
    """An error message about rnnrs weight names rewritten to name the
    TensorFlow names the caller gave: every quoted rnnrs name
    (``mapping['gates/kernel']``, ``['output_projection/bias', ...]``)
    becomes its TensorFlow name under ``scope``
    (``mapping['rnn/gru_cell/gates/kernel']``)."""
    names = tf_scoped_names(cell, scope)
    return re.sub(r"'([^'\\]*)'", lambda m: repr(names[m.group(1)]) if m.group(1) in names else m.group(0), message)
