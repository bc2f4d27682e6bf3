# The mlship serve container: SageMaker's inference contract (/ping, /invocations on :8080).
# SageMaker runs `docker run IMAGE serve`; the model comes from /opt/ml/model (the extracted
# bundle .tar.gz) or from MODEL_URI (s3:// or mlship://NAME@ALIAS). Built by CDK at deploy time
# (infra/assets.py); locally the same server runs as a plain process: `mlship serve DIR`.
FROM public.ecr.aws/docker/library/python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/opt/program \
    MLSHIP_CACHE_DIR=/tmp/mlship-cache

WORKDIR /opt/program
COPY mlship/serving/requirements.txt /opt/program/requirements.txt
RUN pip install --no-cache-dir --only-binary=:all: -r requirements.txt \
    && useradd --system --uid 1000 --home /opt/program mlship

# Only the package: the serving path imports numpy, onnxruntime, cryptography and mlship core.
COPY mlship /opt/program/mlship
RUN python -m compileall -q /opt/program/mlship \
    && python -c "import mlship.serving.server, mlship.runtime.predictor"

USER 1000
EXPOSE 8080
ENTRYPOINT ["python", "-m", "mlship.serving"]
CMD ["serve"]
