"""Rebuilding stored ADK events without re-running pydantic validation on every field.

The adapter stores each ADK ``Event`` as ``event.model_dump(mode="json",
exclude_none=True)``: data pydantic produced and checked. Validating it again
costs about 40 µs an event, most of it in the Python validators ``google.genai``
puts on every model (a type-mismatch warning) and ``Part``'s own ``__init__``;
a 1,000-event ``get_session`` spends most of its time there.

:func:`rebuild` makes the same objects directly, from a plan compiled once per
model class from its pydantic fields: each value is checked against its field's
type (a string must be a ``str``, an enum value a member's, a float an ``int``
or ``float``...) and nested models, lists and dicts of them are built the same
way. Anything the plan does not cover exactly falls back to
``model_validate`` for that (sub-)model: an unknown key, a value of an
unexpected type, a field with constraints or a union of several types, a model
with validators or an ``__init__`` not known to be inert for stored data. The
result equals what validation gives (fields, fields set, private attributes,
``model_post_init`` run); the tests compare both on every kind of event the
adapter stores. Like ``sessionhub.backend_tools.stored_session`` it fills the
instance slots pydantic 2 gives every model, which ADK and ``google-genai``
pin to.
"""

from __future__ import annotations

import copy
import enum
import functools
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import pydantic
from pydantic import ConfigDict, TypeAdapter

__all__ = ["construct", "rebuild"]

Model = TypeVar("Model", bound=pydantic.BaseModel)
Convert = Callable[[Any], Any]

# Model validators and ``__init__`` methods that do nothing to a stored dump:
# genai's type-mismatch check only logs; ADK's convenience kwargs touch keys that
# are not fields (a dump has field names only); ``Part.__init__`` only passes its
# keyword fields on.
_INERT = frozenset(
    {
        "google.genai._common.BaseModel._check_field_type_mismatches",
        "google.adk.events.event.Event._accept_convenience_kwargs",
        "google.genai.types.Part.__init__",
    }
)
_IMMUTABLE = (type(None), str, int, float, bool, bytes, tuple, frozenset, enum.Enum)
# The instance slots pydantic 2 gives every model, each set through its descriptor
# (cheaper than ``object.__setattr__``, which looks the descriptor up on every call).
_SLOTS: Any = pydantic.BaseModel.__dict__
_set_dict = _SLOTS["__dict__"].__set__
_set_fields_set = _SLOTS["__pydantic_fields_set__"].__set__
_set_extra = _SLOTS["__pydantic_extra__"].__set__
_set_private = _SLOTS["__pydantic_private__"].__set__


class _Slow(Exception):
    """The value is not one the plan covers exactly: validate it instead."""


def _name(function: Any) -> str:
    function = getattr(function, "__func__", function)
    return f"{function.__module__}.{function.__qualname__}"


def _inert(model: type[pydantic.BaseModel]) -> bool:
    """Whether validating ``model`` from a dump does only what its fields' types say."""
    for validator in model.__pydantic_decorators__.model_validators.values():
        if _name(validator.func) not in _INERT:
            return False
    for klass in model.__mro__:
        init = klass.__dict__.get("__init__")
        if klass is pydantic.BaseModel or klass is object:
            break
        if init is not None and _name(init) not in _INERT:
            return False
    config = model.model_config
    by_name = config.get("populate_by_name") or config.get("validate_by_name")
    aliased = any(
        (field.validation_alias or field.alias or name) != name
        for name, field in model.model_fields.items()
    )
    if aliased and not by_name:
        return False  # a dump's field names are not what validation reads
    return not (
        config.get("extra") == "allow" or config.get("validate_default") or config.get("strict")
    )


def _exact(kind: type) -> Convert:
    def convert(value: Any) -> Any:
        if type(value) is not kind:
            raise _Slow
        return value

    return convert


def _to_float(value: Any) -> float:
    if type(value) is float:
        return value
    if type(value) is int:
        return float(value)
    raise _Slow


def _anything(value: Any) -> Any:
    return value


def _list_of(item: Convert) -> Convert:
    def convert(value: Any) -> list[Any]:
        if type(value) is not list:
            raise _Slow
        return [item(element) for element in value]

    return convert


def _set_of(item: Convert) -> Convert:
    def convert(value: Any) -> set[Any]:
        if type(value) is not list:
            raise _Slow
        return {item(element) for element in value}

    return convert


def _dict_of(item: Convert | None) -> Convert:
    def convert(value: Any) -> dict[str, Any]:
        if type(value) is not dict:
            raise _Slow
        if item is None:
            return dict(value)  # validation copies the container, never the values
        return {key: item(element) for key, element in value.items()}

    return convert


def _enum(kind: type[enum.Enum]) -> Convert:
    members = kind._value2member_map_

    def convert(value: Any) -> enum.Enum:
        if type(value) not in (str, int):
            raise _Slow
        try:
            return members[value]
        except (KeyError, TypeError):
            raise _Slow from None

    return convert


def _literal(allowed: tuple[Any, ...]) -> Convert:
    def convert(value: Any) -> Any:
        if type(value) not in (str, int, bool) or value not in allowed:
            raise _Slow
        return value

    return convert


def _optional(convert: Convert) -> Convert:
    def optional(value: Any) -> Any:
        return None if value is None else convert(value)

    return optional


def _bytes(config: ConfigDict) -> Convert:
    adapter = TypeAdapter(
        bytes, config=ConfigDict(val_json_bytes=config.get("val_json_bytes", "utf8"))
    )

    def convert(value: Any) -> bytes:
        if type(value) is not str:
            raise _Slow
        return adapter.validate_python(value)

    return convert


def _converter(annotation: Any, config: ConfigDict) -> Convert | None:
    """How a dumped value of ``annotation`` becomes the field's value; ``None``: not covered."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        rest = [arg for arg in args if arg is not type(None)]
        inner = _converter(rest[0], config) if len(rest) == 1 else None
        return _optional(inner) if inner is not None and len(rest) < len(args) else None
    if origin is typing.Literal:
        return _literal(args)
    if origin in (list, set) and len(args) == 1:
        item = _converter(args[0], config)
        if item is None:
            return None
        return _list_of(item) if origin is list else _set_of(item)
    if origin is dict and len(args) == 2 and args[0] is str:
        if args[1] in (Any, object):
            return _dict_of(None)
        value = _converter(args[1], config)
        return _dict_of(value) if value is not None else None
    if origin is not None:
        return None
    if annotation in (Any, object):
        return _anything
    if annotation is float:
        return _to_float
    if annotation in (str, int, bool):
        return _exact(annotation)
    if annotation is bytes:
        return _bytes(config)
    if annotation is dict:
        return _dict_of(None)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _enum(annotation)
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return _builder(annotation)
    return None


def _after_validated(model: type[pydantic.BaseModel], name: str, convert: Convert) -> Convert:
    """``convert`` then the field's validators, if they are one "after" validator without info."""
    validators = [
        validator
        for validator in model.__pydantic_decorators__.field_validators.values()
        if name in validator.info.fields or "*" in validator.info.fields
    ]
    if not validators:
        return convert
    if len(validators) > 1 or validators[0].info.mode != "after":
        return _never
    validate = validators[0].func
    if len(inspect.signature(validate).parameters) != 1:
        return _never  # it takes a ValidationInfo: validation runs it

    def converted(value: Any) -> Any:
        return validate(convert(value))

    return converted


def _validated(model: type[Model]) -> Callable[[Any], Model]:
    def validate(data: Any) -> Model:
        if type(data) is not dict:
            raise _Slow
        return _validate(model, data)

    return validate


def _validate(model: type[Model], data: dict[str, Any]) -> Model:
    try:
        return model.model_validate(data)
    except pydantic.ValidationError:
        raise _Slow from None  # the outermost model's validation reports it, with its path


def _compile(model: type[Model]) -> Callable[[Any], Model]:
    """The function that rebuilds ``model`` from a dump (validating whatever it cannot)."""
    if not _inert(model):
        return _validated(model)
    plain: dict[str, Any] = {}  # fields whose dumped value is the value (str, int, bool)
    converters: dict[str, Convert] = {}
    nullable: set[str] = set()
    static: dict[str, Any] = {}
    fill: list[tuple[str, Callable[[], Any]]] = []
    required: set[str] = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if typing.get_origin(annotation) in (typing.Union, types.UnionType):
            rest = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(rest) == 1:
                nullable.add(name)
                annotation = rest[0]
        convert = _converter(annotation, model.model_config)
        if convert is None or field.metadata or field.validate_default:
            convert = _never
        else:
            convert = _after_validated(model, name, convert)
            if convert is not _never and annotation in (str, int, bool):
                plain[name] = annotation
        converters[name] = convert
        static[name] = None  # keeps the fields' order in __dict__, as validation does
        if field.default_factory is not None:
            if field.default_factory_takes_validated_data:
                return _validated(model)
            fill.append((name, field.default_factory))  # type: ignore[arg-type]
        elif field.is_required():
            required.add(name)
        elif isinstance(field.default, _IMMUTABLE):
            static[name] = field.default
        else:  # validation gives each instance its own copy of a mutable default
            fill.append((name, functools.partial(copy.deepcopy, field.default)))
    make = _maker(model)
    passes = model.model_config.get("revalidate_instances", "never") == "never"

    def fast(data: dict[str, Any]) -> Model:
        values = static.copy()
        for name, make_default in fill:
            if name not in data:
                values[name] = make_default()
        if required and not required.issubset(data):
            raise _Slow
        for key, value in data.items():
            kind = plain.get(key)
            if kind is not None and type(value) is kind:
                values[key] = value
            elif value is None:
                if key not in nullable:
                    raise _Slow
                values[key] = None
            else:
                convert = converters.get(key)
                if convert is None:
                    raise _Slow
                values[key] = convert(value)
        return make(values, set(data))

    def build(data: Any) -> Model:
        if type(data) is not dict:
            if passes and isinstance(data, model):
                return data  # validation passes instances through as they are
            raise _Slow
        try:
            return fast(data)
        except _Slow:
            return _validate(model, data)

    return build


def _maker(model: type[Model]) -> Callable[[dict[str, Any], set[str]], Model]:
    """What makes an instance of ``model`` from its ``__dict__`` and fields set, as validation does.

    The private attributes get their defaults and ``model_post_init`` runs, in
    the slots pydantic 2 gives every model.
    """
    private = _private_defaults(model)
    post_init = model.__pydantic_post_init__ is not None and private is None
    new = model.__new__

    def make(values: dict[str, Any], fields_set: set[str]) -> Model:
        instance = new(model)
        _set_dict(instance, values)
        _set_fields_set(instance, fields_set)
        _set_extra(instance, None)
        _set_private(instance, private() if private is not None else None)
        if post_init:
            instance.model_post_init(None)
        return instance

    return make


_INIT_PRIVATE = "pydantic._internal._model_construction.init_private_attributes"


def _private_defaults(model: type[pydantic.BaseModel]) -> Callable[[], dict[str, Any]] | None:
    """What sets a new instance's private attributes when that is all ``model_post_init`` does.

    ``None``: the model has no private attributes, or a ``model_post_init`` of its own
    (which then runs, setting them as validation does).
    """
    attributes = model.__private_attributes__
    if not attributes or _name(model.model_post_init) != _INIT_PRIVATE:
        return None
    defaults = {name: attribute.default for name, attribute in attributes.items()}
    if all(
        attribute.default_factory is None and isinstance(attribute.default, _IMMUTABLE)
        for attribute in attributes.values()
    ):
        return defaults.copy
    return lambda: {name: attribute.get_default() for name, attribute in attributes.items()}


def _never(value: Any) -> Any:
    raise _Slow


_BUILDERS: dict[type[pydantic.BaseModel], Callable[[Any], Any]] = {}


def _builder(model: type[Model]) -> Callable[[Any], Model]:
    builder = _BUILDERS.get(model)
    if builder is None:
        # Nested models compile with this one; a model met again while compiling
        # (one that contains itself) gets this forwarder to the finished builder.
        _BUILDERS[model] = lambda data: _BUILDERS[model](data)
        try:
            builder = _BUILDERS[model] = _compile(model)
        except BaseException:
            del _BUILDERS[model]
            raise
    return builder


_MAKERS: dict[type[pydantic.BaseModel], tuple[frozenset[str], Callable[..., Any]]] = {}


def construct(model: type[Model], values: dict[str, Any], **private: Any) -> Model:
    """An instance of ``model`` holding ``values``, which the adapter made itself.

    ``values`` has every field, in the fields' order, each value already of its
    field's type (nothing is checked but the names); it becomes the instance's
    ``__dict__``. ``private`` sets private attributes (the others get their
    defaults). Cheaper than validation and than :func:`rebuild`: for what the
    adapter builds from values it has just read, as a session header.
    """
    known = _MAKERS.get(model)
    if known is None:
        known = _MAKERS[model] = (frozenset(model.model_fields), _maker(model))
    names, make = known
    if values.keys() != names:
        raise TypeError(f"{model.__name__} has the fields {sorted(names)}, got {sorted(values)}")
    instance: Model = make(values, set(names))
    if private:
        slots = instance.__pydantic_private__
        if slots is None or not private.keys() <= slots.keys():
            raise TypeError(f"{model.__name__} has no private attributes {sorted(private)}")
        slots.update(private)
    return instance


def rebuild(model: type[Model], data: dict[str, Any]) -> Model:
    """``model.model_validate(data)`` for a dump the adapter stored, without re-validating it.

    ``data`` becomes part of the result (its dicts are copied, their values are
    not): pass a dict nothing else holds.
    """
    try:
        return _builder(model)(data)
    except _Slow:
        return model.model_validate(data)
