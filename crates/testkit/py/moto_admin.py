"""Administration of a local moto server for gpudev-testkit.

Run as `python moto_admin.py COMMAND ENDPOINT [ARGS...]`; prints one JSON object on stdout.
Errors from moto that a test may want to see (403 and friends) are printed as
{"status": ..., "code": ...}; anything else unexpected exits non-zero with a message on stderr.

Commands:
  setup ENDPOINT
      While moto still accepts anything: create the admin IAM user with an inline policy
      allowing everything and an access key, then switch moto to strict authentication.
      Prints {"access_key_id", "secret_access_key", "arn"}.
  mint ENDPOINT ADMIN_KEY ADMIN_SECRET ADMIN_ARN ROLE SESSION
      Create ROLE (trusting the admin user) if absent and assume it as the admin user.
      Prints {"access_key_id", "secret_access_key", "session_token", "arn"}.
  iam-user ENDPOINT ADMIN_KEY ADMIN_SECRET NAME
      Create IAM user NAME if absent (no policies) and a new access key for it.
      Prints {"access_key_id", "secret_access_key", "arn"}.
  caller-identity ENDPOINT KEY SECRET [TOKEN]
      Call sts:GetCallerIdentity with those credentials.
      Prints {"status": 200, "arn": ...} or {"status": 403, "code": ...}.
"""

import json
import sys
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

REGION = "us-east-1"
ADMIN_USER = "gpudev-testkit-admin"
ALLOW_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


def client(service, endpoint, key, secret, token=None):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        aws_session_token=token,
        config=Config(retries={"max_attempts": 1}),
    )


def setup(endpoint):
    # moto accepts any credentials until strict mode is switched on below.
    iam = client("iam", endpoint, "testing", "testing")
    user = iam.create_user(UserName=ADMIN_USER)["User"]
    iam.put_user_policy(
        UserName=ADMIN_USER, PolicyName="allow-all", PolicyDocument=json.dumps(ALLOW_ALL)
    )
    key = iam.create_access_key(UserName=ADMIN_USER)["AccessKey"]
    # A form post answers 500: the body must be sent as text/plain.
    request = urllib.request.Request(
        endpoint + "/moto-api/reset-auth",
        data=b"0",
        headers={"Content-Type": "text/plain"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status != 200:
            raise RuntimeError(f"reset-auth answered {response.status}")
    return {
        "access_key_id": key["AccessKeyId"],
        "secret_access_key": key["SecretAccessKey"],
        "arn": user["Arn"],
    }


def mint(endpoint, admin_key, admin_secret, admin_arn, role, session):
    iam = client("iam", endpoint, admin_key, admin_secret)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                # moto refuses a trust policy naming the account root; name the admin user.
                "Principal": {"AWS": admin_arn},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    try:
        role_arn = iam.get_role(RoleName=role)["Role"]["Arn"]
    except ClientError as err:
        if err.response["Error"]["Code"] != "NoSuchEntity":
            raise
        try:
            role_arn = iam.create_role(
                RoleName=role, AssumeRolePolicyDocument=json.dumps(trust)
            )["Role"]["Arn"]
        except ClientError as err2:
            # Another test created it between our get and create.
            if err2.response["Error"]["Code"] != "EntityAlreadyExists":
                raise
            role_arn = iam.get_role(RoleName=role)["Role"]["Arn"]
    sts = client("sts", endpoint, admin_key, admin_secret)
    answer = sts.assume_role(RoleArn=role_arn, RoleSessionName=session)
    creds = answer["Credentials"]
    return {
        "access_key_id": creds["AccessKeyId"],
        "secret_access_key": creds["SecretAccessKey"],
        "session_token": creds["SessionToken"],
        "arn": answer["AssumedRoleUser"]["Arn"],
    }


def iam_user(endpoint, admin_key, admin_secret, name):
    iam = client("iam", endpoint, admin_key, admin_secret)
    try:
        arn = iam.create_user(UserName=name)["User"]["Arn"]
    except ClientError as err:
        if err.response["Error"]["Code"] != "EntityAlreadyExists":
            raise
        arn = iam.get_user(UserName=name)["User"]["Arn"]
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {
        "access_key_id": key["AccessKeyId"],
        "secret_access_key": key["SecretAccessKey"],
        "arn": arn,
    }


def caller_identity(endpoint, key, secret, token=None):
    sts = client("sts", endpoint, key, secret, token)
    try:
        return {"status": 200, "arn": sts.get_caller_identity()["Arn"]}
    except ClientError as err:
        return {
            "status": err.response["ResponseMetadata"]["HTTPStatusCode"],
            "code": err.response["Error"].get("Code", ""),
        }


COMMANDS = {
    "setup": setup,
    "mint": mint,
    "iam-user": iam_user,
    "caller-identity": caller_identity,
}


def main(argv):
    if len(argv) < 2 or argv[0] not in COMMANDS:
        sys.exit(f"usage: moto_admin.py {{{'|'.join(COMMANDS)}}} ENDPOINT [ARGS...]")
    try:
        result = COMMANDS[argv[0]](*argv[1:])
    except (BotoCoreError, ClientError) as err:
        sys.exit(f"moto_admin {argv[0]}: {err}")
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
