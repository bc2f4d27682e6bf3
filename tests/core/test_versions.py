"""mlship.runtime.versions: one PEP 440 ordering, typed refusal of unparseable versions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.version import Version

from mlship.errors import MlshipError
from mlship.runtime.versions import InvalidVersionError, is_newer, parse_version, same_version


def test_short_version_is_not_newer_than_longer_release() -> None:
    assert not is_newer("1", "1.2.3")
    assert is_newer("1.2.3", "1")


@pytest.mark.parametrize("candidate", ["1.0", "01.0.0", "1.0.0", "1", "1.0.0.0"])
def test_equal_versions_are_not_newer(candidate: str) -> None:
    assert not is_newer(candidate, "1.0.0")
    assert same_version(candidate, "1.0.0")


def test_release_is_newer_than_its_prerelease() -> None:
    assert is_newer("1.0.0", "1.0.0rc1")
    assert is_newer("1.2.10", "1.2.9")
    assert is_newer("20261123.1015", "20261123.1014")


@pytest.mark.parametrize("bad", ["", "   ", "not-a-version", "1..2", "v1.2.3-!", None, 12, ["1"]])
def test_unparseable_versions_raise_a_typed_error_naming_the_text(bad: object) -> None:
    with pytest.raises(InvalidVersionError) as info:
        parse_version(bad)
    assert isinstance(info.value, MlshipError)
    assert info.value.text == bad
    assert repr(bad) in str(info.value)


def test_is_newer_refuses_unparseable_either_side() -> None:
    with pytest.raises(InvalidVersionError):
        is_newer("bogus!", "1.0")
    with pytest.raises(InvalidVersionError):
        is_newer("1.0", "bogus!")


_release = st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=5)
_pre = st.one_of(st.none(), st.tuples(st.sampled_from(["a", "b", "rc"]), st.integers(0, 50)))
_post = st.one_of(st.none(), st.integers(0, 50))


@st.composite
def versions(draw: st.DrawFn) -> str:
    text = ".".join(str(n) for n in draw(_release))
    pre = draw(_pre)
    if pre is not None:
        text += f"{pre[0]}{pre[1]}"
    post = draw(_post)
    if post is not None:
        text += f".post{post}"
    return text


@given(versions(), versions())
def test_is_newer_agrees_with_pep440_ordering(a: str, b: str) -> None:
    assert is_newer(a, b) == (Version(a) > Version(b))
    assert same_version(a, b) == (Version(a) == Version(b))
    assert not (is_newer(a, b) and is_newer(b, a))
