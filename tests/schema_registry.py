"""A small Confluent-compatible Schema Registry for the tests, on 127.0.0.1.

Neither registry server the project could use installs here (Karapace is not on PyPI; Apicurio Registry's app on
Maven Central needs ``apicurio-registry-schema-util-provider`` and Confluent artifacts that Maven Central does not
serve), so the tests talk HTTP to this one instead. It serves the part of the REST API that smartcrop and
confluent-kafka's ``SchemaRegistryClient`` use, with the registry's own semantics: one global id per distinct
schema (the same schema under two subjects has one id), versions per subject, per-subject compatibility (BACKWARD by
default), and ``409`` for a schema the level refuses. The BACKWARD check is Avro schema resolution: the new schema,
as reader, must read data written with the latest one.

``python -m tests.schema_registry --port N`` runs it on its own.
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import fastavro
from fastavro.schema import to_parsing_canonical_form

PROMOTIONS = {"int": {"long", "float", "double"}, "long": {"float", "double"}, "float": {"double"},
              "string": {"bytes"}, "bytes": {"string"}}
LEVELS = ("NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE")


class Incompatible(ValueError):
    pass


def _named(schema, names: dict, namespace: str = "") -> object:
    """Resolve a schema node, recording named types so later references by name can be followed."""
    if isinstance(schema, str):
        full = schema if "." in schema or not namespace else f"{namespace}.{schema}"
        return names.get(full, names.get(schema, schema))
    if isinstance(schema, dict) and schema.get("type") in ("record", "enum", "fixed", "error"):
        name = schema["name"]
        space = schema.get("namespace", namespace) if "." not in name else name.rpartition(".")[0]
        full = name if "." in name else (f"{space}.{name}" if space else name)
        names[full] = schema
        names[name.rpartition(".")[2]] = schema
    return schema


def can_read(reader, writer, rnames: dict | None = None, wnames: dict | None = None, ns: tuple = ("", "")) -> None:
    """Raise :class:`Incompatible` unless ``reader`` can read what ``writer`` wrote (the Avro resolution rules)."""
    rnames, wnames = ({} if rnames is None else rnames), ({} if wnames is None else wnames)
    reader, writer = _named(reader, rnames, ns[0]), _named(writer, wnames, ns[1])
    if isinstance(writer, list):
        for branch in writer:
            can_read(reader, branch, rnames, wnames, ns)
        return
    if isinstance(reader, list):
        for branch in reader:
            try:
                can_read(branch, writer, dict(rnames), dict(wnames), ns)
                return
            except Incompatible:
                continue
        raise Incompatible(f"no branch of the reader's union reads {_kind(writer)}")
    rkind, wkind = _kind(reader), _kind(writer)
    if rkind != wkind and rkind not in PROMOTIONS.get(wkind, ()):
        raise Incompatible(f"reader type {rkind} cannot read writer type {wkind}")
    if rkind == "record":
        rns = reader.get("namespace", ns[0]) if "." not in reader["name"] else reader["name"].rpartition(".")[0]
        wns = writer.get("namespace", ns[1]) if "." not in writer["name"] else writer["name"].rpartition(".")[0]
        written = {field["name"]: field for field in writer["fields"]}
        for field in reader["fields"]:
            if field["name"] in written:
                can_read(field["type"], written[field["name"]]["type"], rnames, wnames, (rns, wns))
            elif "default" not in field:
                raise Incompatible(f"reader field {field['name']!r} is new and has no default")
    elif rkind == "enum":
        missing = set(writer["symbols"]) - set(reader["symbols"])
        if missing and "default" not in reader:
            raise Incompatible(f"reader enum {reader['name']} lacks symbols {sorted(missing)}")
    elif rkind == "array":
        can_read(reader["items"], writer["items"], rnames, wnames, ns)
    elif rkind == "map":
        can_read(reader["values"], writer["values"], rnames, wnames, ns)
    elif rkind == "fixed" and reader["size"] != writer["size"]:
        raise Incompatible("fixed sizes differ")


def _kind(schema) -> str:
    if isinstance(schema, dict):
        return schema["type"] if isinstance(schema["type"], str) else _kind(schema["type"])
    return schema if isinstance(schema, str) else "union"


def check(level: str, new: dict, old: list[dict]) -> None:
    """Compatibility of ``new`` with the subject's earlier versions (latest last) at ``level``."""
    if level == "NONE" or not old:
        return
    against = old if level.endswith("_TRANSITIVE") else old[-1:]
    for earlier in against:
        if level.startswith(("BACKWARD", "FULL")):
            can_read(new, earlier)
        if level.startswith(("FORWARD", "FULL")):
            can_read(earlier, new)


class Registry:
    def __init__(self, default_level: str = "BACKWARD"):
        self.lock = threading.Lock()
        self.schemas: list[str] = []  # id - 1 -> schema text
        self.ids_by_canonical: dict[str, int] = {}
        self.subjects: dict[str, list[int]] = {}  # subject -> ids of versions 1..n
        self.levels: dict[str, str] = {}
        self.default_level = default_level

    def register(self, subject: str, text: str) -> dict:
        document = json.loads(text)
        canonical = to_parsing_canonical_form(fastavro.parse_schema(document))
        with self.lock:
            versions = self.subjects.setdefault(subject, [])
            known = self.ids_by_canonical.get(canonical)
            if known is not None and known in versions:
                return {"id": known, "version": versions.index(known) + 1, "subject": subject}
            check(self.levels.get(subject, self.default_level), document,
                  [json.loads(self.schemas[i - 1]) for i in versions])
            if known is None:
                self.schemas.append(text)
                known = self.ids_by_canonical[canonical] = len(self.schemas)
            versions.append(known)
            return {"id": known, "version": len(versions), "subject": subject}


def _handler(registry: Registry):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _reply(self, status: int, body) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, code: int, message: str) -> None:
            self._reply(status, {"error_code": code, "message": message})

        def _body(self) -> dict:
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length) or b"{}")

        def _path(self) -> list[str]:
            return [unquote(part) for part in urlsplit(self.path).path.strip("/").split("/") if part]

        def _version(self, subject: str, version: str) -> None:
            versions = registry.subjects.get(subject)
            if not versions:
                return self._error(404, 40401, f"Subject '{subject}' not found.")
            index = len(versions) if version in ("latest", "-1") else int(version)
            if not 1 <= index <= len(versions):
                return self._error(404, 40402, f"Version {version} not found.")
            schema_id = versions[index - 1]
            self._reply(200, {"subject": subject, "version": index, "id": schema_id,
                              "schema": registry.schemas[schema_id - 1]})

        def do_GET(self) -> None:  # noqa: N802 - the http.server interface
            path = self._path()
            if path == ["subjects"]:
                return self._reply(200, sorted(registry.subjects))
            if path == ["schemas", "types"]:
                return self._reply(200, ["AVRO"])
            if len(path) == 3 and path[:2] == ["schemas", "ids"] and path[2].isdigit():
                schema_id = int(path[2])
                if not 1 <= schema_id <= len(registry.schemas):
                    return self._error(404, 40403, f"Schema {schema_id} not found")
                return self._reply(200, {"schema": registry.schemas[schema_id - 1]})
            if len(path) == 3 and path[0] == "subjects" and path[2] == "versions":
                if path[1] not in registry.subjects:
                    return self._error(404, 40401, f"Subject '{path[1]}' not found.")
                return self._reply(200, list(range(1, len(registry.subjects[path[1]]) + 1)))
            if len(path) == 4 and path[0] == "subjects" and path[2] == "versions":
                return self._version(path[1], path[3])
            if len(path) == 2 and path[0] == "config":
                level = registry.levels.get(path[1])
                if level is None:
                    return self._error(404, 40408, f"Subject '{path[1]}' does not have subject-level compatibility")
                return self._reply(200, {"compatibilityLevel": level})
            if path == ["config"]:
                return self._reply(200, {"compatibilityLevel": registry.default_level})
            self._error(404, 404, "Not found")

        def do_PUT(self) -> None:  # noqa: N802
            path = self._path()
            level = str(self._body().get("compatibility", "")).upper()
            if level not in LEVELS:
                return self._error(422, 42203, f"Invalid compatibility level {level!r}")
            if len(path) == 2 and path[0] == "config":
                registry.levels[path[1]] = level
            elif path == ["config"]:
                registry.default_level = level
            else:
                return self._error(404, 404, "Not found")
            self._reply(200, {"compatibility": level})

        def do_POST(self) -> None:  # noqa: N802
            path = self._path()
            body = self._body()
            if body.get("schemaType", "AVRO") != "AVRO" or body.get("references"):
                return self._error(422, 42201, "only AVRO schemas without references are served here")
            if len(path) == 3 and path[0] == "subjects" and path[2] == "versions":
                try:
                    return self._reply(200, registry.register(path[1], body["schema"]))
                except Incompatible as exc:
                    return self._error(409, 409, f"Schema being registered is incompatible: {exc}")
                except (ValueError, KeyError, fastavro.schema.SchemaParseException) as exc:
                    return self._error(422, 42201, f"Invalid schema: {exc}")
            if len(path) == 2 and path[0] == "subjects":  # look a schema up under a subject
                canonical = to_parsing_canonical_form(fastavro.parse_schema(json.loads(body["schema"])))
                schema_id = registry.ids_by_canonical.get(canonical)
                versions = registry.subjects.get(path[1], [])
                if schema_id not in versions:
                    return self._error(404, 40403, "Schema not found")
                return self._reply(200, {"subject": path[1], "id": schema_id,
                                         "version": versions.index(schema_id) + 1,
                                         "schema": registry.schemas[schema_id - 1]})
            self._error(404, 404, "Not found")

    return Handler


def serve(port: int = 0) -> tuple[ThreadingHTTPServer, Registry]:
    """Start on 127.0.0.1 (``port`` 0: any free one) in a daemon thread; ``server.server_port`` says where."""
    registry = Registry()
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(registry))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="schema-registry", daemon=True).start()
    return server, registry


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=18081)
    args = parser.parse_args()
    server, _ = serve(args.port)
    print(f"schema registry on http://127.0.0.1:{server.server_port}", flush=True)
    threading.Event().wait()
