"""The plan comment on a pull request, as a library over any client with GitHub's shape (here, a dict)."""

from __future__ import annotations

from reconciler.github.comments import label_pull, post_plan_comments, status_for_exit_code
from reconciler.github.drift import DRIFT_LABEL, sync_drift_issue
from reconciler.github.runs import find_plan_run
from reconciler.render.markdown import MARKER


class Board:
    """A pull request's comments, labels and issues in memory: the calls the GitOps code makes."""

    def __init__(self):
        self.comments_by_id: dict[int, str] = {1: "a reviewer's comment"}
        self.labels: set[str] = set()
        self.issues: list[dict] = []

    def comments(self, number):
        return [{"id": i, "body": b} for i, b in sorted(self.comments_by_id.items())]

    def create_comment(self, number, body):
        self.comments_by_id[max(self.comments_by_id) + 1] = body

    def update_comment(self, comment_id, body):
        self.comments_by_id[comment_id] = body

    def delete_comment(self, comment_id):
        del self.comments_by_id[comment_id]

    def issue_labels(self, number):
        return [{"name": n} for n in self.labels]

    def add_labels(self, number, names):
        self.labels |= set(names)

    def remove_label(self, number, name):
        self.labels.discard(name)

    def open_issues(self, label):
        return [i for i in self.issues if i["state"] == "open" and label in i["labels"]]

    def create_issue(self, title, body, label):
        self.issues.append(
            {"number": len(self.issues) + 1, "title": title, "body": body, "labels": [label], "state": "open"}
        )
        return self.issues[-1]

    def update_issue(self, number, **fields):
        self.issues[number - 1].update(fields)


def test_our_comments_are_updated_in_place_split_and_trimmed_and_others_are_left_alone():
    board = Board()
    assert post_plan_comments(board, 7, [f"{MARKER} one", f"{MARKER} two"])["created"] == 2
    assert post_plan_comments(board, 7, [f"{MARKER} one, revised"]) == {
        "created": 0,
        "updated": 1,
        "deleted": 1,
        "unchanged": 0,
    }
    assert sorted(board.comments_by_id.values()) == [f"{MARKER} one, revised", "a reviewer's comment"]


def test_exactly_one_plan_label_and_a_status_per_exit_code():
    board = Board()
    label_pull(board, 7, 2)
    assert label_pull(board, 7, 0) == "reconciler: no changes" and board.labels == {"reconciler: no changes"}
    assert status_for_exit_code(2, "Plan: 1 to create") == ("success", "1 to create")
    assert status_for_exit_code(1, "")[0] == "failure"


def test_the_drift_issue_opens_updates_and_closes_with_the_drift():
    board = Board()
    assert sync_drift_issue(board, "drift body", True) == "opened issue #1"
    assert sync_drift_issue(board, "more drift", True) == "updated issue #1"
    assert sync_drift_issue(board, "clean", False) == "closed issue #1: no drift"
    assert board.issues[0]["state"] == "closed" and DRIFT_LABEL in board.issues[0]["labels"]


def test_the_plan_a_merge_applies_is_the_newest_successful_run_of_the_merged_head():
    class Runs:
        def pulls_for_commit(self, sha):
            return [{"number": 3, "merged_at": "x", "head": {"sha": "h"}}]

        def runs(self, head):
            return [
                {"id": 1, "conclusion": "success", "created_at": "1", "name": "reconciler"},
                {"id": 2, "conclusion": "success", "created_at": "2", "name": "reconciler"},
                {"id": 3, "conclusion": "failure", "created_at": "3", "name": "reconciler"},
            ]

    found = find_plan_run(Runs(), "merge-sha", "reconciler")
    assert (found.pr, found.head_sha, found.run_id) == (3, "h", 2)
