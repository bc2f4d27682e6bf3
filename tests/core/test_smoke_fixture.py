"""The shared fixtures produce a bundle that verifies and serves."""

from mlship.runtime.predictor import Predictor


def test_churn_bundle_loads_and_serves(churn_bundle, signing_keys):
    predictor = Predictor.load(churn_bundle, public_key=signing_keys / "mlship.pub")
    golden = predictor.bundle.golden
    result = predictor.predict(golden["inputs"])
    assert result.labels.tolist() == golden["expected"]["labels"]
