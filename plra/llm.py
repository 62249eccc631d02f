"""The one OpenAI-compatible client every consumer uses (app, agent, eval helpers, data synth).

Timeouts, bounded retries with exponential backoff (the openai SDK's own), streaming, and a clear
one-line error within about a second when nothing listens at the endpoint.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from plra.errors import PlraError
from plra.paths import REPO_ROOT
from plra.settings import ProfileSettings

SERVE_STATE_DIR = REPO_ROOT / ".plra" / "serve"
STREAM_SLACK = 2  # pieces per token of budget a stream may send before it is cut (servers split differently)
PROBE_TIMEOUT_S = 1.0


@dataclass
class LLMSettings:
    base_url: str
    model: str | None = None  # None: the model `plra serve` recorded, else the first of /v1/models
    api_key: str = "plra"  # local servers accept any key; the SDK insists on one
    timeout_s: float = 120.0  # the allowance for reading the prompt and the first token
    # The SDK's retries would repeat a timed-out request with the same wait, tripling it unannounced ("did not
    # answer within 120 s" after 369 s); callers that want another try make it themselves, with less.
    max_retries: int = 0
    temperature: float = 0.2
    max_tokens: int = 512
    seconds_per_token: float = 0.0  # added to timeout_s for each token asked for (slow CPU servers)

    def timeout_for(self, max_tokens: int) -> float:
        """The wait for one request: a budget of many tokens on a slow server needs time in proportion."""
        return self.timeout_s + self.seconds_per_token * max_tokens


class LLMTimeout(PlraError):
    """The server took longer than the request's timeout (a caller may retry with a smaller budget)."""


def normalize_base_url(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


def served_model(base_url: str) -> str | None:
    """The model name `plra serve` recorded for the server at base_url, if it started it."""
    port = urlparse(base_url).port
    state = SERVE_STATE_DIR / f"{port}.json"
    try:
        return json.loads(state.read_text())["model_name"]
    except (OSError, ValueError, KeyError):
        return None


def probe(base_url: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Fail fast, with one line, when nothing accepts connections at the endpoint."""
    parsed = urlparse(base_url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return
    except OSError as err:
        raise PlraError(
            f"nothing answers at {base_url} ({err.strerror or err}); start a server with `plra serve` "
            f"or pass --endpoint URL"
        ) from None


class LLMClient:
    def __init__(self, settings: LLMSettings) -> None:
        import openai

        self.settings = settings
        self.base_url = normalize_base_url(settings.base_url)
        self._openai = openai
        self.client = openai.OpenAI(
            base_url=self.base_url,
            api_key=settings.api_key,
            timeout=settings.timeout_s,
            max_retries=settings.max_retries,
        )
        self._model = settings.model

    @property
    def name(self) -> str:
        """What the answer says wrote it: the model the server was asked for, else the server."""
        return self._model or self.base_url

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> LLMClient:
        return cls(LLMSettings(base_url=url, **overrides))

    @classmethod
    def for_profile(cls, url: str, profile: ProfileSettings, **overrides: Any) -> LLMClient:
        """A client whose timeouts and token budget are the profile's (a CPU profile waits longer)."""
        settings = {
            # The SDK would repeat a timed-out request with the same budget, tripling the wait on a slow
            # CPU while the server still works on the abandoned one; callers retry with less instead.
            "max_retries": 0,
            "timeout_s": profile.client_timeout_s,
            "seconds_per_token": profile.client_seconds_per_token,
            "max_tokens": profile.answer_max_tokens,
        }
        return cls(LLMSettings(base_url=url, **(settings | overrides)))

    def models(self) -> list[str]:
        probe(self.base_url)
        return [m.id for m in self._call(self.client.models.list).data]

    @property
    def model(self) -> str:
        if self._model is None:
            self._model = served_model(self.base_url) or next(iter(self.models()), None)
            if self._model is None:
                raise PlraError(f"the server at {self.base_url} lists no model: pass the model name")
        return self._model

    def _call(self, fn, *args, timeout: float | None = None, **kwargs):
        timeout = timeout or self.settings.timeout_s
        try:
            return fn(*args, timeout=timeout, **kwargs)
        except self._openai.APITimeoutError:
            raise LLMTimeout(f"{self.base_url} did not answer within {timeout:.0f} s") from None
        except self._openai.APIConnectionError as err:
            raise PlraError(f"lost the connection to {self.base_url}: {err}") from None
        except self._openai.APIStatusError as err:
            raise PlraError(f"{self.base_url} answered {err.status_code}: {str(err)[:200]}") from None
        except ValueError:  # the body was no JSON at all
            raise PlraError(f"{self.base_url} answered, but not with an OpenAI chat completion") from None

    def _request(self, messages: list[dict[str, str]], stream: bool, **gen: Any):
        probe(self.base_url)
        max_tokens = gen.pop("max_tokens", None) or self.settings.max_tokens
        params = {
            "model": self.model,
            "messages": messages,
            "temperature": gen.pop("temperature", self.settings.temperature),
            "max_tokens": max_tokens,
            **gen,
        }
        timeout = self.settings.timeout_for(max_tokens)
        return self._call(self.client.chat.completions.create, stream=stream, timeout=timeout, **params)

    def deadline_for(self, gen: dict[str, Any]) -> float:
        """Seconds the whole call may take: the first token's allowance plus the budget's tokens."""
        return self.settings.timeout_for(gen.get("max_tokens") or self.settings.max_tokens)

    def chat(self, messages: list[dict[str, str]], **gen: Any) -> str:
        """The whole answer at once, within the call's deadline as a whole (a server that trickles a byte a
        second keeps each read alive, not the call)."""
        deadline = self.deadline_for(gen)
        outcome: queue.Queue = queue.Queue(maxsize=1)

        def work() -> None:
            try:
                outcome.put((True, self._request(messages, stream=False, **gen)))
            except BaseException as err:  # handed to the caller's thread
                outcome.put((False, err))

        threading.Thread(target=work, daemon=True).start()  # daemon: a hung request never holds the exit
        try:
            ok, value = outcome.get(timeout=deadline)
        except queue.Empty:
            raise LLMTimeout(f"{self.base_url} did not finish its answer within {deadline:.0f} s") from None
        if not ok:
            raise value
        try:
            return value.choices[0].message.content or ""
        except (AttributeError, IndexError, TypeError):
            raise PlraError(f"{self.base_url} answered, but not with an OpenAI chat completion") from None

    def stream(self, messages: list[dict[str, str]], **gen: Any) -> Iterator[str]:
        """The answer as it is generated, piece by piece (server-sent events); it ends at the token budget (a
        piece is about a token) or at the call's deadline, whichever comes first."""
        deadline = time.monotonic() + self.deadline_for(gen)
        budget = gen.get("max_tokens") or self.settings.max_tokens
        chunks = self._request(messages, stream=True, **gen)
        pieces = 0
        try:
            for chunk in chunks:
                if chunk.choices and chunk.choices[0].delta and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content
                    pieces += 1
                if pieces >= budget * STREAM_SLACK:
                    return  # a server that ignores max_tokens
                if time.monotonic() > deadline:
                    raise LLMTimeout(
                        f"the stream from {self.base_url} was still going at the call's deadline "
                        f"({self.deadline_for(gen):.0f} s)"
                    )
        except self._openai.APITimeoutError:
            raise LLMTimeout(f"the stream from {self.base_url} stalled past the request's timeout") from None
        except self._openai.APIError as err:
            raise PlraError(f"the stream from {self.base_url} broke off: {err}") from None
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()


def default_endpoint() -> str | None:
    """PLRA_ENDPOINT, else a server `plra serve` started and recorded, else None."""
    if os.environ.get("PLRA_ENDPOINT"):
        return os.environ["PLRA_ENDPOINT"]
    states = sorted(SERVE_STATE_DIR.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for state in states:
        try:
            data = json.loads(state.read_text())
            if all(pid_alive(proc["pid"]) for proc in data["processes"]):  # a record of a dead server is no endpoint
                return data["url"]
        except (OSError, ValueError, KeyError):
            continue
    return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_ready(base_url: str, deadline_s: float, alive=lambda: True, interval_s: float = 1.0) -> float:
    """Poll /v1/models until the server answers; return seconds waited. Raises PlraError at the deadline
    or as soon as `alive()` says the server process has exited."""
    import urllib.request

    start = time.monotonic()
    url = normalize_base_url(base_url) + "/models"
    while time.monotonic() - start < deadline_s:
        if not alive():
            raise PlraError(f"the server for {base_url} exited before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - start
        except OSError:
            pass
        time.sleep(interval_s)
    raise PlraError(f"the server for {base_url} was not ready after {deadline_s:.0f} s")
