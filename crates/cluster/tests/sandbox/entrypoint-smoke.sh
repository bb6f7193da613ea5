#!/bin/sh
# shellcheck disable=SC2016 # the inner script is single-quoted on purpose
# Runs the dev box entrypoint for real in a throwaway sandbox, logs in over SSH and checks that
# the reservation's start command ran:
#   - a private mount namespace with an overlay of / (every write lands in a tmpfs),
#   - packages (openssh-server, sudo) installed into the overlay with apt-get (Debian hosts),
#   - the entrypoint started in its own network and PID namespaces (port 22 never reaches the
#     host; everything it started dies with the namespace).
# Needs root and overlayfs. Usage: unshare --mount --fork entrypoint-smoke.sh ENTRYPOINT [DIR]
# (DIR: an empty directory for the sandbox's mounts; the #[ignore]d test
# `entrypoint_lets_dev_log_in_and_refuses_root` runs it this way).
set -eu
entrypoint="$1"
S="${2:-$(mktemp -d)}"
M="$S/merged"
mount --make-rprivate /
mount -t tmpfs tmpfs "$S"
mkdir -p "$S/upper" "$S/work" "$M"
mount -t overlay overlay -o "lowerdir=/,upperdir=$S/upper,workdir=$S/work" "$M"
mount --rbind /dev "$M/dev"
mount -t tmpfs tmpfs "$M/dev/shm"
mount -t proc proc "$M/proc"
mount -t tmpfs -o mode=0755 tmpfs "$M/run"
mount -t tmpfs tmpfs "$M/tmp"

install='DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server sudo openssh-client'
chroot "$M" sh -c "$install >/dev/null 2>&1 || { apt-get update -qq >/dev/null && $install >/dev/null; }"
rm -f "$M"/etc/ssh/ssh_host_*
chroot "$M" ssh-keygen -q -t ed25519 -N '' -f /root/k
mkdir -p "$M/etc/gpudev/secret" "$M/run/gpudev"
cp "$M/root/k.pub" "$M/etc/gpudev/secret/authorized_keys"
# The reservation's start command, as the processor delivers it through the Secret.
printf '%s\n' 'echo "ran as $(id -un) in $PWD with $HF_TOKEN" >/tmp/command-ran' \
    >"$M/etc/gpudev/secret/command"
# The Jupyter switch starts empty (off). A stand-in `jupyter` in the image's PATH records how it
# was started and then waits, as the real server would.
: >"$M/etc/gpudev/secret/jupyter"
mkdir -p "$M/opt/image/bin"
printf '%s\n' '#!/bin/sh' 'echo "$(id -un) $*" >/tmp/jupyter-ran' 'exec sleep 600' \
    >"$M/opt/image/bin/jupyter"
chmod 0755 "$M/opt/image/bin/jupyter"
# gpudev's agent as its init container leaves it, with its token in the Secret. The stand-in
# records who runs it, with which token and Jupyter token files and URL, then waits.
printf %s agent-token-of-this-box >"$M/etc/gpudev/secret/agent-token"
mkdir -p "$M/opt/gpudev/bin"
printf '%s\n' '#!/bin/sh' \
    'echo "$(id -un) $(cat "$GPUDEV_AGENT_TOKEN_FILE") $GPUDEV_AGENT_JUPYTER_TOKEN_FILE $GPUDEV_AGENT_URL" >/tmp/agent-ran' \
    'exec sleep 700' >"$M/opt/gpudev/bin/gpudev-agent"
chmod 0755 "$M/opt/gpudev/bin/gpudev-agent"
cp "$entrypoint" "$M/entrypoint.sh"

export M
unshare --net --pid --fork sh -eu -c '
ip link set lo up
umount "$M/proc"
mount -t proc proc "$M/proc"
env -i PATH=/opt/image/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HF_TOKEN="hf value with '"'"'quotes'"'"' and \$dollar" GPUDEV_JUPYTER_POLL_SECONDS=1 GPUDEV_USER=alice \
    GPUDEV_AGENT_URL=https://gpudev.example.com \
    chroot "$M" /bin/sh /entrypoint.sh >"$M/tmp/entrypoint.log" 2>&1 &
up=""
for _ in $(seq 1 100); do
    if grep -q "Server listening" "$M/tmp/entrypoint.log" 2>/dev/null; then up=1; break; fi
    sleep 0.2
done
if [ -z "$up" ]; then echo "sshd did not start:"; cat "$M/tmp/entrypoint.log"; exit 1; fi
ssh="ssh -i /root/k -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR"
fail() { echo "FAIL: $*"; echo "--- entrypoint log"; cat "$M/tmp/entrypoint.log"; exit 1; }

out="$(chroot "$M" $ssh dev@127.0.0.1 "bash -lc '\''id -un; id -u; echo \"\$HF_TOKEN\"; echo \"\$PATH\"; sudo -n id -u'\''")" || fail "login as dev: $out"
expected="dev
1081
hf value with '"'"'quotes'"'"' and \$dollar
/opt/image/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
0"
[ "$out" = "$expected" ] || fail "login shell saw:
$out
expected:
$expected"

out="$(chroot "$M" $ssh dev@127.0.0.1 "echo \"\$HF_TOKEN\"")" || fail "command as dev"
[ "$out" = "hf value with '"'"'quotes'"'"' and \$dollar" ] || fail "plain command saw: $out"

# The start command ran once, as dev, from its home, with the environment.
for _ in $(seq 1 50); do [ -s "$M/tmp/command-ran" ] && break; sleep 0.1; done
ran="$(cat "$M/tmp/command-ran" 2>/dev/null)" || fail "the start command did not run"
[ "$ran" = "ran as dev in /home/dev with hf value with '"'"'quotes'"'"' and \$dollar" ] \
    || fail "the start command saw: $ran"
[ "$(stat -c %u "$M/tmp/command-ran")" = "$(chroot "$M" id -u dev)" ] \
    || fail "the start command wrote its file as another user"

# Jupyter follows the switch on the running box: off at first, on once the file holds a token
# (run as dev, with that token), off again (its process gone) once the file is empty.
sleep 2
[ ! -e "$M/tmp/jupyter-ran" ] || fail "jupyter started while switched off"
printf %s tok-on-a-running-box >"$M/etc/gpudev/secret/jupyter"
for _ in $(seq 1 50); do [ -s "$M/tmp/jupyter-ran" ] && break; sleep 0.1; done
ran="$(cat "$M/tmp/jupyter-ran" 2>/dev/null)" || fail "jupyter did not start when switched on"
case "$ran" in
    "dev lab --no-browser --ip=0.0.0.0 --port=8888 --ServerApp.token=tok-on-a-running-box "*) ;;
    *) fail "jupyter was started as: $ran" ;;
esac
dev_uid="$(chroot "$M" id -u dev)"
pgrep -u "$dev_uid" -f "sleep 600" >/dev/null || fail "jupyter is not running as dev"
: >"$M/etc/gpudev/secret/jupyter"
for _ in $(seq 1 50); do pgrep -u "$dev_uid" -f "sleep 600" >/dev/null || break; sleep 0.1; done
if pgrep -u "$dev_uid" -f "sleep 600" >/dev/null; then fail "jupyter still runs after being switched off"; fi
grep -q "jupyter stopped" "$M/tmp/entrypoint.log" || fail "the stop was not logged"

# The agent runs as dev with its token copied where dev alone can read it.
for _ in $(seq 1 50); do [ -s "$M/tmp/agent-ran" ] && break; sleep 0.1; done
agent="$(cat "$M/tmp/agent-ran" 2>/dev/null)" || fail "the agent did not start"
[ "$agent" = "dev agent-token-of-this-box /run/gpudev/jupyter-token https://gpudev.example.com" ] \
    || fail "the agent was started as: $agent"
pgrep -u "$dev_uid" -f "sleep 700" >/dev/null || fail "the agent is not running as dev"
[ "$(stat -c "%u %a" "$M/run/gpudev/agent-token")" = "$dev_uid 600" ] \
    || fail "the agent token copy is not for dev alone: $(stat -c "%u %a" "$M/run/gpudev/agent-token")"

if chroot "$M" $ssh root@127.0.0.1 true 2>/dev/null; then fail "root could log in"; fi
if chroot "$M" $ssh -o PasswordAuthentication=yes -o PubkeyAuthentication=no dev@127.0.0.1 true 2>/dev/null; then
    fail "dev could log in without a key"
fi
echo "entrypoint smoke test passed"
'
