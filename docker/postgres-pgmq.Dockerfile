# syntax=docker/dockerfile:1
#
# A CloudNativePG PostgreSQL image that also has the PGMQ extension files, for running gpudev's
# database highly available with CloudNativePG (see docs/DEPLOYMENT.md and
# charts/gpudev/examples/cloudnativepg-cluster.yaml).
#
# PGMQ 1.x is pure SQL (a control file and SQL scripts, no shared library), so the files are
# copied from the upstream PGMQ image of the same PostgreSQL major version. Its control file says
# `superuser = false`: the database owner can `CREATE EXTENSION pgmq` (gpudev's migration does).
#
#   docker build -f docker/postgres-pgmq.Dockerfile -t registry.example.com/postgres-pgmq:17 docker
#
# Pin both images by digest in production.

ARG PGMQ_IMAGE=ghcr.io/pgmq/pg17-pgmq:v1.13.0
ARG CNPG_IMAGE=ghcr.io/cloudnative-pg/postgresql:17.6-standard-trixie

FROM ${PGMQ_IMAGE} AS pgmq

FROM ${CNPG_IMAGE}
COPY --from=pgmq /usr/share/postgresql/17/extension/pgmq.control /usr/share/postgresql/17/extension/
COPY --from=pgmq /usr/share/postgresql/17/extension/pgmq--*.sql /usr/share/postgresql/17/extension/
# CloudNativePG runs PostgreSQL as the image's postgres user (uid 26).
USER 26
