"""Checks of a parking area's lot plan (site.parking_areas[].spaces[]: row/position or polygon),
run with the config's other cross-checks so their messages carry the file's line numbers.

A space is drawn at (row, position), or as its polygon; one without either is drawn after the
placed ones (a plan may be filled in bit by bit). What cannot be drawn is refused: half a place
(a row without a position), both kinds at once, two spaces on one spot.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Loc = tuple[str | int, ...]


def check_layout(area_loc: Loc, area: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    spaces = area.get("spaces")
    taken: dict[tuple[int, int], str] = {}
    for j, sp in enumerate(spaces if isinstance(spaces, list) else []):
        if not isinstance(sp, Mapping):
            continue
        loc: Loc = (*area_loc, "spaces", j)
        row, pos, poly = sp.get("row"), sp.get("position"), sp.get("polygon")
        if (row is None) != (pos is None):
            missing = "position" if pos is None else "row"
            problems.append(
                ((*loc, missing), f"a lot-plan place needs both row and position; add {missing} or remove the other")
            )
            continue
        if row is not None and poly is not None:
            problems.append(
                ((*loc, "polygon"), "give the space either row/position or a polygon on the plan, not both")
            )
            continue
        if isinstance(row, int) and isinstance(pos, int):
            other = taken.get((row, pos))
            if other is not None:
                problems.append(
                    (
                        (*loc, "position"),
                        f"spaces[{j}] has the same row and position as {other}; give one of them another position",
                    )
                )
            else:
                taken[(row, pos)] = f"spaces[{j}]"
    return problems
