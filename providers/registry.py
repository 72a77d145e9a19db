"""Provider kinds by name, discovered like the policies: a module of this package with a class decorated by
``@register``. The class declares its ``kind``, its ``Settings`` (a ProviderSettings: the keys of its section of
the deployment file, strings there, coerced by pydantic; unknown keys refused) and inherits its abilities
(providers.abilities). ``get_provider``, ``orch apply``'s targets and ``validate``'s launch checks all read it.

Adding a provider: one module here (class, Settings, @register) plus its catalog rows.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Protocol

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

_KINDS: dict[str, Any] = {}
_TARGETS: dict[str, Callable[..., Any]] = {}  # plan provider name -> factory (plugins, tests): see register_target
_NOT_KINDS = ("registry", "base", "abilities")


def _split(value: Any) -> Any:
    return [s.strip() for s in value.split(",") if s.strip()] if isinstance(value, str) else value


CommaList = Annotated[list[str], BeforeValidator(_split)]  # 'a,b' in the deployment file's options


def placed(description: str, default: Any = None) -> Any:
    """A setting orch derives from the plan's region (not a deployment-file option)."""
    return Field(default, description=description, json_schema_extra={"placed": True})


def needed(description: str) -> Any:
    """An option apply cannot launch without (validate warns when it is missing; a dry run shows a placeholder)."""
    return Field(None, description=description, json_schema_extra={"needed": True})


def _extra(field: Any) -> dict[str, Any]:
    return field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}


class ProviderSettings(BaseModel):
    """What one provider instance is built from: its options plus what orch sets per region."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def options(cls) -> list[str]:
        """The keys the deployment file may hold for this kind."""
        return sorted(n for n, f in cls.model_fields.items() if not _extra(f).get("placed"))

    @classmethod
    def needed(cls) -> dict[str, str]:
        """Options apply needs, with what each is."""
        return {n: f.description or n for n, f in cls.model_fields.items() if _extra(f).get("needed")}

    @classmethod
    def missing(cls, options: dict[str, Any], regions: list[str]) -> list[str]:
        """What apply will need that these options (for these regions of the file) lack: 'key (what it is)'."""
        return [f"{k} ({what})" for k, what in cls.needed().items() if k not in options]

    @classmethod
    def for_region(cls, region_name: str, options: dict[str, Any], where: str, lenient: bool) -> dict[str, Any]:
        """The settings for one region of a plan: the options plus what the region decides (by default, the
        ``placed`` settings are the region)."""
        return {**options, **{n: region_name for n, f in cls.model_fields.items() if _extra(f).get("placed")}}


def register(cls: Any) -> Any:
    """Class decorator: make a provider class known by its ``kind``."""
    _KINDS[cls.kind] = cls
    return cls


def _load_all() -> None:
    import providers

    for info in pkgutil.iter_modules(providers.__path__):
        if not info.ispkg and info.name not in _NOT_KINDS:
            importlib.import_module(f"providers.{info.name}")


def kinds() -> list[str]:
    _load_all()
    return sorted(_KINDS)


def provider_class(kind: str) -> Any:
    """The class of ``kind``; a UserError naming the known ones otherwise."""
    if kind not in _KINDS:
        try:  # the usual case: the module is named after its kind, so one import finds it
            importlib.import_module(f"providers.{kind}")
        except ModuleNotFoundError as exc:
            if exc.name != f"providers.{kind}":
                raise
    if kind not in _KINDS:
        from orchestrator.errors import UserError

        raise UserError(f"unknown provider {kind!r}; known: {', '.join(kinds())}")
    return _KINDS[kind]


def settings_model(kind: str) -> type[ProviderSettings]:
    return provider_class(kind).Settings  # type: ignore[no-any-return]


def abilities(kind: str) -> list[str]:
    """The names of the abilities (providers.abilities) ``kind`` declares."""
    from providers.abilities import ABILITIES

    cls = provider_class(kind)
    return [a.__name__ for a in ABILITIES if issubclass(cls, a)]


def has(kind_or_provider: Any, ability: type) -> bool:
    """Whether a provider (instance, or kind by name) has ``ability``."""
    cls = provider_class(kind_or_provider) if isinstance(kind_or_provider, str) else type(kind_or_provider)
    return issubclass(cls, ability)


def _wiring(cls: Any) -> set[str]:
    """The constructor's keyword-only parameters: objects orch or tests pass in (clients, sleep), not settings."""
    return {p.name for p in inspect.signature(cls.__init__).parameters.values() if p.kind is p.KEYWORD_ONLY}


def setting_problems(kind: str, values: dict[str, Any], *, from_file: bool = False) -> list[tuple[str, str]]:
    """(key, message) for each problem of these settings: unknown keys, values of the wrong type. ``from_file``:
    the deployment file's options, where the ``placed`` settings are unknown too (orch sets them)."""
    model = settings_model(kind)
    if from_file:
        placed_keys = [k for k in values if k in model.model_fields and k not in model.options()]
        values = {k: v for k, v in values.items() if k not in placed_keys}
        unknown = [_problem(kind, model, {"loc": (k,), "type": "extra_forbidden"}) for k in placed_keys]
        return unknown + setting_problems(kind, values)
    try:
        model.model_validate(values)
    except ValidationError as exc:
        return [_problem(kind, model, err) for err in exc.errors()]
    return []


def _problem(kind: str, model: type[ProviderSettings], err: Any) -> tuple[str, str]:
    key = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        from orchestrator.suggest import did_you_mean

        known = model.options()
        return key, f"unknown setting {key!r} for {kind}{did_you_mean(key, known)}; expected one of {', '.join(known)}"
    return key, f"{err['msg'][0].lower()}{err['msg'][1:]} (found {err['input']!r})"


def create(kind: str, where: str | None = None, **config: Any) -> Any:
    """A provider of ``kind``: settings (``Settings`` fields; None means the default) validated by its model,
    wiring (the constructor's keyword-only parameters) passed as is. Bad settings: a UserError at ``where``."""
    cls = provider_class(kind)
    wiring = _wiring(cls)
    values = {k: v for k, v in config.items() if k not in wiring and v is not None}
    problems = setting_problems(kind, values)
    if problems:
        from orchestrator.errors import UserError

        key, message = problems[0]
        raise UserError(f"{where or f'providers.{kind}'}.{key}: {message}")
    return cls(cls.Settings.model_validate(values), **{k: v for k, v in config.items() if k in wiring})


def for_region(kind: str, region_name: str, options: dict[str, Any], *, where: str, lenient: bool = False,
               **wiring: Any) -> Any:
    """The provider of ``kind`` for one region of a plan, from the deployment file's ``options``. A needed option
    that is missing is an error, or (``lenient``: dry runs) a visible placeholder so the calls can still be shown."""
    model = settings_model(kind)
    problems = setting_problems(kind, options, from_file=True)
    if problems:
        from orchestrator.errors import UserError

        key, message = problems[0]
        raise UserError(f"{where}.{key}: {message}")
    config = model.for_region(region_name, options, where, lenient)
    for key, what in model.needed().items():
        if config.get(key) is None:
            if not lenient:
                from orchestrator.errors import UserError

                raise UserError(f"{where}.{key} is required to launch on {kind}: {what}")
            config[key] = placeholder(f"{where}.{key}")
    return create(kind, where, **config, **wiring)


def placeholder(setting: str) -> str:
    return f"<set {setting}>"


def register_target(provider_name: str, factory: Callable[..., Any]) -> None:
    """Plug in a plan provider name (tests, plugins): factory(provider name, region id, settings, lenient=) → an
    orchestrator.apply.targets.Target. Names without one are built from the kinds above."""
    _TARGETS[provider_name] = factory


def target_factory(provider_name: str) -> Callable[..., Any] | None:
    return _TARGETS.get(provider_name)


class ProviderClass(Protocol):
    """What @register expects of a provider class."""

    kind: ClassVar[str]
    Settings: ClassVar[type[ProviderSettings]]
