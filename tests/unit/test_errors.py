"""The error vocabulary: one enum, documented, carried by one base class, and never spelled out elsewhere."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from smartcrop.core.errors import CODES, ErrorCode, Failure, ModelError, SmartcropError, classify
from smartcrop.core.job import JobError
from smartcrop.core.ports import JobCancelled, ObjectNotFound, StorageError
from smartcrop.core.secrets import SecretKeyError
from smartcrop.media.probe import MediaError
from smartcrop.runtime.idempotency import JobIdConflict
from smartcrop.runtime.serde import RegistryUnavailable
from smartcrop.runtime.transfer import DestinationError, SourceError

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "services" / "smartcrop"
WIRE = {"invalid_job", "source_unreadable", "destination_unreachable", "model_unavailable", "cancelled", "internal",
        "storage_unavailable", "broker_unavailable", "job_id_conflict", "registry_unavailable"}


def test_the_codes_on_the_wire_are_exactly_these():
    assert {code.value for code in ErrorCode} == WIRE
    assert CODES == ("invalid_job", "source_unreadable", "destination_unreachable", "model_unavailable", "cancelled",
                     "internal", "storage_unavailable", "broker_unavailable", "job_id_conflict")
    assert f"{ErrorCode.JOB_ID_CONFLICT}" == str(ErrorCode.JOB_ID_CONFLICT) == "job_id_conflict"
    assert ErrorCode.INVALID_JOB.encode() == b"invalid_job"
    assert json.dumps({"code": ErrorCode.INTERNAL}) == '{"code": "internal"}'


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_code_is_documented_in_the_readme(code):
    assert f"`{code.value}`" in (ROOT / "README.md").read_text()


def test_every_code_a_status_can_carry_or_refuse_with_is_in_the_schema_doc():
    schema = json.loads((ROOT / "schemas" / "io.smartcrop.v1.JobStatus.avsc").read_text())
    error = next(f for f in schema["fields"] if f["name"] == "error")["type"][1]
    doc = next(f for f in error["fields"] if f["name"] == "code")["doc"]
    for code in CODES:
        assert code in doc


@pytest.mark.parametrize("error, code, transient", [
    (JobError("source", "bad"), "invalid_job", False),
    (SecretKeyError("bad key"), "invalid_job", False),
    (SourceError("gone"), "source_unreadable", False),
    (MediaError("not video"), "source_unreadable", False),
    (ObjectNotFound("no key"), "source_unreadable", False),
    (StorageError("down"), "storage_unavailable", True),
    (DestinationError("refused"), "destination_unreachable", False),
    (ModelError("missing"), "model_unavailable", False),
    (JobCancelled("stop"), "cancelled", False),
    (JobIdConflict("j1"), "job_id_conflict", False),
    (RegistryUnavailable("no answer"), "registry_unavailable", True),
])
def test_each_error_carries_its_code_and_whether_to_retry(error, code, transient):
    assert isinstance(error, SmartcropError)
    assert isinstance(error.code, ErrorCode) and error.code == code
    assert classify(error) == Failure(code, str(error), transient)


def test_an_unknown_exception_is_internal():
    assert classify(KeyError("x")) == Failure("internal", "KeyError: 'x'", False)


def _code_literals(tree: ast.AST) -> list[tuple[int, str]]:
    """String constants used as an error code: ``code = "..."``, ``ErrorInfo("...")``/``Failure("...")``, a
    ``code=`` keyword, or a comparison with something's ``.code``."""
    found = []

    def literal(node) -> str | None:
        return node.value if isinstance(node, ast.Constant) and node.value in WIRE else None

    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id if isinstance(t, ast.Name) else getattr(t, "attr", None) for t in targets]
            if "code" in names and literal(node.value):
                found.append((node.lineno, literal(node.value)))
        elif isinstance(node, ast.Call):
            name = getattr(node.func, "id", getattr(node.func, "attr", None))
            if name in ("ErrorInfo", "Failure") and node.args and literal(node.args[0]):
                found.append((node.lineno, literal(node.args[0])))
            found += [(node.lineno, literal(k.value)) for k in node.keywords
                      if k.arg in ("code", "error_code") and literal(k.value)]
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(isinstance(s, ast.Attribute) and s.attr == "code" for s in sides):
                found += [(node.lineno, literal(s)) for s in sides if literal(s)]
    return found


def test_the_scan_finds_bare_codes():
    tree = ast.parse('class E:\n    code = "invalid_job"\nErrorInfo("internal", "m")\nif f.code == "cancelled": pass\n')
    assert _code_literals(tree) == [(2, "invalid_job"), (3, "internal"), (4, "cancelled")]


def test_no_module_spells_a_code_out_instead_of_naming_the_enum():
    modules = [p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "errors.py"]
    assert len(modules) > 30
    bare = {f"{p.relative_to(PACKAGE)}:{line}": code for p in modules
            for line, code in _code_literals(ast.parse(p.read_text()))}
    assert bare == {}
