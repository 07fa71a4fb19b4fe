"""State that outlives a run: where a workspace is, its journal and lock, and claims across workspaces.

workspace.py  which workspace a run belongs to, and where its state lives (found from the manifests)
backend.py    SQLite beside the repository (default) or PostgreSQL: one interface for both
journal.py    the write-ahead journal: every write journaled before it is sent
lock.py       one apply per workspace (flock), released by the kernel with its holder
claims.py     a registration or ticket in flight belongs to one workspace at a time
postgres.py   the shared backend (the only psycopg home): journal, lease, claims
"""

from reconciler.state.backend import Backend, open_backend
from reconciler.state.workspace import Workspace, workspace_for

__all__ = ["Backend", "Workspace", "open_backend", "workspace_for"]
