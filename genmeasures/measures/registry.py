"""The measure registry: measures are functions registered by name with a decorator.

::

    @register_measure("distance_from_init", summary="...", paper="...", needs=("init",))
    def distance_from_init(
        ctx: MeasureContext,
        *,
        norm: Annotated[Literal["frobenius", "mars"], "which norm"] = "frobenius",
    ) -> MeasureResult: ...

The keyword-only parameters are the measure's options (see :mod:`.options`). Other installed
packages add measures through the entry-point group ``genmeasures.measures``: an entry point
that names a module registers its measures on import, one that names a
:class:`MeasureSpec` (what the decorator returns) is registered under the entry point's name.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from genmeasures._registry import Registry
from genmeasures.errors import OptionError
from genmeasures.measures.context import MeasureContext
from genmeasures.measures.options import OptionSpec, options_from_signature, resolve_options
from genmeasures.measures.results import MeasureResult

NEEDS = ("init", "data", "model", "curvature", "n_train")

MeasureFunction = Callable[..., MeasureResult]


@dataclass(frozen=True)
class MeasureSpec:
    """A registered measure: its function, description, requirements and options.

    ``needs`` names what the measure reads from its context: ``init`` (the initialization's
    weights), ``model`` (a forward pass), ``data`` (an evaluation sample), ``curvature``
    (second derivatives of the loss) and ``n_train`` (the training-set size).
    ``stochastic`` measures use the seed; ``version`` is part of the cache key, so bump it
    when the computation changes.
    """

    name: str
    function: MeasureFunction
    summary: str
    paper: str
    needs: frozenset[str]
    options: Mapping[str, OptionSpec]
    stochastic: bool = False
    version: int = 1

    def resolve(self, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Validated options with defaults filled in; raises OptionError on bad input."""
        return resolve_options(self.options, given or {}, owner=f"measure {self.name!r}")

    def __call__(self, ctx: MeasureContext, **options: Any) -> MeasureResult:
        resolved = self.resolve(options)
        ctx.check_needs(self.name, self.needs)
        start = time.perf_counter()
        result = self.function(ctx, **resolved)
        seconds = time.perf_counter() - start
        return replace(
            result,
            measure=self.name,
            # A measure may report options it resolved itself (a preset's values).
            options={**resolved, **result.options},
            seconds=seconds,
            seed=ctx.seed if self.stochastic else None,
            n_samples=ctx.n_eval_samples if "data" in self.needs else None,
        )


MEASURES: Registry[MeasureSpec] = Registry("measure", entry_point_group="genmeasures.measures")


def register_measure(
    name: str,
    *,
    summary: str,
    paper: str = "",
    needs: Iterable[str] = (),
    stochastic: bool = False,
    version: int = 1,
    replace_existing: bool = False,
) -> Callable[[MeasureFunction], MeasureSpec]:
    """Register a measure function under ``name`` (see the module docstring)."""
    needs = frozenset(needs)
    unknown = needs - set(NEEDS)
    if unknown:
        raise ValueError(f"unknown needs {sorted(unknown)} for measure {name!r}; valid: {NEEDS}")

    def decorate(function: MeasureFunction) -> MeasureSpec:
        spec = MeasureSpec(
            name=name,
            function=function,
            summary=summary,
            paper=paper,
            needs=needs,
            options=options_from_signature(function),
            stochastic=stochastic,
            version=version,
        )
        MEASURES.add(name, spec, replace=replace_existing)
        return spec

    return decorate


def get_measure(name: str) -> MeasureSpec:
    _load_builtin_measures()
    return MEASURES.get(name)


def list_measures() -> list[MeasureSpec]:
    _load_builtin_measures()
    return [MEASURES.get(name) for name in MEASURES.names()]


MeasureRequest = tuple[MeasureSpec, dict[str, Any]]


def resolve_requests(
    measures: str | Iterable[str] | Mapping[str, Mapping[str, Any] | None],
) -> list[MeasureRequest]:
    """Turn the user's measure selection into validated (spec, options) pairs.

    Accepts a list of names or ``'name:opt=value,...'`` specs, or a mapping name -> options.
    Every name and option is checked before anything is computed.
    """
    from genmeasures._specs import parse_spec

    if isinstance(measures, str):
        measures = [measures]
    items: list[tuple[str, Mapping[str, Any]]]
    if isinstance(measures, Mapping):
        items = [(name, opts or {}) for name, opts in measures.items()]
    else:
        items = [parse_spec(text) for text in measures]
    if not items:
        raise OptionError("no measures selected")
    requests = [(get_measure(name), opts) for name, opts in items]
    return [(spec, spec.resolve(opts)) for spec, opts in requests]


def _load_builtin_measures() -> None:
    # Importing the package registers the built-in measures (decorators run on import).
    import genmeasures.measures.builtin  # noqa: F401
