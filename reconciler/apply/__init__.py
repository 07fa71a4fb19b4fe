"""Apply: a plan carried out exactly once, with the journal as the authority.

run.py        one apply from start to finish: refusals, lock, recovery, the plan (or a saved plan's
              receipt), policies, approval, signals, the report
evaluator.py  walks the plan's stages; context.py is what its waves share
batches.py    the Orion wave: batches claimed, journaled, sent, polled, classified per item
tickets.py    the gate and the SEI wave: one POST per ticket, never two
recovery.py   evidence for writes in doubt (BatchProcessing list, read-backs over a settle window)
outcomes.py   what a write's result means, as pure functions tested as tables
"""

from reconciler.apply.run import ApplyRequest, run_apply

__all__ = ["ApplyRequest", "run_apply"]
