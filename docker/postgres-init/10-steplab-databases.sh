#!/bin/sh
# One database and one login role per Steplab service, so no service can read
# another's tables. The postgres image runs this once, on an empty data
# directory (docker/compose.yaml mounts this folder at
# /docker-entrypoint-initdb.d). The password is for a local stack only.
set -eu

for service in participant content_release payments dfe_gateway; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v name="steplab_$service" -v password="$STEPLAB_DB_PASSWORD" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
SQL
done
