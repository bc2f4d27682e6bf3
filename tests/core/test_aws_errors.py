"""AWS errors are classified by their botocore codes, as S3 and SageMaker (moto) send them."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from mlship.aws.clients import client, is_already_exists, is_missing, is_no_such_bucket, is_not_found
from mlship.registry.store import NotFoundError, Registry, RegistryError


def _error(call: Any, **kwargs: Any) -> ClientError:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return caught.value


def _bucket() -> str:
    name = f"mlship-err-{uuid.uuid4().hex[:12]}"
    client("s3").create_bucket(Bucket=name)
    return name


def test_a_missing_bucket_is_told_apart_from_a_missing_key(aws: None) -> None:
    s3 = client("s3")
    no_bucket = _error(s3.get_object, Bucket="mlship-no-such-bucket-x", Key="k")
    no_key = _error(s3.get_object, Bucket=_bucket(), Key="k")
    assert is_no_such_bucket(no_bucket) and not is_no_such_bucket(no_key)
    assert is_missing(no_key) and not is_missing(no_bucket)  # both are HTTP 404


@pytest.mark.parametrize("call", [
    lambda r: r.list_models(),
    lambda r: r.get_alias("churn", "live"),
    lambda r: r.get_version("churn", "1"),
])
def test_the_registry_names_a_missing_bucket_on_every_path(aws: None, call: Any) -> None:
    with pytest.raises(RegistryError, match="registry bucket 'mlship-no-such-bucket-y' does not exist") as err:
        call(Registry("mlship-no-such-bucket-y", sagemaker=False))
    assert not isinstance(err.value, NotFoundError)


def test_a_missing_key_in_an_existing_bucket_is_still_not_found(aws: None) -> None:
    registry = Registry(_bucket(), sagemaker=False)
    assert registry.get_alias("churn", "live") is None
    with pytest.raises(NotFoundError):
        registry.get_version("churn", "1")


def test_sagemaker_unknown_group_is_not_found(aws: None) -> None:
    sm = client("sagemaker")
    missing = _error(sm.describe_model_package_group, ModelPackageGroupName="mlship-nope")
    assert is_not_found(missing) and not is_already_exists(missing)


def test_a_create_that_lost_the_race_keeps_the_group(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry(_bucket(), sagemaker=True)
    sm = registry.sm
    real_create = sm.create_model_package_group

    def create_then_refuse(**kwargs: Any) -> Any:
        real_create(**kwargs)  # another writer got there first; SageMaker refuses ours with a 400
        raise ClientError({"Error": {"Code": "ValidationException", "Message": "(any wording)"}},
                          "CreateModelPackageGroup")

    monkeypatch.setattr(sm, "create_model_package_group", create_then_refuse)
    group = registry._ensure_group("churn")
    assert sm.describe_model_package_group(ModelPackageGroupName=group)["ModelPackageGroupName"] == group


def test_a_refused_create_of_a_group_that_does_not_exist_is_an_error(aws: None,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry(_bucket(), sagemaker=True)

    def refuse(**kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "ValidationException", "Message": "bad name"}},
                          "CreateModelPackageGroup")

    monkeypatch.setattr(registry.sm, "create_model_package_group", refuse)
    with pytest.raises(RegistryError, match="cannot create model package group"):
        registry._ensure_group("churn")


def test_already_exists_codes() -> None:
    for code in ("ResourceInUse", "ResourceAlreadyExistsException", "EntityAlreadyExists"):
        assert is_already_exists(ClientError({"Error": {"Code": code}}, "Create"))
    assert not is_already_exists(ClientError({"Error": {"Code": "ThrottlingException"}}, "Create"))
    assert not is_already_exists(ValueError("already exists"))  # message text never decides
