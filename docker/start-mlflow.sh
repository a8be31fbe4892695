#!/bin/sh
# Writes the basic-auth config from the environment (so no secret lives in the image), then serves.
set -eu
cat > "$MLFLOW_AUTH_CONFIG_PATH" <<INI
[mlflow]
default_permission = READ
database_uri = ${BACKEND_STORE_URI}
admin_username = ${MLFLOW_ADMIN_USERNAME}
admin_password = ${MLFLOW_ADMIN_PASSWORD}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
INI
exec mlflow server \
  --host 0.0.0.0 --port 5000 \
  --backend-store-uri "$BACKEND_STORE_URI" \
  --serve-artifacts --artifacts-destination "$ARTIFACTS_DESTINATION" \
  --app-name basic-auth
