"""The waterfall: which provider fills which field group, and who is called when.

Level k of the waterfall is the k-th provider of every group (all of a group's
providers at level 0 when its strategy is `all`). A provider is called for a
domain at the first level where it is listed for a group that is still empty
for that domain; once called, its answer counts for every group it fills.
Lower providers are therefore only paid for where the higher ones left a gap.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Mapping, MutableMapping
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from enrichment_pipeline.lib.fields import GROUPS
from enrichment_pipeline.lib.settings import SettingsError


class GroupRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    providers: list[str] = Field(min_length=1)
    strategy: Literal["first_hit", "all"] = "first_hit"

    @field_validator("providers")
    @classmethod
    def _unique(cls, providers: list[str]) -> list[str]:
        if len(set(providers)) != len(providers):
            raise ValueError("a provider is listed twice")
        return providers


class Waterfall(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    groups: dict[str, GroupRule]

    @field_validator("groups")
    @classmethod
    def _known_groups(cls, groups: dict[str, GroupRule]) -> dict[str, GroupRule]:
        unknown = sorted(set(groups) - set(GROUPS))
        if unknown:
            raise ValueError(f"unknown field group(s) {', '.join(unknown)}; known: {', '.join(GROUPS)}")
        return groups

    def check_providers(self, known: Collection[str]) -> None:
        for group, rule in self.groups.items():
            unknown = [p for p in rule.providers if p not in known]
            if unknown:
                raise SettingsError(
                    f"waterfall group {group!r} names unknown provider(s) {', '.join(unknown)}; "
                    f"known: {', '.join(known)}"
                )

    def order(self, group: str) -> list[str]:
        rule = self.groups.get(group)
        return list(rule.providers) if rule else []

    @property
    def depth(self) -> int:
        return max((1 if r.strategy == "all" else len(r.providers)) for r in self.groups.values())

    def at_level(self, level: int, group: str) -> list[str]:
        rule = self.groups[group]
        if rule.strategy == "all":
            return list(rule.providers) if level == 0 else []
        return [rule.providers[level]] if level < len(rule.providers) else []

    def for_capabilities(self, fillable: Mapping[str, Collection[str]]) -> Waterfall:
        """This waterfall without providers listed for groups they cannot fill (`fillable`:
        provider -> groups), so no level waits on a call that cannot fill its group.
        Providers not in `fillable` are kept as they are."""
        groups: dict[str, GroupRule] = {}
        for group, rule in self.groups.items():
            kept = [p for p in rule.providers if p not in fillable or group in fillable[p]]
            if kept:
                groups[group] = GroupRule(providers=kept, strategy=rule.strategy)
        return Waterfall(groups=groups)

    def fill_positions(self, provider: str, groups: Iterable[str]) -> dict[str, int]:
        """Where `provider` stands in each group it filled: a fill only stops the providers below it.

        A provider not listed for a group stands after all of them, so its values
        there (e.g. BuiltWith's head count) never stop a listed provider's call.
        """
        out: dict[str, int] = {}
        for group in groups:
            order = self.order(group)
            out[group] = order.index(provider) if provider in order else len(order)
        return out

    @staticmethod
    def merge_fills(target: MutableMapping[str, int], fills: Mapping[str, int]) -> None:
        """Keep, per group, the best (highest-priority) position that filled it."""
        for group, position in fills.items():
            target[group] = min(position, target.get(group, position))

    def _done(self, group: str, level: int, domain_filled: Collection[str] | Mapping[str, int]) -> bool:
        """A first-hit group needs no provider at `level` once one ranked above it filled the group.

        A plain set of groups means "filled by the top provider" (all levels done).
        """
        if self.groups[group].strategy != "first_hit" or group not in domain_filled:
            return False
        if isinstance(domain_filled, Mapping):
            return domain_filled[group] < level or domain_filled[group] == 0
        return True

    def wanted(
        self,
        level: int,
        domain_filled: Collection[str] | Mapping[str, int],
        domain_called: set[str],
        active: Collection[str],
    ) -> set[str]:
        """Providers to call for one domain at `level`."""
        wanted: set[str] = set()
        for group in self.groups:
            if self._done(group, level, domain_filled):
                continue
            for provider in self.at_level(level, group):
                if provider in active and provider not in domain_called:
                    wanted.add(provider)
        return wanted

    def may_want_more(
        self,
        after_level: int,
        domain_filled: Collection[str] | Mapping[str, int],
        domain_called: set[str],
        active: Collection[str],
    ) -> bool:
        """Whether a later level could still call someone for this domain."""
        for level in range(after_level + 1, self.depth):
            for group in self.groups:
                if self._done(group, level, domain_filled):
                    continue
                if any(p in active and p not in domain_called for p in self.at_level(level, group)):
                    return True
        return False


def default_waterfall_path() -> Path:
    return Path(str(resources.files("enrichment_pipeline") / "config" / "waterfall.yaml"))


def load_waterfall(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Waterfall:
    env = os.environ if environ is None else environ
    path = Path(path or env.get("WATERFALL_CONFIG") or default_waterfall_path())
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SettingsError(f"cannot read waterfall config {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: not valid YAML: {exc}") from None
    try:
        return Waterfall.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SettingsError(f"{path}: {where}: {first['msg']}") from None
