"""Fixtures for the client's tests: its commands run in this process against the test hub.

:class:`DjangoTransport` hands each request the client's httpx makes to Django's test client, so
the commands talk to the real API views, services and match index over their real HTTP shapes,
inside the test's transaction.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from django.test import Client
from PIL import Image, ImageDraw

from hashhub_client.cli import main
from hub.models import ApiKey, Organization

HUB_URL = "https://hub.example.test"


class DjangoTransport(httpx.BaseTransport):
    """httpx requests answered by Django's test client; each request is kept in ``requests``."""

    def __init__(self) -> None:
        self.client = Client()
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        body = request.read()
        response = self.client.generic(
            request.method,
            request.url.raw_path.decode("ascii"),
            data=body,
            content_type=request.headers.get("content-type", ""),
            secure=True,
            headers={
                name: value
                for name, value in request.headers.items()
                if name.lower() in {"authorization", "accept", "user-agent"}
            },
        )
        return httpx.Response(
            response.status_code, headers=dict(response.items()), content=response.content
        )

    def bodies(self, path: str) -> list[Any]:
        return [
            json.loads(request.content) if request.content else None
            for request in self.requests
            if request.url.path == path
        ]


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


@dataclass
class Hashhub:
    """The ``hashhub`` command in this process, with A's key in its environment."""

    transport: DjangoTransport
    env: dict[str, str] = field(default_factory=dict)

    def __call__(self, *argv: str, env: dict[str, str] | None = None) -> Outcome:
        out, err = io.StringIO(), io.StringIO()
        code = main(
            list(argv),
            stdout=out,
            stderr=err,
            env=self.env if env is None else env,
            transport=self.transport,
            sleep=lambda _seconds: None,
        )
        return Outcome(code, out.getvalue(), err.getvalue())


@pytest.fixture
def hashhub(key_a: tuple[ApiKey, str], org_a: Organization) -> Hashhub:
    return Hashhub(DjangoTransport(), {"HASHHUB_URL": HUB_URL, "HASHHUB_API_KEY": key_a[1]})


def synthetic_picture(seed: int, size: tuple[int, int] = (256, 256)) -> Image.Image:
    """A busy synthetic picture (a gradient, shapes, noise): a good PDQ, never real material."""
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    gradient = np.stack([x * 255 // width, y * 255 // height, (x + y) * 127 // height], axis=-1)
    image = Image.fromarray(gradient.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(14):
        x0, x1 = sorted(int(v) for v in rng.integers(0, width, 2))
        y0, y1 = sorted(int(v) for v in rng.integers(0, height, 2))
        draw.rectangle((x0, y0, x1, y1), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    noise = rng.integers(-12, 13, (height, width, 3))
    pixels = np.clip(np.asarray(image, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def encoded(image: Image.Image, image_format: str = "PNG", **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


@pytest.fixture
def write_picture(tmp_path: Path) -> Callable[..., Path]:
    def write(name: str, seed: int, size: tuple[int, int] = (256, 256)) -> Path:
        path = tmp_path / name
        path.write_bytes(encoded(synthetic_picture(seed, size)))
        return path

    return write
