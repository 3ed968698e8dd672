"""The differences between two versions of a taxonomy: added, removed, deprecated, renamed, moved, edited."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.data.concepts import Concept


@dataclass
class TaxonomyDiff:
    """What an update changes, by stable id. Names are those of the version where each id lives.

    ``removed``: ids the new version no longer has (kept in history when applied); ``deprecated``: ids the
    new version marks deprecated (newly), with the replacement it names; ``renamed``: same id, a new
    preferred name; ``moved``: the parents changed; ``edited``: alternative names or description changed.
    """

    added: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)
    deprecated: list[dict[str, Any]] = field(default_factory=list)
    renamed: list[dict[str, Any]] = field(default_factory=list)
    moved: list[dict[str, Any]] = field(default_factory=list)
    edited: list[dict[str, Any]] = field(default_factory=list)

    KINDS = ("added", "removed", "deprecated", "renamed", "moved", "edited")

    def counts(self) -> dict[str, int]:
        return {k: len(getattr(self, k)) for k in self.KINDS}

    @property
    def empty(self) -> bool:
        return not any(self.counts().values())

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.KINDS}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TaxonomyDiff:
        return cls(**{k: list(values.get(k, [])) for k in cls.KINDS})


def diff_taxonomies(current: dict[str, Concept], new: dict[str, Concept]) -> TaxonomyDiff:
    """Compare the current concepts (not removed) with a new version's, by id.

    A concept deprecated in both versions is unchanged; one the new version deprecates is listed as
    deprecated (and not also as edited or moved, so that each id is counted once per kind that matters).
    """
    def name(concepts: dict[str, Concept], cid: str) -> str:
        return concepts[cid].pref_label if cid in concepts else cid

    out = TaxonomyDiff()
    for cid in sorted(set(new) - set(current), key=lambda i: new[i].pref_label.lower()):
        c = new[cid]
        out.added.append({"id": cid, "label": c.pref_label, "parents": [name(new, p) for p in c.parents]})
    for cid in sorted(set(current) - set(new), key=lambda i: current[i].pref_label.lower()):
        out.removed.append({"id": cid, "label": current[cid].pref_label})
    for cid in sorted(set(current) & set(new), key=lambda i: new[i].pref_label.lower()):
        old, c = current[cid], new[cid]
        if c.deprecated and not old.deprecated:
            out.deprecated.append({"id": cid, "label": c.pref_label, "replaced_by": c.replaced_by,
                                   "replacement": name(new, c.replaced_by) if c.replaced_by else None})
            continue
        if c.pref_label != old.pref_label:
            out.renamed.append({"id": cid, "old": old.pref_label, "new": c.pref_label})
        if sorted(c.parents) != sorted(old.parents):
            out.moved.append({"id": cid, "label": c.pref_label,
                              "old_parents": sorted(name(current, p) for p in old.parents),
                              "new_parents": sorted(name(new, p) for p in c.parents)})
        changed = [f for f, a, b in (("alternative names", sorted(old.alt_labels), sorted(c.alt_labels)),
                                     ("description", old.description or "", c.description or ""),
                                     ("deprecation lifted", old.deprecated, c.deprecated)) if a != b]
        if changed:
            out.edited.append({"id": cid, "label": c.pref_label, "changed": changed})
    return out
