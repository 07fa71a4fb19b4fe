"""Settings: reconciler.yaml beside the manifests, then RECONCILER_* and vendor variables, then flags.

Credentials come only from the environment (or `<NAME>_FILE` files named there), never from
reconciler.yaml, manifests or plans. They are held as `Secret`, whose repr and str are masked, and
every Secret's value is registered with `secret_values()` so that error messages can be redacted.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from reconciler.config.durations import parse_duration
from reconciler.config.ignore import IgnoreRule, ignore_rule
from reconciler.config.proxy import ProxySettings, proxy_settings
from reconciler.config.urls import mask_url
from reconciler.errors import ConfigError, ManifestError
from reconciler.fields import ENVIRONMENTS, ORION_BATCH_LIMIT, ORION_READ_CHUNK, SETTLE_FLOOR_SECONDS
from reconciler.secret import Secret

__all__ = [
    "CONFIG_FILE",
    "OrionSettings",
    "SeiSettings",
    "Secret",
    "Settings",
    "load_settings",
    "parse_now",
    "plan_identity",
]

CONFIG_FILE = "reconciler.yaml"


@dataclass(frozen=True)
class OrionSettings:
    base_url: str = ""
    token: Secret | None = None
    username: str | None = None
    password: Secret | None = None
    client_id: str | None = None
    client_secret: Secret | None = None
    ca_bundle: str | None = None  # ORION_CA_BUNDLE / orion.caBundle: whom to trust (a proxy's or a test CA)


@dataclass(frozen=True)
class SeiSettings:
    base_url: str = ""
    token: Secret | None = None
    app_key: Secret | None = None
    app_secret: Secret | None = None
    username: str | None = None
    password: Secret | None = None
    client_cert: str | None = None
    client_key: str | None = None
    ca_bundle: str | None = None


@dataclass(frozen=True)
class Settings:
    orion: OrionSettings = OrionSettings()
    sei: SeiSettings = SeiSettings()
    batch_size: int = ORION_BATCH_LIMIT
    parallelism: int = 4
    read_chunk: int = ORION_READ_CHUNK
    read_workers: int = 4
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    write_timeout: float = 60.0
    pool_timeout: float = 30.0
    request_deadline: float = 300.0  # one request, all retries included
    max_attempts: int = 5
    retry_after_cap: float = 120.0
    poll_timeout: float = 1800.0  # how long apply waits for one Orion batch
    # How long after an ambiguous write the server may still commit it: read-backs spread over this
    # window must all show a ticket absent before it may be sent again, and a lost batch must be
    # missing from Orion's BatchProcessing list this long. None: the client's own write time-out
    # (read + write time-outs), but never less than the environment's floor (fields.SETTLE_FLOOR_SECONDS):
    # how long a vendor may hold a request is the vendor's, not the client's time-outs.
    settle_window: float | None = None
    # RECONCILER_BACKEND_URL: where the journal and lock live when they must outlive a CI runner.
    backend_url: Secret | None = None
    # production | test | sandbox | build: fills the vendors' documented base URLs (explicit URLs win)
    environment: str | None = None
    # age recipients every uploadable file is encrypted to, and the identity that decrypts them
    plan_recipients: tuple[str, ...] = ()
    plan_identity: Secret | None = None
    # RECONCILER_NOW: the moment `plan` evaluates change windows at (what-if); apply refuses it
    now: dt.datetime | None = None
    plan_expiry_hours: float = 24.0
    ignore: tuple[IgnoreRule, ...] = ()
    # RECONCILER_WORKSPACE: the folder that holds workspaces' state; None is `.reconciler` beside the
    # manifests' repository root (state/workspace.py). A relative one is taken from that root, never the cwd.
    workspace: Path | None = None
    # RECONCILER_CLAIMS_DIR: where the local backend keeps the claims that stop two workspaces from
    # sending one registration or ticket at once; None: the user's state folder (state/claims.py).
    claims_dir: Path | None = None
    # HTTPS_PROXY / NO_PROXY, or `proxy:` in reconciler.yaml (config/proxy.py); None: connect directly
    proxy: ProxySettings | None = None

    @property
    def settle(self) -> float:
        if self.settle_window is not None:
            return self.settle_window
        floor = SETTLE_FLOOR_SECONDS.get(self.environment, SETTLE_FLOOR_SECONDS[None])
        return max(self.read_timeout + self.write_timeout, floor)

    def with_overrides(self, **kw: Any) -> Settings:
        return replace(self, **{k: v for k, v in kw.items() if v is not None})


# reconciler.yaml key → (Settings attribute, type). Credentials are deliberately absent.
_FILE_KEYS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "batchSize": ("batch_size", int),
    "parallelism": ("parallelism", int),
    "readChunk": ("read_chunk", int),
    "readWorkers": ("read_workers", int),
    "pollTimeout": ("poll_timeout", parse_duration),
    "planExpiryHours": ("plan_expiry_hours", float),
    "maxAttempts": ("max_attempts", int),
    "retryAfterCap": ("retry_after_cap", parse_duration),
    "requestDeadline": ("request_deadline", parse_duration),
    "settleWindow": ("settle_window", parse_duration),
}
_TIMEOUT_KEYS = {"connect": "connect_timeout", "read": "read_timeout", "write": "write_timeout", "pool": "pool_timeout"}
_ENV_KEYS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "RECONCILER_BATCH_SIZE": ("batch_size", int),
    "RECONCILER_PARALLELISM": ("parallelism", int),
    "RECONCILER_READ_CHUNK": ("read_chunk", int),
    "RECONCILER_POLL_TIMEOUT": ("poll_timeout", parse_duration),
    "RECONCILER_PLAN_EXPIRY_HOURS": ("plan_expiry_hours", float),
    "RECONCILER_MAX_ATTEMPTS": ("max_attempts", int),
    "RECONCILER_REQUEST_DEADLINE": ("request_deadline", parse_duration),
    "RECONCILER_RETRY_AFTER_CAP": ("retry_after_cap", parse_duration),
    "RECONCILER_SETTLE_WINDOW": ("settle_window", parse_duration),
    "RECONCILER_READ_TIMEOUT": ("read_timeout", parse_duration),
    "RECONCILER_WRITE_TIMEOUT": ("write_timeout", parse_duration),
    "RECONCILER_CONNECT_TIMEOUT": ("connect_timeout", parse_duration),
}
_SECRET_WORDS = ("token", "password", "secret", "key", "credential")


def load_settings(
    paths: tuple[str, ...] | list[str] = (), env: Mapping[str, str] | None = None, config_file: str | None = None
) -> Settings:
    """Settings for a run over `paths`: file, then environment. Flags are applied by the caller."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    file = Path(config_file) if config_file else _find_config(paths)
    orion_file: dict[str, Any] = {}
    sei_file: dict[str, Any] = {}
    proxy_file: Any = None
    if file is not None:
        data = _read_config(file)
        orion_file, sei_file = data.pop("orion", {}) or {}, data.pop("sei", {}) or {}
        proxy_file = data.pop("proxy", None)
        values.update(_parse_file(file, data))
    values["proxy"] = proxy_settings(env, proxy_file, str(file))
    for name, (attr, typ) in _ENV_KEYS.items():
        if env.get(name):
            values[attr] = _convert(env[name], typ, name)
    if env.get("RECONCILER_WORKSPACE"):
        values["workspace"] = Path(env["RECONCILER_WORKSPACE"])
    if env.get("RECONCILER_CLAIMS_DIR"):
        values["claims_dir"] = Path(env["RECONCILER_CLAIMS_DIR"])
    if env.get("RECONCILER_ENVIRONMENT"):
        values["environment"] = env["RECONCILER_ENVIRONMENT"]
    environment = values.get("environment")
    if environment is not None and environment not in ENVIRONMENTS:
        raise ConfigError(
            f"environment {environment!r} is not one of {', '.join(ENVIRONMENTS)} "
            "(reconciler.yaml `environment:` or RECONCILER_ENVIRONMENT)"
        )
    orion_default, sei_default = ENVIRONMENTS.get(environment, ("", "")) if environment else ("", "")
    orion = OrionSettings(
        base_url=env.get("ORION_BASE_URL") or _url(orion_file, file, "orion") or orion_default,
        token=_secret(env, "ORION_TOKEN"),
        username=env.get("ORION_USERNAME"),
        password=_secret(env, "ORION_PASSWORD"),
        client_id=env.get("ORION_CLIENT_ID"),
        client_secret=_secret(env, "ORION_CLIENT_SECRET"),
        ca_bundle=env.get("ORION_CA_BUNDLE") or _section(orion_file, "caBundle") or None,
    )
    sei = SeiSettings(
        base_url=env.get("SEI_BASE_URL") or _url(sei_file, file, "sei") or sei_default,
        token=_secret(env, "SEI_TOKEN"),
        app_key=_secret(env, "SEI_APP_KEY"),
        app_secret=_secret(env, "SEI_APP_SECRET"),
        username=env.get("SEI_USERNAME"),
        password=_secret(env, "SEI_PASSWORD"),
        client_cert=env.get("SEI_CLIENT_CERT") or None,
        client_key=env.get("SEI_CLIENT_KEY") or None,
        ca_bundle=env.get("SEI_CA_BUNDLE") or _section(sei_file, "caBundle") or None,
    )
    if env.get("RECONCILER_PLAN_RECIPIENTS"):
        from reconciler.sealing import parse_recipients

        values["plan_recipients"] = parse_recipients(
            env["RECONCILER_PLAN_RECIPIENTS"].replace(",", " ").split(), "RECONCILER_PLAN_RECIPIENTS"
        )
    values["plan_identity"] = _secret(env, "RECONCILER_PLAN_IDENTITY")
    if env.get("RECONCILER_NOW"):
        values["now"] = parse_now(env["RECONCILER_NOW"], "RECONCILER_NOW")
    backend = _secret(env, "RECONCILER_BACKEND_URL")
    if backend is not None and urlsplit(backend.reveal()).scheme not in ("postgresql", "postgres"):
        raise ConfigError(
            f"RECONCILER_BACKEND_URL={mask_url(backend.reveal())!r}: only postgresql:// is supported "
            "(unset it for the embedded SQLite journal under .reconciler/)"
        )
    settings = Settings(orion=orion, sei=sei, backend_url=backend, **values)
    check_settings(settings)
    return settings


def parse_now(value: str, where: str) -> dt.datetime:
    """An ISO 8601 moment with its UTC offset: a wall-clock time without one would be ambiguous."""
    try:
        when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as e:
        raise ConfigError(f"{where}={value!r} is not an ISO 8601 date and time (e.g. 2026-12-07T09:00:00-05:00)") from e
    if when.tzinfo is None:
        raise ConfigError(f"{where}={value!r} needs a UTC offset (e.g. -05:00 or Z)")
    return when


def plan_identity(env: Mapping[str, str] | None = None) -> Secret | None:
    """RECONCILER_PLAN_IDENTITY (or _FILE): needed before settings, to read an encrypted plan's paths."""
    return _secret(os.environ if env is None else env, "RECONCILER_PLAN_IDENTITY")


def check_settings(s: Settings) -> None:
    if not 1 <= s.batch_size <= ORION_BATCH_LIMIT:
        raise ConfigError(
            f"batchSize {s.batch_size} must be between 1 and {ORION_BATCH_LIMIT} (Orion refuses larger batches)"
        )
    if not 1 <= s.read_chunk <= ORION_READ_CHUNK:
        raise ConfigError(f"readChunk {s.read_chunk} must be between 1 and {ORION_READ_CHUNK}")
    if s.parallelism < 1 or s.read_workers < 1:
        raise ConfigError("parallelism and readWorkers must be at least 1")
    if s.settle <= s.read_timeout:
        raise ConfigError(
            f"settleWindow {s.settle:g} s must be longer than the read time-out ({s.read_timeout:g} s): "
            "a server may commit a write up to that long after the client gave up on it"
        )


def _secret(env: Mapping[str, str], name: str) -> Secret | None:
    if env.get(name):
        return Secret(env[name])
    path = env.get(f"{name}_FILE")
    if path:
        try:
            return Secret(Path(path).read_text(encoding="utf-8").strip())
        except OSError as e:
            raise ConfigError(f"{name}_FILE: cannot read the file it names ({e.strerror})") from e
    return None


def _find_config(paths: tuple[str, ...] | list[str]) -> Path | None:
    candidates = []
    for p in paths or ("manifests",):
        base = Path(p)
        base = base if base.is_dir() else base.parent
        candidates += [base / CONFIG_FILE, base.parent / CONFIG_FILE]
    candidates.append(Path(CONFIG_FILE))
    for c in candidates:
        if c.is_file():
            return c
    return None


def _read_config(file: Path) -> dict[str, Any]:
    from reconciler.yamldoc import load_documents  # the same hardened YAML as manifests

    try:
        docs, diags = load_documents(file.read_bytes(), str(file))
    except OSError as e:
        raise ConfigError(f"{file}: cannot read ({e.strerror})") from e
    if diags:
        raise ManifestError(diags)
    if not docs or docs[0].data is None:
        return {}
    if len(docs) > 1 or not isinstance(docs[0].data, dict):
        raise ConfigError(f"{file}: must hold one mapping of settings")
    _refuse_secrets(file, docs[0].data)
    return dict(docs[0].data)


def _refuse_secrets(file: Path, data: Any, path: str = "") -> None:
    if isinstance(data, dict):
        for k, v in data.items():
            if any(w in str(k).lower() for w in _SECRET_WORDS) and k not in ("ignore",):
                raise ConfigError(
                    f"{file}: '{path}{k}' looks like a credential; credentials come only from the "
                    f"environment (e.g. ORION_TOKEN) or files it names (ORION_TOKEN_FILE)"
                )
            _refuse_secrets(file, v, f"{path}{k}.")


def _url(section: dict, file: Path | None, name: str) -> str:
    if not isinstance(section, dict):
        raise ConfigError(f"{file}: '{name}' must be a mapping with baseUrl")
    unknown = set(section) - {"baseUrl", "caBundle"}
    if unknown:
        raise ConfigError(
            f"{file}: unknown key(s) under {name}: {', '.join(sorted(unknown))} (known: baseUrl, caBundle)"
        )
    return str(section.get("baseUrl") or "")


def _section(section: dict, key: str) -> str:
    """A vendor section's value (already checked to be a mapping by `_url`), as text."""
    return str(section.get(key) or "") if isinstance(section, dict) else ""


def _parse_file(file: Path, data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in _FILE_KEYS:
            attr, typ = _FILE_KEYS[key]
            out[attr] = _convert(value, typ, f"{file}: {key}")
        elif key == "timeouts" and isinstance(value, dict):
            for k, v in value.items():
                if k not in _TIMEOUT_KEYS:
                    raise ConfigError(f"{file}: unknown timeout '{k}' (use {', '.join(_TIMEOUT_KEYS)})")
                out[_TIMEOUT_KEYS[k]] = _convert(v, parse_duration, f"{file}: timeouts.{k}")
        elif key == "ignore":
            out["ignore"] = tuple(ignore_rule(f"{file}: ignore[{i}]", r) for i, r in enumerate(value or []))
        elif key == "workspace":
            out["workspace"] = Path(str(value))
        elif key == "environment":
            out["environment"] = str(value)
        elif key == "plan_recipients":
            from reconciler.sealing import parse_recipients

            if not isinstance(value, list):
                raise ConfigError(f"{file}: plan_recipients must be a list of age recipients (age1…)")
            out["plan_recipients"] = parse_recipients([str(v) for v in value], f"{file}: plan_recipients")
        else:
            known = [*_FILE_KEYS, "timeouts", "ignore", "orion", "sei", "workspace", "environment", "plan_recipients"]
            raise ConfigError(f"{file}: unknown setting '{key}' (known: {', '.join(sorted(known))})")
    return out


def _convert(value: Any, typ: Callable[[Any], Any], where: str) -> Any:
    try:
        return typ(value)
    except (TypeError, ValueError) as e:
        if typ is parse_duration:
            raise ConfigError(f"{where}: {value!r} is not a duration (seconds, or e.g. 3s, 500ms, 5m, 1h)") from e
        raise ConfigError(f"{where}: {value!r} is not a valid {typ.__name__}") from e
