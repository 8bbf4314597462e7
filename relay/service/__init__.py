"""The self-hosted relay service: token API (Litestar + uvicorn) and embedded broker (amqtt).

Everything under this package may import the ``relay`` extra (litestar,
uvicorn, PyJWT, amqtt); nothing else in :mod:`relay` may, because host and
guest import :mod:`relay` without that extra installed. This ``__init__``
imports nothing, so ``relay.service.exports`` (EMQX and Mosquitto snippets)
works without the extra too.

::

    config.py     relay.toml: [server], [[apps]], [nats] (msgspec Structs, no extra needed)
    claims.py     HS256 user tokens (EMQX-verifiable claims) and app tokens
    ratelimit.py  per-client token buckets for the API
    token_service.py  what the token endpoints do (credentials, lifetimes), without HTTP
    api.py        the Easemob-compatible token API (Litestar app factory)
    invites.py    the invite endpoints (create, redeem, revoke, list)
    invite_store.py  SQLite: grants, friends' credentials (hashed), uses, revocations
    revocation.py the broker side of a revoke: refuse, and drop connections at once
    limits.py     the broker's per-client bounds, counters, and the packet reader
    amqtt_hooks.py   the amqtt overrides that apply those bounds
    broker.py     amqtt config, JWT auth + ACL plugins, and the broker subclass
    serve.py      one asyncio process running uvicorn and the broker
    exports.py    ``emqx-config`` and ``mosquitto-acl`` output
    nats_jwt.py   NATS JWTs and the nkeys derived from the JWT secret (the nats extra)
    nats_callout.py  ``nats-callout``: a NATS cluster's auth callout, by token
    nats_config.py   ``nats-config``: the cluster's node configs
    nats_cli.py   the two NATS commands of ``coplay-relay``
"""
