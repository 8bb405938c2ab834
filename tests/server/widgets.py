"""A server whose `--resources` file declares custom resources in CRD form, with a schema
(`Widget`, as issue 14 writes it) and without one (`Gadget`): shared by the OpenAPI and
field-validation tests."""

from __future__ import annotations

from pathlib import Path

from tenantstore.server import ServerConfig

from .conftest import ThreadServer

WIDGETS_YAML = """\
resources:
  - group: example.com
    version: v1
    kind: Widget
    plural: widgets
    singular: widget
    namespaced: true
    shortNames: [wd]
    schema:
      openAPIV3Schema:
        type: object
        required: [spec]
        properties:
          spec:
            type: object
            description: What the widget should be.
            properties:
              size: {type: integer, description: How big the widget is.}
              color: {type: string, enum: [red, blue]}
              labels: {type: object, additionalProperties: {type: string}}
              extra: {type: object, x-kubernetes-preserve-unknown-fields: true}
          status: {type: object, properties: {ready: {type: boolean}}}
  - {group: example.com, version: v1, kind: Gadget, plural: gadgets, namespaced: false}
"""


def start_widget_server(tmp: Path) -> ThreadServer:
    resources = tmp / "resources.yaml"
    resources.write_text(WIDGETS_YAML)
    config = ServerConfig(
        backend=f"sqlite://{tmp / 'store.db'}",
        resources_file=str(resources),
        max_body_bytes=256 * 1024,
    )
    return ThreadServer(config).start()
