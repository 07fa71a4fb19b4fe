"""Stages → the lines that tell a reviewer what apply will do, in the order it will do it.

The same tuple `stages.build_stages` gives the evaluator, so the explanation cannot drift from the
behaviour: a stage that is not in the tuple is neither shown nor run.
"""

from __future__ import annotations

from typing import assert_never

from reconciler.escaping import terminal
from reconciler.plan.stages import Confirm, Gate, OrionWave, Recover, SeiWave, Stage

__all__ = ["explain_stages"]


def _s(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


def explain_stages(stages: tuple[Stage, ...], *, each: bool = True) -> list[str]:
    """The stages in words; `each=False` leaves out the line per submission (an apply log in CI, where
    100,000 registrations would otherwise be 1,000 lines before the first write)."""
    lines = ["Apply runs these stages, in order:"]
    n = 0
    step = 0
    for stage in stages:
        step += 1
        match stage:
            case Recover():
                if stage.busy or stage.notes:
                    lines.append(
                        f"  {step}. recover  {_s(len(stage.busy), 'resource')} in doubt from earlier runs, "
                        "kept out of this plan until the journal and live state resolve them:"
                    )
                    lines += [f"       ! {terminal(a)}: {terminal(why, 300)}" for a, why in stage.busy]
                    lines += [f"       · {terminal(note, 300)}" for note in stage.notes]
                else:
                    lines.append(
                        f"  {step}. recover  resolve any write an earlier run left in doubt (journal), before "
                        "anything is sent"
                    )
            case OrionWave():
                extra = (
                    f", and track {_s(len(stage.track), 'batch', 'batches')} from earlier runs" if stage.track else ""
                )
                lines.append(
                    f"  {step}. Orion    {_s(len(stage.batches), 'batch', 'batches')}, up to "
                    f"{stage.parallelism} at once{extra}; each read fresh just before it is sent (what changed "
                    "since this plan stays unsent), polled to its end, then re-read"
                )
                for sub in stage.batches if each else ():
                    n += 1
                    lines.append(f"     {n:>4}. {sub.method} {sub.path}  {_s(len(sub.items), 'registration')}")
            case Gate():
                lines.append(f"  {step}. gate     SEI requests wait until every Orion batch has ended")
            case SeiWave():
                lines.append(
                    f"  {step}. SEI      {_s(len(stage.tickets), 'request')}, one per missing trade instruction"
                )
                for sub in stage.tickets if each else ():
                    n += 1
                    lines.append(f"     {n:>4}. {sub.method} {sub.path}  {terminal(sub.items[0])}")
            case Confirm():
                lines.append(
                    f"  {step}. confirm  read the tickets sent, and whatever was in doubt, again; exit 0 only if "
                    "everything matches the manifests"
                )
            case _:
                assert_never(stage)
    return lines
