"""Property-based fuzz of the parsers: only the project's typed errors ever escape, and a mutated licence key or
revocation list that is still ACCEPTED carries exactly the genuine claims (edits the format tolerates, such as
surrounding whitespace, may pass; a changed claim, secret or signature never does)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from liquid_memory_vendor.issue import sign_revocation_list

from liquid_memory.artifacts.crypto import decrypt
from liquid_memory.errors import LiquidMemoryError
from liquid_memory.licensing import licence as licence_module
from liquid_memory.licensing import parse_licence
from liquid_memory.licensing.revocation import parse_revocation_list
from liquid_memory.manifest.format import parse_manifest, parse_rows, signed_rows
from tests.licensing.helpers import make_licence, make_vendor

VENDOR = make_vendor()
TRUSTED = {VENDOR.kid: VENDOR.public_key}
GOOD = make_licence(VENDOR)
GOOD_LIST = sign_revocation_list(VENDOR, ["lic_0123456789abcdef", "lic_fedcba9876543210"], seq=3, issued=1_800_000_000)
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _only_typed(fn, *args) -> None:
    try:
        fn(*args)
    except LiquidMemoryError:
        pass


@st.composite
def mutated(draw, genuine: str) -> str:
    """The genuine text with random edits: replace, insert, delete characters, or cut."""
    text = list(genuine)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["replace", "insert", "delete", "cut"]))
        pos = draw(st.integers(0, max(0, len(text) - 1)))
        ch = draw(st.one_of(st.sampled_from(B64 + ".=+/ \n"), st.characters()))
        if op == "replace" and text:
            text[pos] = ch
        elif op == "insert":
            text.insert(pos, ch)
        elif op == "delete" and text:
            del text[pos]
        else:
            text = text[:pos]
    return "".join(text)


def _claims_and_secret(text: str) -> tuple[dict, bytes | None]:
    licence = parse_licence(text, TRUSTED)
    return dataclasses.asdict(licence), licence_module._SECRETS.get(licence)


GENUINE_LICENCE = _claims_and_secret(GOOD)


@FUZZ
@given(st.one_of(mutated(GOOD), st.text(max_size=300), st.from_regex(r"lmk1\.[A-Za-z0-9_.-]{0,200}")))
def test_licence_parser_only_raises_typed_errors_and_accepts_only_the_genuine_claims(text):
    try:
        accepted = _claims_and_secret(text)
    except LiquidMemoryError:
        return
    assert accepted == GENUINE_LICENCE


@FUZZ
@given(st.one_of(mutated(GOOD_LIST), st.text(max_size=300), st.from_regex(r"lmr1\.[A-Za-z0-9_.-]{0,200}")))
def test_revocation_parser_only_raises_typed_errors_and_accepts_only_the_genuine_list(text):
    try:
        accepted = parse_revocation_list(text, TRUSTED)
    except LiquidMemoryError:
        return
    assert accepted == parse_revocation_list(GOOD_LIST, TRUSTED)


MANIFEST_HEAD = (
    b"# x\n\n| file | size | sha256 |\n|---|---:|---|\n| dist_public/a.bin | 3 | " + b"a" * 64 + b" |\n\n"
    b"<!-- lm-manifest-signature-v1\ntrusted-comment: "
)


@FUZZ
@given(st.one_of(st.binary(max_size=400), st.binary(max_size=300).map(lambda b: MANIFEST_HEAD + b)))
def test_manifest_parser_only_raises_typed_errors(data):
    try:
        m = parse_manifest(data)
        signed_rows(m)
    except LiquidMemoryError:
        pass


@FUZZ
@given(st.text(max_size=400).map(lambda t: "| file | size | sha256 |\n|---|---:|---|\n" + t))
def test_manifest_rows_only_raise_typed_errors(text):
    _only_typed(parse_rows, text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(st.binary(max_size=200).map(lambda b: b"LMAE\x01\x00\x00\x00" + b))
def test_artifact_decrypt_only_raises_typed_errors(blob):
    _only_typed(lambda: decrypt(blob, bytes(32), name="x", version="0.1.0"))


def test_fuzz_targets_accept_the_genuine_texts():
    assert parse_licence(GOOD, TRUSTED).licensee == "Acme Test" and GENUINE_LICENCE[1]
    assert parse_revocation_list(GOOD_LIST, TRUSTED).revoked == {"lic_0123456789abcdef", "lic_fedcba9876543210"}


def test_the_acceptance_check_can_fail():
    """A genuinely signed licence with other claims is accepted by the parser, and the fuzz assertion rejects it."""
    other = make_licence(VENDOR, licensee="Someone Else")
    assert _claims_and_secret(other) != GENUINE_LICENCE


pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
