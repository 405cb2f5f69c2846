"""Plain data between the grader and the process that runs a student's answers.

Values cross as JSON: numbers, strings, lists; tensors and arrays as raw bytes with their
dtype and shape (read back with ``torch.frombuffer``/``numpy.frombuffer``, never pickle);
sympy expressions as ``srepr`` text, read back by :func:`parse_sympy`, which builds only
whitelisted sympy classes and refuses numbers too large to compute. Anything else becomes
an :class:`Opaque` stand-in that only knows its type's name, so a check that expects a
tensor says "got FakeTensor" and nothing of the object's behaviour survives the trip.

This file imports nothing from the course: the sandboxed process loads it beside
``answer_host.py`` without seeing the rest of ``exercises/``.
"""

from __future__ import annotations

import ast
import base64
import builtins
import math
import re
import sys

MAX_TEXT = 2000          # characters of any text that comes from an answer
MAX_SREPR = 20_000       # characters of a sympy expression
MAX_NODES = 5_000        # syntax nodes of a sympy expression
MAX_POWER_BITS = 100_000  # bits a number built by Pow may reach
MAX_EXPONENT = 1_000     # |n| of an integer exponent
MAX_DEPTH = 40           # nesting of lists, tuples and dicts
TENSOR_DTYPES = ("bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16",
                 "float32", "float64", "complex64", "complex128")
ARRAY_DTYPES = ("bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32",
                "int64", "float16", "float32", "float64", "complex64", "complex128")
SYMPY_CLASSES = ("Symbol", "Integer", "Rational", "Float", "Add", "Mul", "Pow", "exp", "log",
                 "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "Abs",
                 "sign", "Max", "Min", "floor", "ceiling", "Tuple", "Eq", "Lt", "Le", "Gt",
                 "Ge", "Ne", "ImmutableDenseMatrix", "MutableDenseMatrix")
SYMPY_ATOMS = ("pi", "E", "I", "oo", "zoo", "nan", "true", "false")
SYMPY_KEYWORDS = frozenset({
    "precision", "commutative", "real", "positive", "negative", "nonnegative", "nonpositive",
    "nonzero", "zero", "integer", "rational", "irrational", "finite", "infinite", "complex",
    "extended_real", "extended_positive", "extended_negative", "extended_nonnegative",
    "extended_nonpositive", "extended_nonzero", "even", "odd", "prime", "composite",
    "imaginary", "algebraic", "transcendental", "hermitian", "antihermitian", "noninteger"})
# Exceptions an answer's error may be rebuilt as (the first of its classes found here).
EXCEPTIONS = ("NotImplementedError", "RecursionError", "ZeroDivisionError", "OverflowError",
              "FloatingPointError", "ArithmeticError", "IndexError", "KeyError",
              "LookupError", "UnicodeError", "ValueError", "TypeError", "AttributeError",
              "NameError", "AssertionError", "MemoryError", "OSError", "StopIteration",
              "RuntimeError", "Exception")


class WireError(ValueError):
    """A message that does not hold the data it should, or holds too much."""


class Opaque:
    """A stand-in for a value that cannot cross as data: only its type's name and a text."""

    text = ""

    def __repr__(self) -> str:
        return self.text or f"<{type(self).__name__} object>"


def clip(text, limit: int = MAX_TEXT) -> str:
    """``text`` as a string of at most ``limit`` characters (an answer's text is never
    trusted to be short)."""
    text = text if isinstance(text, str) else str(text)
    if len(text) <= limit:
        return text
    return text[:limit] + f" ... [{len(text) - limit:,} more characters cut]"


def opaque(type_name, text: str = "") -> Opaque:
    name = re.sub(r"\W", "_", clip(type_name, 60)) or "Unknown"
    if name[0].isdigit():
        name = "_" + name
    cls = type(name, (Opaque,), {"__module__": "answer", "__qualname__": name})
    value = cls()
    value.text = clip(text, 200)
    return value


# --- encoding ---------------------------------------------------------------------------

def _torch():
    return sys.modules.get("torch")


def encode(value, callables: dict | None = None, depth: int = 0):
    """``value`` as JSON-ready data. ``callables``: when given, a callable becomes a handle
    stored in it (the parent's side: the check's own functions); otherwise it is opaque."""
    if depth > MAX_DEPTH:
        raise WireError("the value is nested too deeply")
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if kind is float:
        return value if math.isfinite(value) else {"t": "float", "v": repr(value)}
    if kind is complex:
        return {"t": "complex", "v": [encode(value.real), encode(value.imag)]}
    if kind in (list, tuple):
        return {"t": kind.__name__, "v": [encode(v, callables, depth + 1) for v in value]}
    if kind is dict:
        return {"t": "dict", "v": [[encode(k, callables, depth + 1),
                                    encode(v, callables, depth + 1)] for k, v in value.items()]}
    torch = _torch()
    if torch is not None:
        if kind in (torch.Tensor, torch.nn.Parameter):
            return _encode_tensor(value, torch)
        if kind is torch.Size:
            return {"t": "size", "v": [int(v) for v in value]}
        if kind is torch.dtype:
            return {"t": "dtype", "v": str(value).removeprefix("torch.")}
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        if kind is numpy.ndarray and value.dtype.name in ARRAY_DTYPES:
            return {"t": "ndarray", "dtype": value.dtype.name, "shape": list(value.shape),
                    "data": base64.b64encode(numpy.ascontiguousarray(value).tobytes()).decode()}
        if isinstance(value, numpy.generic) and value.dtype.name in ARRAY_DTYPES:
            return {"t": "npscalar", "dtype": value.dtype.name, "v": encode(value.item())}
    sympy = sys.modules.get("sympy")
    if sympy is not None and isinstance(value, sympy.Basic) and type(value).__module__.startswith(
            "sympy."):
        return {"t": "sympy", "v": sympy.srepr(value)}
    if callables is not None and callable(value) and not isinstance(value, type):
        handle = len(callables)
        callables[handle] = value
        return {"t": "callable", "handle": handle,
                "name": clip(getattr(value, "__qualname__", kind.__name__), 100)}
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001  (an answer's __repr__ may raise anything)
        text = ""
    return {"t": "opaque", "type": clip(getattr(kind, "__name__", "object"), 60),
            "repr": clip(text, 200)}


def _encode_tensor(value, torch) -> dict:
    t = value.detach().cpu()
    name = str(t.dtype).removeprefix("torch.")
    if name not in TENSOR_DTYPES or t.layout != torch.strided:
        return {"t": "opaque", "type": "Tensor", "repr": f"a {name} tensor that is not plain"}
    t = t.contiguous().clone()
    raw = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes()
    return {"t": "tensor", "dtype": name, "shape": list(t.shape),
            "data": base64.b64encode(raw).decode(), "grad": bool(value.requires_grad)}


# --- decoding ---------------------------------------------------------------------------

def decode(data, callables=None, grad: bool = False, depth: int = 0):
    """The value ``data`` encodes; every field is checked. ``callables(handle, name)`` makes
    the stand-in for a callable; ``grad``: give tensors marked so ``requires_grad``."""
    if depth > MAX_DEPTH:
        raise WireError("the value is nested too deeply")
    if data is None or type(data) in (bool, int, float, str):
        if type(data) is str and len(data) > 10 * MAX_TEXT:
            raise WireError("a text is too long")
        return data
    if type(data) is not dict or type(data.get("t")) is not str:
        raise WireError("an unreadable value")
    kind = data["t"]
    if kind in ("list", "tuple"):
        items = [decode(v, callables, grad, depth + 1) for v in _list(data["v"])]
        return items if kind == "list" else tuple(items)
    if kind == "dict":
        pairs = [_list(p) for p in _list(data["v"])]
        if any(len(p) != 2 for p in pairs):
            raise WireError("an unreadable dict")
        out = {}
        for k, v in pairs:
            key = decode(k, callables, grad, depth + 1)
            if type(key) not in (str, int, bool, float, tuple) and key is not None:
                raise WireError("a dict key that is not plain")
            out[key] = decode(v, callables, grad, depth + 1)
        return out
    if kind == "float":
        if data["v"] not in ("nan", "inf", "-inf"):
            raise WireError("an unreadable float")
        return float(data["v"])
    if kind == "complex":
        re_, im = _list(data["v"])
        return complex(decode(re_), decode(im))
    if kind == "tensor":
        return _decode_tensor(data, grad)
    if kind == "size":
        import torch

        return torch.Size(_ints(data["v"]))
    if kind == "dtype":
        import torch

        if data["v"] not in TENSOR_DTYPES:
            raise WireError("an unknown dtype")
        return getattr(torch, data["v"])
    if kind == "ndarray":
        return _decode_array(data)
    if kind == "npscalar":
        import numpy

        if data["dtype"] not in ARRAY_DTYPES:
            raise WireError("an unknown dtype")
        return numpy.dtype(data["dtype"]).type(decode(data["v"]))
    if kind == "sympy":
        return parse_sympy(data["v"])
    if kind == "callable":
        if callables is None or type(data.get("handle")) is not int:
            raise WireError("a function where data was expected")
        return callables(data["handle"], clip(data.get("name", "function"), 100))
    if kind == "opaque":
        return opaque(data.get("type", "object"), data.get("repr", ""))
    raise WireError(f"an unknown kind of value ({clip(kind, 40)})")


def _list(value) -> list:
    if type(value) is not list:
        raise WireError("an unreadable list")
    return value


def _ints(value) -> list[int]:
    items = _list(value)
    if len(items) > 32 or not all(type(v) is int and 0 <= v < 2**40 for v in items):
        raise WireError("an unreadable shape")
    return items


def _raw(data, numel: int, itemsize: int) -> bytes:
    text = data.get("data")
    if type(text) is not str:
        raise WireError("tensor data that is not text")
    raw = base64.b64decode(text, validate=True)
    if len(raw) != numel * itemsize:
        raise WireError("tensor data of the wrong length")
    return raw


def _decode_tensor(data, grad: bool):
    import torch

    name = data.get("dtype")
    if name not in TENSOR_DTYPES:
        raise WireError("an unknown dtype")
    dtype = getattr(torch, name)
    shape = _ints(data.get("shape"))
    numel = math.prod(shape)
    raw = _raw(data, numel, torch.empty(0, dtype=dtype).element_size())
    if numel == 0:
        t = torch.empty(shape, dtype=dtype)
    elif dtype == torch.bfloat16:
        t = torch.frombuffer(bytearray(raw), dtype=torch.int16).view(torch.bfloat16)
    else:
        t = torch.frombuffer(bytearray(raw), dtype=dtype)
    t = t.reshape(shape)
    if grad and data.get("grad") is True and (t.is_floating_point() or t.is_complex()):
        t.requires_grad_(True)
    return t


def _decode_array(data):
    import numpy

    name = data.get("dtype")
    if name not in ARRAY_DTYPES:
        raise WireError("an unknown dtype")
    dtype = numpy.dtype(name)
    shape = _ints(data.get("shape"))
    raw = _raw(data, math.prod(shape), dtype.itemsize)
    return numpy.frombuffer(raw, dtype=dtype).reshape(shape).copy()


# --- sympy, from srepr text, by a whitelist ---------------------------------------------

def parse_sympy(text):
    """The sympy expression ``srepr`` wrote as ``text``, built from whitelisted classes only.

    No name outside :data:`SYMPY_CLASSES`/:data:`SYMPY_ATOMS` is looked up, no attribute is
    read, and a power whose number would pass :data:`MAX_POWER_BITS` is refused before sympy
    computes it.
    """
    if type(text) is not str or len(text) > MAX_SREPR:
        raise WireError("a sympy expression that is too long")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        raise WireError("an unreadable sympy expression") from error
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise WireError("a sympy expression that is too large")
    import sympy

    return _build(tree.body, sympy, 0)


def _build(node, sympy, depth):
    if depth > 200:
        raise WireError("a sympy expression nested too deeply")
    if isinstance(node, ast.Constant) and type(node.value) in (int, float, str, bool):
        if type(node.value) is int and abs(node.value) > 10**100:
            raise WireError("a number in a sympy expression is too large")
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = _build(node.operand, sympy, depth + 1)
        if type(value) not in (int, float):
            raise WireError("an unreadable sympy expression")
        return -value
    if isinstance(node, ast.List | ast.Tuple):
        return [_build(e, sympy, depth + 1) for e in node.elts]
    if isinstance(node, ast.Name) and node.id in SYMPY_ATOMS:
        return sympy.S.true if node.id == "true" else (
            sympy.S.false if node.id == "false" else getattr(sympy, node.id))
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in SYMPY_CLASSES):
        raise WireError("a sympy expression with something other than plain algebra")
    name = node.func.id
    args = [_build(a, sympy, depth + 1) for a in node.args]
    kwargs = {}
    for keyword in node.keywords:
        if keyword.arg not in SYMPY_KEYWORDS:
            raise WireError("a sympy expression with an unknown option")
        value = _build(keyword.value, sympy, depth + 1)
        if type(value) not in (bool, int) or (keyword.arg == "precision" and not
                                              0 < value <= 1000):
            raise WireError("a sympy expression with an unknown option")
        kwargs[keyword.arg] = value
    if name == "Symbol":
        if len(args) != 1 or type(args[0]) is not str or len(args[0]) > 100:
            raise WireError("an unreadable sympy symbol")
    elif name in ("Integer", "Rational"):
        if not all(type(a) is int for a in args) or kwargs:
            raise WireError("an unreadable sympy number")
    elif name == "Float":
        if len(args) != 1 or type(args[0]) not in (str, int, float) or len(str(args[0])) > 400:
            raise WireError("an unreadable sympy number")
    elif name == "Pow":
        _check_power(args, sympy)
    elif name.endswith("DenseMatrix"):
        if len(args) != 1 or type(args[0]) is not list:
            raise WireError("an unreadable sympy matrix")
    elif not all(isinstance(a, sympy.Basic) for a in args):
        raise WireError("an unreadable sympy expression")
    return getattr(sympy, name)(*args, **kwargs)


def _bits(number, sympy) -> int:
    if isinstance(number, sympy.Integer | sympy.Rational):
        return int(number.p).bit_length() + int(number.q).bit_length()
    if isinstance(number, sympy.Float):
        return number._prec
    return 64


def _check_power(args, sympy) -> None:
    if len(args) != 2 or not all(isinstance(a, sympy.Basic) for a in args):
        raise WireError("an unreadable sympy power")
    base, exponent = args
    if isinstance(exponent, sympy.Rational):
        size = abs(int(exponent.p))
        if size > MAX_EXPONENT or (isinstance(base, sympy.Number)
                                   and _bits(base, sympy) * size > MAX_POWER_BITS):
            raise WireError("a sympy power too large to compute")


# --- errors -------------------------------------------------------------------------------

def encode_error(error: BaseException, status: str, message: str) -> dict:
    """An answer's exception as data: the names of its classes, its status and sentence."""
    names = [c.__name__ for c in type(error).__mro__]
    return {"classes": [clip(n, 60) for n in names[:20]], "status": clip(status, 20),
            "message": clip(message), "text": clip(str(error))}


def error_class(classes) -> type[BaseException]:
    """The builtin exception to rebuild an answer's error as (never the answer's own)."""
    names = classes if isinstance(classes, list) else []
    for name in EXCEPTIONS:
        if name in names:
            return getattr(builtins, name)
    return Exception
