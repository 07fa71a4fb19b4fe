"""A loopback fake of the parts of GitHub's REST API that `reconciler github` uses; it records every call."""

from __future__ import annotations

import itertools
import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reconciler.sandbox.server import serve_in_thread

TOKEN = "ghs_canary_token_5d5d5d"


class FakeGitHub:
    def __init__(self):
        self.calls: list[tuple[str, str, dict | None]] = []
        self.comments: dict[int, dict] = {}  # id → {id, issue, body}
        self.issues: dict[int, dict] = {}
        self.statuses: list[dict] = []
        self.pulls: dict[str, list[dict]] = {}  # commit sha → pulls
        self.runs: dict[str, list[dict]] = {}  # head sha → runs
        self.opened: dict[int, dict] = {}  # number → pull requests opened through the API
        self.labels: dict[int, list[str]] = {}  # issue/PR number → label names
        self.authors: dict[int, str] = {}  # PR number → its author's login (GET pulls/N)
        self.reviews: dict[int, list[dict]] = {}  # PR number → reviews, oldest first
        self._ids = itertools.count(1000)
        self.url, self._server, self._thread = serve_in_thread(Starlette(routes=self._routes()))

    def stop(self):
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def _routes(self):
        async def record(request: Request):
            body = await request.body()
            payload = json.loads(body) if body else None
            self.calls.append((request.method, request.url.path, payload))
            if request.headers.get("authorization") != f"Bearer {TOKEN}":
                return JSONResponse({"message": "Bad credentials"}, status_code=401), payload
            return None, payload

        async def issue_comments(request: Request):
            denied, payload = await record(request)
            if denied:
                return denied
            n = int(request.path_params["n"])
            if request.method == "POST":
                c = {"id": next(self._ids), "issue": n, "body": payload["body"]}
                self.comments[c["id"]] = c
                return JSONResponse(c, status_code=201)
            rows = [c for c in self.comments.values() if c["issue"] == n]
            page, per = int(request.query_params.get("page", 1)), int(request.query_params.get("per_page", 30))
            return JSONResponse(rows[(page - 1) * per : page * per])

        async def comment(request: Request):
            denied, payload = await record(request)
            if denied:
                return denied
            cid = int(request.path_params["cid"])
            if request.method == "DELETE":
                self.comments.pop(cid)
                return Response(status_code=204)
            self.comments[cid]["body"] = payload["body"]
            return JSONResponse(self.comments[cid])

        async def status(request: Request):
            denied, payload = await record(request)
            if denied:
                return denied
            self.statuses.append({"sha": request.path_params["sha"], **payload})
            return JSONResponse(payload, status_code=201)

        async def pulls(request: Request):
            denied, _ = await record(request)
            return denied or JSONResponse(self.pulls.get(request.path_params["sha"], []))

        async def runs(request: Request):
            denied, _ = await record(request)
            return denied or JSONResponse({"workflow_runs": self.runs.get(request.query_params.get("head_sha"), [])})

        async def issues(request: Request):
            denied, payload = await record(request)
            if denied:
                return denied
            if request.method == "POST":
                n = len(self.issues) + 1
                self.issues[n] = {"number": n, "state": "open", **payload}
                return JSONResponse(self.issues[n], status_code=201)
            label = request.query_params.get("labels")
            return JSONResponse([i for i in self.issues.values() if i["state"] == "open" and label in i["labels"]])

        async def issue(request: Request):
            denied, payload = await record(request)
            if denied:
                return denied
            n = int(request.path_params["n"])
            self.issues[n].update(payload)
            return JSONResponse(self.issues[n])

        async def labels(request: Request):
            denied, payload = await record(request)
            if denied:
                return denied
            n = int(request.path_params["n"])
            have = self.labels.setdefault(n, [])
            if request.method == "POST":
                have += [x for x in payload["labels"] if x not in have]
            return JSONResponse([{"name": x} for x in have])

        async def label(request: Request):
            denied, _ = await record(request)
            if denied:
                return denied
            n, name = int(request.path_params["n"]), request.path_params["name"]
            self.labels[n] = [x for x in self.labels.get(n, []) if x != name]
            return JSONResponse([{"name": x} for x in self.labels[n]])

        async def repo_pulls(request: Request):
            denied, payload = await record(request)
            if denied:
                return denied
            if request.method == "POST":
                n = 500 + len(self.opened)
                self.opened[n] = {
                    "number": n,
                    "state": "open",
                    "html_url": f"https://github.test/pull/{n}",
                    **payload,
                    "head": {"ref": payload["head"]},
                }
                return JSONResponse(self.opened[n], status_code=201)
            owner, _, ref = (request.query_params.get("head") or "").partition(":")
            return JSONResponse([p for p in self.opened.values() if p["state"] == "open" and p["head"]["ref"] == ref])

        async def reviews(request: Request):
            denied, _ = await record(request)
            if denied:
                return denied
            rows = self.reviews.get(int(request.path_params["n"]), [])
            page, per = int(request.query_params.get("page", 1)), int(request.query_params.get("per_page", 30))
            return JSONResponse(rows[(page - 1) * per : page * per])

        async def repo_pull(request: Request):
            denied, payload = await record(request)
            if denied:
                return denied
            n = int(request.path_params["n"])
            if request.method == "GET":
                if n not in self.authors:
                    return JSONResponse({"message": "Not Found"}, status_code=404)
                return JSONResponse({"number": n, "state": "open", "user": {"login": self.authors[n]}})
            pr = self.opened[n]
            pr.update(payload)
            return JSONResponse(pr)

        r = "/repos/{owner}/{repo}"
        return [
            Route(f"{r}/issues/{{n:int}}/comments", issue_comments, methods=["GET", "POST"]),
            Route(f"{r}/issues/comments/{{cid:int}}", comment, methods=["PATCH", "DELETE"]),
            Route(f"{r}/statuses/{{sha}}", status, methods=["POST"]),
            Route(f"{r}/commits/{{sha}}/pulls", pulls, methods=["GET"]),
            Route(f"{r}/actions/runs", runs, methods=["GET"]),
            Route(f"{r}/issues", issues, methods=["GET", "POST"]),
            Route(f"{r}/issues/{{n:int}}", issue, methods=["PATCH"]),
            Route(f"{r}/issues/{{n:int}}/labels", labels, methods=["GET", "POST"]),
            Route(f"{r}/issues/{{n:int}}/labels/{{name:path}}", label, methods=["DELETE"]),
            Route(f"{r}/pulls", repo_pulls, methods=["GET", "POST"]),
            Route(f"{r}/pulls/{{n:int}}", repo_pull, methods=["GET", "PATCH"]),
            Route(f"{r}/pulls/{{n:int}}/reviews", reviews, methods=["GET"]),
        ]
