"""Container entry point: ``python -m mlship.serving serve`` (SageMaker passes ``serve``)."""

from mlship.serving.server import main

main()
