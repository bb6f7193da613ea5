"""Prepares the compose stack's local STS (moto) and writes login credentials.

Runs inside the moto image (which has boto3) as the `sts-setup` service of docker/compose.yaml,
with the testkit's moto helper mounted at /testkit. On a fresh moto it creates an admin IAM user
and switches moto to strict authentication (bad keys are refused as by real AWS); then it assumes
the role the API accepts and writes, under /setup/out:

  aws-login.json     the body for POST /v1/auth/aws-login
  aws-credentials    an AWS CLI profile [gpudev-local] with the same temporary credentials

Run it again (`docker compose run --rm sts-setup`) for fresh credentials once they expire (1 h).
"""

import json
import os
import sys

sys.path.insert(0, os.environ.get("TESTKIT_PY", "/testkit"))
import moto_admin  # noqa: E402  (mounted at run time)

ENDPOINT = os.environ.get("STS_ENDPOINT", "http://sts:5000")
ROLE = os.environ.get("ALLOWED_AWS_ROLE", "SSOCloudDevGpuReservation")
SESSION = os.environ.get("LOCAL_USER", "dev")
OUT = os.environ.get("SETUP_OUT", "/setup/out")


def is_strict():
    """True once moto refuses unknown keys (it accepts anything until set up)."""
    probe = moto_admin.caller_identity(ENDPOINT, "AKIAGPUDEVPROBE00000", "not-a-secret")
    return probe.get("status") != 200


def admin():
    saved = os.path.join(OUT, "admin.json")
    if is_strict():
        if not os.path.exists(saved):
            sys.exit("moto is already strict but docker/local/out/admin.json is gone: "
                     "restart the sts service (docker compose restart sts) and run this again")
        with open(saved, encoding="utf-8") as f:
            return json.load(f)
    # A fresh (or restarted) moto accepts anything: set it up.
    creds = moto_admin.setup(ENDPOINT)
    with open(saved, "w", encoding="utf-8") as f:
        json.dump(creds, f)
    return creds


def main():
    os.makedirs(OUT, exist_ok=True)
    os.umask(0o077)
    a = admin()
    c = moto_admin.mint(
        ENDPOINT, a["access_key_id"], a["secret_access_key"], a["arn"], ROLE, SESSION
    )
    with open(os.path.join(OUT, "aws-login.json"), "w", encoding="utf-8") as f:
        json.dump(
            {
                "aws_access_key_id": c["access_key_id"],
                "aws_secret_access_key": c["secret_access_key"],
                "aws_session_token": c["session_token"],
            },
            f,
        )
    with open(os.path.join(OUT, "aws-credentials"), "w", encoding="utf-8") as f:
        f.write(
            "[gpudev-local]\n"
            f"aws_access_key_id = {c['access_key_id']}\n"
            f"aws_secret_access_key = {c['secret_access_key']}\n"
            f"aws_session_token = {c['session_token']}\n"
        )
    give_to_owner_of_setup_dir()
    print(f"credentials for {c['arn']} written to docker/local/out/")


def give_to_owner_of_setup_dir():
    """In the container this runs as root; hand the files to whoever owns the bind-mounted
    docker/local directory, so the person who started the stack can read them."""
    parent = os.stat(os.path.dirname(os.path.abspath(OUT)))
    if os.geteuid() != 0 or parent.st_uid == 0:
        return
    for path in [OUT, *(os.path.join(OUT, f) for f in os.listdir(OUT))]:
        os.chown(path, parent.st_uid, parent.st_gid)


if __name__ == "__main__":
    main()
