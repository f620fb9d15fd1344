"""Who may call the server: TLS or mutual TLS, and optional bearer tokens per client.

TLS is gRPC's own (``ssl_server_credentials``); with a client CA the server
requires a client certificate signed by it (mutual TLS). Tokens identify
callers above the transport: each client sends ``authorization: Bearer
<token>`` and the server compares it with every configured token in constant
time (``hmac.compare_digest``, never stopping at the first match), so the
answer's timing does not reveal how much of a token was right. Health checks
stay open, so that load balancers and orchestrators can probe without a
secret; every other service, reflection included, needs a token once tokens
are configured.

Tokens come from a file (one ``name:token`` per line; ``#`` starts a comment)
or from the ``TIERWISE_TOKENS`` environment variable (``name:token`` pairs
separated by commas). Names tell the operator whose token is whose; no log
line or error message ever contains a token.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from router_model.errors import ConfigError

if TYPE_CHECKING:  # grpc is imported where it is used: ServerConfig must not need it
    import grpc

TOKENS_ENV = "TIERWISE_TOKENS"
AUTHORIZATION = "authorization"
BEARER = "Bearer "
OPEN_SERVICES = frozenset({"grpc.health.v1.Health"})
MIN_TOKEN_CHARS = 16


class AuthenticationError(Exception):
    """The call carries no token, or one that no configured client has."""


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of the server's TLS identity; ``client_ca`` turns on mutual TLS."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    def server_credentials(self) -> grpc.ServerCredentials:
        import grpc

        key, cert = _read(self.key, "TLS key"), _read(self.cert, "TLS certificate")
        ca = _read(self.client_ca, "client CA") if self.client_ca is not None else None
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
        )


def channel_credentials(
    ca: Path | None = None, cert: Path | None = None, key: Path | None = None
) -> grpc.ChannelCredentials:
    """Client TLS: trust ``ca`` (default: the system's roots); ``cert`` + ``key`` for mTLS."""
    import grpc

    if (cert is None) != (key is None):
        raise ConfigError("a client certificate needs its key, and a key its certificate")
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca, "CA") if ca is not None else None,
        private_key=_read(key, "client key") if key is not None else None,
        certificate_chain=_read(cert, "client certificate") if cert is not None else None,
    )


def bearer_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """The metadata a client sends with every call (none without a token)."""
    return ((AUTHORIZATION, BEARER + token),) if token else ()


class TokenAuthenticator:
    """Knows every client's token; ``client_of`` names the caller or raises."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        if not tokens:
            raise ConfigError("token authentication needs at least one token")
        for name, token in tokens.items():
            if len(token) < MIN_TOKEN_CHARS:
                raise ConfigError(
                    f"token of client {name!r} is {len(token)} characters; "
                    f"use at least {MIN_TOKEN_CHARS}"
                )
        self._tokens = [(name, token.encode()) for name, token in tokens.items()]

    @classmethod
    def from_sources(
        cls, path: Path | None, environ: Mapping[str, str]
    ) -> TokenAuthenticator | None:
        """Tokens from ``path`` and ``TIERWISE_TOKENS``; None when neither gives any."""
        tokens: dict[str, str] = {}
        if path is not None:
            try:
                text = path.read_text()
            except OSError as exc:
                raise ConfigError(f"{path}: cannot read the tokens file ({exc.strerror})") from None
            tokens.update(_parse_lines(text.splitlines(), str(path)))
        if environ.get(TOKENS_ENV):
            pairs = environ[TOKENS_ENV].split(",")
            tokens.update(_parse_lines(pairs, f"${TOKENS_ENV}"))
        return cls(tokens) if tokens else None

    def client_of(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
        """The name of the client whose token the call carries."""
        sent = next((v for k, v in metadata or () if k.lower() == AUTHORIZATION), None)
        if sent is None:
            raise AuthenticationError("missing authorization metadata (Bearer token)")
        value = sent.decode() if isinstance(sent, bytes) else sent
        if not value.startswith(BEARER):
            raise AuthenticationError("authorization metadata is not a Bearer token")
        offered = value[len(BEARER) :].strip().encode()
        found: str | None = None
        for name, token in self._tokens:  # every comparison runs, whatever matches
            if hmac.compare_digest(offered, token):
                found = name
        if found is None:
            raise AuthenticationError("unknown token")
        return found


def _parse_lines(lines: Iterable[str], source: str) -> dict[str, str]:
    tokens: dict[str, str] = {}
    for number, raw in enumerate(lines, start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, token = line.partition(":")
        if not sep or not name.strip() or not token.strip():
            raise ConfigError(f"{source}: entry {number} is not 'name:token'")
        if name.strip() in tokens:
            raise ConfigError(f"{source}: entry {number} repeats client {name.strip()!r}")
        tokens[name.strip()] = token.strip()
    return tokens


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what} ({exc.strerror})") from None
