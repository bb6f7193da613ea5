"""schemathesis hooks for scripts/schemathesis: authentication with a real gpudev API key.

The generated requests may revoke the key they are sent with (`DELETE /v1/keys/{key_id}`,
`POST /v1/keys/rotate` with `revoke_current`), so the key is not a fixed header: this provider
creates one with `gpudev-admin keys create` and creates another whenever the API answers 401 or
403 (schemathesis then replays the request once with the new key).
"""

import os
import subprocess

import schemathesis


@schemathesis.auth(refresh_interval=3600, retry_on=[401, 403])
class ApiKey:
    def get(self, case, context):
        return self._create()

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"

    @staticmethod
    def _create():
        done = subprocess.run(
            [os.environ["GPUDEV_ADMIN"], "keys", "create", "--user", os.environ["GPUDEV_SCHEMATHESIS_USER"],
             "--ttl-hours", "24", "--description", "schemathesis"],
            capture_output=True, text=True, check=True,
        )
        return done.stdout.strip()
