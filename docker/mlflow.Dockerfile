# The official MLflow image of the version sertool pins, plus the PostgreSQL and S3 drivers it lacks.
ARG MLFLOW_VERSION=3.17.2
FROM ghcr.io/mlflow/mlflow:v${MLFLOW_VERSION}
ARG MLFLOW_VERSION
RUN pip install --no-cache-dir "mlflow[auth]==${MLFLOW_VERSION}" psycopg2-binary boto3
COPY start-mlflow.sh /usr/local/bin/start-mlflow
RUN chmod +x /usr/local/bin/start-mlflow
