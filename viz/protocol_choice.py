"""The Run page's choice of protocol: the bundled ones, the files of `--protocols-dir`, or an
uploaded YAML file, with a card that shows the chosen protocol's regimen, population,
parameters and sources before anything runs (`viz.protocol_card`).

An upload is validated with the same field-path messages as `amdsim validate` and kept in
the runs folder under its own name (plus a digest), and the choice names it ("uploaded:
mine.yaml"). A refused upload sets any earlier one aside, so Start never runs a file other
than the one the user last chose. A time-based protocol comes with its parameter files: as a
zip of its folder (`viz.protocol_zip` unpacks it safely) or from `--protocols-dir`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import panel as pn

from engine.errors import AmdsimError, ProtocolError
from engine.model.any_protocol import AnyProtocol
from engine.model.protocol_loader import (
    DEFAULT_PROTOCOL,
    bundled_protocol_names,
    load_protocol,
    load_protocol_text,
    resolve_protocol_path,
)
from viz.context import ServerContext
from viz.protocol_cache import cached_protocol
from viz.protocol_card import protocol_card_html
from viz.protocol_zip import is_zip, unpack_protocol_zip
from viz.safe_text import html_text

__all__ = ["UPLOADED", "ProtocolChoice"]

UPLOADED = "(uploaded file)"  # the choice's value for the uploaded file


def _file_stem(name: str) -> str:
    """A safe, short stem for saving an uploaded file whatever the browser called it."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", Path(name).stem)[:64].strip("_") or "uploaded"


class ProtocolChoice:
    """The protocol select, the upload and the card; `selected()` is what Start runs."""

    def __init__(self, context: ServerContext, say: Callable[[str, str], None]) -> None:
        self.context = context
        self.say = say  # (text, kind): the Run page's message
        self.uploaded: tuple[str, AnyProtocol, Path] | None = None
        self.select = pn.widgets.Select(
            label="Protocol", options=self._options(), value=DEFAULT_PROTOCOL, width=340
        )
        self.upload = pn.widgets.FileInput(
            label="Upload protocol (YAML, or a zip with its parameter files)",
            accept=".yaml,.yml,.zip",
            width=340,
        )
        self.card = pn.pane.HTML("", css_classes=["protocol-card-pane"], width=340)
        self.about = pn.Card(
            self.card,
            title="About this protocol",
            collapsed=True,
            width=350,
            css_classes=["protocol-about"],
        )
        self.upload.param.watch(
            lambda event: self.receive_upload(event.new, self.upload.filename), "value"
        )
        self.select.param.watch(lambda _: self.show_card(), "value")
        self.show_card()

    def _options(self) -> dict[str, str]:
        names = list(bundled_protocol_names())
        folder = self.context.protocols_dir
        if folder is not None and folder.is_dir():
            names += sorted(str(p) for p in folder.glob("*.y*ml"))
        return {name: name for name in names}

    def refresh_options(self, choose: str | None = None) -> None:
        """List the protocols again (a file saved in the protocols folder), keeping an upload."""
        options = self._options()
        options.update({k: v for k, v in self.select.options.items() if v == UPLOADED})
        value = choose if choose in options.values() else self.select.value
        self.select.param.update(options=options, value=value)

    def _with_upload(self, label: str | None) -> dict[str, str]:
        options = {k: v for k, v in self.select.options.items() if v != UPLOADED}
        if label is not None:
            options[label] = UPLOADED
        return options

    def selected(self) -> tuple[AnyProtocol, Path]:
        """The chosen protocol and its file; `AmdsimError` if it does not load."""
        if self.select.value == UPLOADED and self.uploaded is not None:
            return self.uploaded[1], self.uploaded[2]
        path = resolve_protocol_path(self.select.value)
        return cached_protocol(path), path

    def show_card(self) -> None:
        """Show the chosen protocol's card, or why it cannot be read."""
        try:
            protocol, _ = self.selected()
        except (AmdsimError, OSError) as exc:
            self.card.object = f"<p>cannot read this protocol: {html_text(str(exc))}</p>"
            self.about.title = "About this protocol"
            return
        self.card.object = protocol_card_html(protocol)
        self.about.title = f"About: {protocol.name}"

    def receive_upload(self, data: bytes | None, filename: str | None) -> bool:
        """Validate an uploaded protocol; on success it becomes the chosen protocol."""
        if not data:
            return False
        name = filename or "uploaded.yaml"
        if len(data) > self.context.max_upload_bytes:
            return self._refuse(
                f"{name}: {len(data) / 1024:,.0f} KiB is larger than the "
                f"{self.context.max_upload_bytes / 1024:,.0f} KiB allowed for a protocol file"
            )
        uploads = self.context.runs_root / ".uploads"
        digest = hashlib.sha256(data).hexdigest()[:12]
        try:
            if is_zip(data, name):  # a time-based protocol and its parameter files
                folder = uploads / f"{_file_stem(name)}-{digest}"
                path = unpack_protocol_zip(data, name, folder)
                protocol = load_protocol(path)
            else:
                protocol = load_protocol_text(data, source=name)
                uploads.mkdir(parents=True, exist_ok=True)
                path = uploads / f"{_file_stem(name)}-{digest}.yaml"
                path.write_bytes(data)
        except ProtocolError as exc:
            return self._refuse(str(exc).replace(str(uploads), ".uploads"))
        self.uploaded = (name, protocol, path)
        self.select.param.update(options=self._with_upload(f"uploaded: {name}"), value=UPLOADED)
        self.show_card()  # the value may not have changed (a second upload)
        self.say(f"{name}: valid protocol '{protocol.name}'", "success")
        return True

    def _refuse(self, text: str) -> bool:
        """Say why an upload was refused and set aside any earlier upload. False."""
        if self.uploaded is not None or UPLOADED in self.select.options.values():
            earlier = f" {self.uploaded[0]}" if self.uploaded is not None else ""
            self.uploaded = None
            options = self._with_upload(None)
            value = self.select.value if self.select.value in options.values() else DEFAULT_PROTOCOL
            self.select.param.update(options=options, value=value)
            text += f" (the earlier upload{earlier} is set aside; protocol: {value})"
        self.say(text, "danger")
        return False
