"""Container entry point: ``python -m mlship.serve serve`` (SageMaker passes ``serve``)."""

from mlship.serve.server import main

main()
