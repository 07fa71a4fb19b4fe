"""The journal's durability: every intent waits for the disk before its request leaves; outcomes ride
along with the next durable commit (state/journal.py `_write`)."""

from __future__ import annotations

from reconciler.state.journal import BatchState, TicketEvent
from reconciler.state.sqlite import SqliteJournal


class Watched(SqliteJournal):
    """Records, for each statement, the synchronous level it was committed under (2 FULL, 1 NORMAL)."""

    def __init__(self, path):
        self.seen: list[tuple[str, int]] = []
        super().__init__(path)

    def _execute(self, sql, args, fetch):
        if sql.startswith(("INSERT", "UPDATE")):
            level = self._db.execute("PRAGMA synchronous").fetchone()[0]
            self.seen.append((f"{sql.split()[0]} {args[4] if 'tickets(' in sql else args[0]}", level))
        return super()._execute(sql, args, fetch)


def test_intents_are_fsynced_before_the_request_and_outcomes_are_grouped(tmp_path):
    j = Watched(tmp_path / "journal.db")
    run = j.begin_run("p")
    j.batch_submitting(run, "b1", ("SleeveRegistration/a",), [1])
    j.batch_state("b1", BatchState.SUBMITTED, batch_id=26140410)
    j.batch_state("b1", BatchState.ENDED, batch_id=26140410, detail="Complete")
    j.ticket_event(run, 7, "TradeInstruction/7", TicketEvent.SENDING)
    j.ticket_event(run, 7, "TradeInstruction/7", TicketEvent.IN_DOUBT, "no answer")
    j.ticket_event(run, 7, "TradeInstruction/7", TicketEvent.CONFIRMED, "read back")
    j.ticket_event(run, 8, "TradeInstruction/8", TicketEvent.SENDING)
    levels = {what: level for what, level in j.seen}
    assert j.seen[1] == ("INSERT b1", 2)  # the batch, before it is POSTed
    assert ("UPDATE submitted", 2) in j.seen  # its id, as soon as Orion answers
    assert ("UPDATE ended", 1) in j.seen  # how it ended: an outcome
    assert [level for what, level in j.seen if what == "INSERT sending"] == [2, 2]  # every ticket send
    assert levels["INSERT in-doubt"] == 1 and levels["INSERT confirmed"] == 1  # lost, they leave `sending`: in doubt
    assert j.why_not_send(7) and j.why_not_send(8)  # and nothing of the journal's meaning changed
    j.close()
