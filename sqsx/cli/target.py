"""Finding the queue a command works on: ``MODULE:ATTR``, URL and endpoint overrides, and
the boto3 client for an endpoint."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Any
from urllib.parse import urlsplit

from sqsx.queue import BaseQueue

__all__ = [
    "CommandFailed",
    "UsageError",
    "load_queue",
    "make_client",
    "region_of",
    "with_overrides",
]

logger = logging.getLogger(__name__)

_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class UsageError(Exception):
    """The command line does not work as given; the message says why, in one line
    (exit code 2)."""


class CommandFailed(Exception):
    """A command failed for a reason outside the command line (SQS refused, could not be
    reached, the port is taken); the message says why, in one line (exit code 1)."""


def load_queue(spec: str, app_dir: str | None = ".") -> BaseQueue:
    """Import ``MODULE:ATTR`` and return the ``Queue``/``RawQueue`` it names.

    Args:
        spec: ``module.path:attribute``; the attribute may be dotted, and may be a
            zero-argument callable returning the queue.
        app_dir: directory put first on ``sys.path`` before importing (default the
            current directory); ``None`` leaves ``sys.path`` alone.

    Raises:
        UsageError: with a one-line reason (bad form, missing module or attribute, the
            import or the call failed, not a queue).
    """
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise UsageError(f"expected MODULE:ATTR (for example myapp.tasks:queue), got {spec!r}")
    if app_dir is not None:
        path = os.path.abspath(app_dir)
        if path not in sys.path:
            sys.path.insert(0, path)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and (module_name == err.name or module_name.startswith(err.name + ".")):
            raise UsageError(
                f"cannot import {module_name!r}: no module named {err.name!r} "
                f"(searched {app_dir or '.'} and sys.path)"
            ) from err
        raise UsageError(_failed(f"importing {module_name!r}", err)) from err
    except Exception as err:
        raise UsageError(_failed(f"importing {module_name!r}", err)) from err
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as err:
            raise UsageError(f"module {module_name!r} has no attribute {attribute!r}") from err
    if not isinstance(target, BaseQueue) and callable(target):
        try:
            target = target()
        except Exception as err:
            raise UsageError(_failed(f"calling {spec}()", err)) from err
    if not isinstance(target, BaseQueue):
        raise UsageError(
            f"{spec} is a {type(target).__name__}, not a sqsx Queue or RawQueue "
            "(or a zero-argument callable returning one)"
        )
    return target


def _failed(what: str, err: BaseException) -> str:
    logger.debug("%s failed", what, exc_info=err)
    return f"{what} failed: {type(err).__name__}: {err}"


def with_overrides(
    queue: BaseQueue, *, queue_url: str | None, endpoint_url: str | None, pool: int = 10
) -> BaseQueue:
    """``queue`` itself, or a queue of the same kind, settings and handlers for another
    URL or endpoint.

    Args:
        queue: the queue the module configured.
        queue_url: the queue URL to use instead of ``queue.url`` (``None`` keeps it).
        endpoint_url: the SQS endpoint to use instead of the client's (``None`` keeps the
            client); a new boto3 client is made for it, signing for the module client's
            region.
        pool: connections of that new client (default 10; give at least the threads).
    """
    if not queue_url and not endpoint_url:
        return queue
    client = queue.sqs_client
    if endpoint_url:
        region = getattr(getattr(client, "meta", None), "region_name", None)
        client = make_client(endpoint_url, region=region, pool=pool)
    return queue.copy(url=queue_url or None, sqs_client=client)


def make_client(
    endpoint_url: str | None,
    *,
    region: str | None = None,
    pool: int = 10,
    service: str = "sqs",
) -> Any:
    """A boto3 SQS client (or, with ``service="s3"``, an S3 client).

    For an endpoint on localhost (``sqsx local``, ElasticMQ) it signs for ``us-east-1``
    when no region is known, and uses dummy credentials unless ``AWS_ACCESS_KEY_ID`` is
    set: local servers do not check them.

    Args:
        endpoint_url: the SQS endpoint, or ``None`` for AWS's.
        region: the signing region; ``None`` uses ``AWS_REGION``, ``AWS_DEFAULT_REGION``
            or the AWS config file.
        pool: connections kept open (``max_pool_connections``, default 10).
        service: the boto3 service name (default ``"sqs"``).
    """
    import boto3
    from botocore.config import Config

    local = bool(endpoint_url) and urlsplit(endpoint_url).hostname in _LOOPBACK_HOSTS
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    key = secret = None
    if local:
        region = region or "us-east-1"
        if not os.environ.get("AWS_ACCESS_KEY_ID"):
            key = secret = "local"
    factory: Any = boto3.client  # typed per literal service name; this one is a variable
    return factory(
        service,
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(max_pool_connections=pool),
    )


def region_of(queue_url: str) -> str | None:
    """``eu-west-1`` for ``https://sqs.eu-west-1.amazonaws.com/...``, else ``None``."""
    parts = (urlsplit(queue_url).hostname or "").split(".")
    return parts[1] if len(parts) > 3 and parts[0] == "sqs" else None
