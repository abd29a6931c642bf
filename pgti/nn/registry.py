"""The model registry: model names -> constructors, and their options.

A model is named one of two ways:

- a built-in name: a class in a module of ``pgti.nn`` decorated with ``@register_model(name)``.
  The modules of ``pgti.nn`` are imported the first time the registry is asked for its models
  (:func:`discover_models`), so adding a built-in takes that one module and nothing else.
- ``package.module:ClassName``: any ``torch.nn.Module`` subclass importable from ``sys.path`` or
  from the working directory (users run the drivers from their project's directory).

Every model keeps the model contract (README, "Bring your own model"): it is built with the
keywords ``num_nodes, num_features, lags, edge_index (2 x E long), edge_weight (E float)`` plus
its options, and ``forward(x, y=None)`` maps ``x`` (B, L, N, F) to (B, L, N, C), C >= 1, whose
channel 0 predicts the target (channel 0 of ``y``; ``y`` is given in training only).
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import sys
from typing import Callable

import torch
from torch import Tensor, nn

from pgti.errors import InputError

__all__ = ["DEFAULT_MODEL", "MODELS", "build_model", "discover_models", "model_list", "model_options",
           "register_model", "resolve_model"]

DEFAULT_MODEL = "pgt-dcrnn"  # the PGT-I paper's configuration
CONTRACT_ARGS = ("num_nodes", "num_features", "lags", "edge_index", "edge_weight")
FIELD = "model.name"  # the run-config field an InputError here is about

_REGISTERED: dict[str, type[nn.Module]] = {}
_BUILTINS: tuple[str, ...] | None = None  # filled by the first discovery over pgti.nn


def register_model(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: make ``name`` a model name for the decorated ``nn.Module`` subclass.

    A name registered twice is a programming error (``ValueError``), unless it is the same class
    defined again (a module reloaded)."""
    if not name or ":" in name:
        raise ValueError(f"model name {name!r} must be non-empty and without ':'")

    def register(cls: type[nn.Module]) -> type[nn.Module]:
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise TypeError(f"@register_model({name!r}) needs an nn.Module subclass, got {cls!r}")
        known = _REGISTERED.get(name)
        if known is not None and _qualified(known) != _qualified(cls):
            raise ValueError(f"model name {name!r} is already registered to {_qualified(known)}; "
                             f"cannot register {_qualified(cls)}")
        _REGISTERED[name] = cls
        return cls

    return register


def _qualified(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def discover_models(package: str = "pgti.nn") -> tuple[str, ...]:
    """Import every module of ``package`` (so that its classes register) and return the names
    registered by classes of that package: ``DEFAULT_MODEL`` first, the others sorted, so the
    order never depends on which module happened to be imported first."""
    pkg = importlib.import_module(package)
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        importlib.import_module(f"{package}.{info.name}")
    prefix = f"{package}."
    names = sorted(name for name, cls in _REGISTERED.items() if cls.__module__.startswith(prefix))
    return tuple(sorted(names, key=lambda name: name != DEFAULT_MODEL))


def _builtins() -> tuple[str, ...]:
    global _BUILTINS
    if _BUILTINS is None:
        _BUILTINS = discover_models(__name__.rpartition(".")[0])
    return _BUILTINS


def __getattr__(attr: str):
    # MODELS is computed on first use: the modules it comes from import this one to register.
    if attr == "MODELS":
        return _builtins()
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def resolve_model(name: str) -> type[nn.Module]:
    """The class of a built-in model name or of a ``package.module:ClassName`` path.

    Raises ``InputError`` (``field="model.name"``) for an unknown name, a module that cannot be
    imported, a missing attribute, or an attribute that is not an ``nn.Module`` subclass."""
    if ":" not in name:
        builtins = _builtins()
        if name not in builtins:
            raise InputError(f"unknown model {name!r}; built-in models: {', '.join(builtins)}, "
                             "or package.module:ClassName for your own", field=FIELD)
        return _REGISTERED[name]
    module_name, _, attr_path = name.partition(":")
    if not module_name or not attr_path or ":" in attr_path:
        raise InputError(f"{name}: expected package.module:ClassName", field=FIELD)
    module = _import_model_module(module_name, name)
    obj = module
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise InputError(f"{name}: module {module_name!r} ({_origin(module)}) has no "
                             f"attribute {attr_path!r}", field=FIELD) from None
    if not (isinstance(obj, type) and issubclass(obj, nn.Module)):
        raise InputError(f"{name}: {attr_path} is not a torch.nn.Module subclass "
                         f"(it is {_one_line(repr(obj))[:80]})", field=FIELD)
    return obj


def model_list(text: str) -> list[str]:
    """The models of a comma-separated list (built-in names or ``package.module:ClassName``), or
    every built-in for ``all``, in order. Raises ``InputError`` for an empty list, a name given
    twice, or a model :func:`resolve_model` cannot find."""
    if text.strip() == "all":
        return list(_builtins())
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise InputError("no model named", field=FIELD)
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise InputError(f"{', '.join(duplicated)} given twice", field=FIELD)
    for name in names:
        resolve_model(name)
    return names


def _origin(module) -> str:
    return getattr(module, "__file__", None) or "built-in module"


def _import_model_module(module_name: str, name: str):
    """Import ``module_name`` from ``sys.path``, then from the working directory. The working
    directory stays on ``sys.path`` (at the end) once a model came from it, so that the module's
    own imports of its siblings work later too."""
    importlib.invalidate_caches()  # a module written since the last import attempt
    try:
        return _import(module_name, name)
    except ModuleNotFoundError as error:
        cwd = os.getcwd()
        searched = {os.path.abspath(p or os.curdir) for p in sys.path if isinstance(p, str)}
        if not _is_missing(error, module_name) or cwd in searched:
            raise InputError(_not_found(module_name, name, error), field=FIELD) from None
    sys.path.append(cwd)
    try:
        return _import(module_name, name)
    except BaseException as error:
        sys.path.remove(cwd)
        if isinstance(error, ModuleNotFoundError):
            raise InputError(_not_found(module_name, name, error), field=FIELD) from None
        raise


def _import(module_name: str, name: str):
    """``import_module``; a failure other than the module itself being absent is an InputError."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if _is_missing(error, module_name):
            raise
        raise InputError(f"{name}: importing module {module_name!r} failed: "
                         f"ModuleNotFoundError: {_one_line(error)}", field=FIELD) from None
    except SyntaxError as error:
        raise InputError(f"{name}: module {module_name!r} has a syntax error: "
                         f"{_one_line(error.msg)} ({error.filename}, line {error.lineno})",
                         field=FIELD) from None
    except Exception as error:  # anything the module's own code raises while it is imported
        raise InputError(f"{name}: importing module {module_name!r} raised "
                         f"{type(error).__name__}: {_one_line(error)}", field=FIELD) from None


def _is_missing(error: ModuleNotFoundError, module_name: str) -> bool:
    """Whether ``error`` is about ``module_name`` or one of its parent packages (not about
    something the module imports)."""
    missing = error.name or ""
    return module_name == missing or module_name.startswith(missing + ".")


def _not_found(module_name: str, name: str, error: ModuleNotFoundError) -> str:
    return (f"{name}: no module named {error.name or module_name!r} on the Python path "
            f"or in the working directory {os.getcwd()}")


def _signature(constructor: Callable) -> inspect.Signature | None:
    try:
        return inspect.signature(constructor)
    except (TypeError, ValueError):  # no introspectable signature: pass everything
        return None


def _takes_any_keyword(signature: inspect.Signature | None) -> bool:
    return signature is None or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())


def model_options(name: str) -> dict[str, object]:
    """The options model ``name`` names in its signature beyond the contract keywords, with their
    defaults (``inspect.Parameter.empty`` for a required one). A model taking ``**kwargs`` may
    accept more than these."""
    return _options(_signature(resolve_model(name)))


def _options(signature: inspect.Signature | None) -> dict[str, object]:
    if signature is None:
        return {}
    return {
        p.name: p.default
        for p in signature.parameters.values()
        if p.name not in CONTRACT_ARGS
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }


def build_model(name: str, *, num_nodes: int, num_features: int, edge_index: Tensor,
                edge_weight: Tensor | None, lags: int | None = None, **options) -> nn.Module:
    """Build model ``name`` (a built-in name or ``package.module:ClassName``) on a graph bound at
    construction.

    The class gets the contract keywords ``num_nodes, num_features, lags, edge_index,
    edge_weight`` and ``options``. A class whose signature has ``**kwargs`` gets them all (as the
    contract asks); one without is forgiven: it gets only the contract keywords it names, and an
    option it does not name is refused. For a model of your own, ``edge_index`` comes as a long
    tensor and a missing ``edge_weight`` as ones; built-ins get them as given (they check the
    graph themselves). Bad names or options raise ``InputError``.
    """
    constructor = resolve_model(name)
    builtin = ":" not in name
    if not builtin:
        edge_index = edge_index.long()
        if edge_weight is None:
            edge_weight = torch.ones(edge_index.size(1), device=edge_index.device)
        edge_weight = edge_weight.float()
    contract = dict(num_nodes=num_nodes, num_features=num_features, lags=lags,
                    edge_index=edge_index, edge_weight=edge_weight)
    signature = _signature(constructor)
    if not _takes_any_keyword(signature):
        known = _options(signature)
        unknown = sorted(set(options) - set(known))
        if unknown:
            accepted = ", ".join(known) or "none"
            raise InputError(f"model {name} takes no option(s) {', '.join(unknown)} "
                             f"(accepted: {accepted})",
                             field=f"model.options.{unknown[0]}" if len(unknown) == 1 else "model.options")
        missing = [o for o, default in known.items()
                   if default is inspect.Parameter.empty and o not in options]
        if missing:
            raise InputError(f"{name} needs option(s) {', '.join(missing)}", field=FIELD)
        contract = {k: v for k, v in contract.items() if k in signature.parameters}
    return constructor(**contract, **options)
